// Malformed inputs through the real `qpipe` binary (fork/exec): truncated,
// garbage, empty, missing and directory model files, a model with an
// unsupported op, a CIFAR file whose size is not a multiple of 3073, a bad
// label, a missing data folder. Each must end with one clear message on
// stderr naming the file, the exit code of its ErrorKind (engine/error.h:
// input 4, unsupported 5) and no signal (no crash). Also the success path on
// tiny fixtures, and on ../shared when present.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "tests/fixtures/kernel_runner.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/tiny_models.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
using testing::run_process;
using testing::ScratchDir;

int lines(const std::string& s) { return static_cast<int>(std::count(s.begin(), s.end(), '\n')); }

// Runs `qpipe eval --model M --data D` plus extra args.
testing::ProcessResult eval(const std::string& model, const std::string& data, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv = {testing::qpipe_bin(), "eval", "--model", model, "--data", data, "--threads", "1"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return run_process(argv);
}

// The common contract: no crash, the expected exit code, a single message
// line on stderr mentioning `what` (usually the offending path).
void expect_clean_failure(const testing::ProcessResult& r, ErrorKind kind, const std::vector<std::string>& mentions) {
  ASSERT_FALSE(r.signaled) << r.describe();
  EXPECT_EQ(r.exit_code, exit_code(kind)) << r.describe();
  EXPECT_THAT(r.err, HasSubstr(error_kind_name(kind))) << r.describe();
  for (const auto& m : mentions) EXPECT_THAT(r.err, HasSubstr(m)) << r.describe();
  EXPECT_EQ(r.out, "") << "nothing on stdout when failing\n" << r.describe();
}

class CliMalformed : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(testing::qpipe_bin())) << testing::qpipe_bin() << " not built";
    testing::write_cifar_fixture(data_, 12);
    save_onnx(testing::tiny_classifier(), good_model_);
  }
  ScratchDir dir_{"cli_malformed"};
  ScratchDir data_{"cli_malformed_data"};
  std::string good_model_ = dir_.file("tiny.onnx");
};

TEST_F(CliMalformed, TinyFixturesEvaluateSuccessfully) {
  const std::string json = dir_.file("out.json");
  auto r = eval(good_model_, data_.path(), {"--json", json, "--predictions", "--batch", "5"});
  ASSERT_FALSE(r.signaled) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("/12 ="));
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["model_path"], good_model_);
  EXPECT_EQ(j["data_dir"], data_.path());
  EXPECT_EQ(j["overall"]["total"], 12);
  ASSERT_EQ(j["per_class"].size(), 10u);
  EXPECT_EQ(j["per_class"][5]["class_name"], "dog");
  EXPECT_EQ(j["per_class"][5]["total"], 1);
  EXPECT_EQ(j["predictions"].size(), 12u);
}

TEST_F(CliMalformed, JsonIsByteIdenticalAcrossThreadsAndBatches) {
  std::string first;
  for (const char* threads : {"1", "2"})
    for (const char* batch : {"1", "7", "256"}) {
      const std::string json = dir_.file(std::string("t") + threads + "_b" + batch + ".json");
      auto r = run_process({testing::qpipe_bin(), "eval", "--model", good_model_, "--data", data_.path(), "--threads",
                            threads, "--batch", batch, "--json", json, "--predictions", "--quiet"});
      ASSERT_EQ(r.exit_code, 0) << r.describe();
      const std::string bytes = testing::read_whole_file(json);
      if (first.empty()) first = bytes;
      EXPECT_EQ(bytes, first) << "threads " << threads << " batch " << batch;
    }
}

TEST_F(CliMalformed, TrainSplitOfFixture) {
  auto r = eval(good_model_, data_.path(), {"--split", "train", "--quiet"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("/5 ="));  // one record in each of data_batch_1..5
  auto bad = eval(good_model_, data_.path(), {"--split", "validation"});
  ASSERT_FALSE(bad.signaled) << bad.describe();
  EXPECT_NE(bad.exit_code, 0) << bad.describe();
  EXPECT_THAT(bad.err, HasSubstr("'validation'")) << bad.describe();
}

TEST_F(CliMalformed, GarbageModelFile) {
  testing::Rng rng(1234);
  std::string bytes;
  for (int i = 0; i < 5000; ++i) bytes.push_back(static_cast<char>(rng.integer(0, 255)));
  const std::string path = dir_.write("garbage.onnx", bytes);
  auto r = eval(path, data_.path());
  expect_clean_failure(r, ErrorKind::kInput, {path});
  EXPECT_EQ(lines(r.err), 1) << r.describe();
  auto i = run_process({testing::qpipe_bin(), "inspect", path});
  expect_clean_failure(i, ErrorKind::kInput, {path});
}

TEST_F(CliMalformed, TextFileIsNotAModel) {
  const std::string path = dir_.write("notes.onnx", "this is not a protobuf\n");
  expect_clean_failure(eval(path, data_.path()), ErrorKind::kInput, {path});
}

TEST_F(CliMalformed, EmptyModelFile) {
  const std::string path = dir_.write("empty.onnx", "");
  auto r = eval(path, data_.path());
  expect_clean_failure(r, ErrorKind::kInput, {path, "empty"});
  EXPECT_EQ(lines(r.err), 1) << r.describe();
}

TEST_F(CliMalformed, MissingModelFile) {
  const std::string path = dir_.file("does_not_exist.onnx");
  auto r = eval(path, data_.path());
  expect_clean_failure(r, ErrorKind::kInput, {path, "not found"});
  EXPECT_EQ(lines(r.err), 1) << r.describe();
  expect_clean_failure(run_process({testing::qpipe_bin(), "inspect", path}), ErrorKind::kInput, {path});
}

TEST_F(CliMalformed, DirectoryGivenAsModel) {
  expect_clean_failure(eval(dir_.path(), data_.path()), ErrorKind::kInput, {dir_.path(), "directory"});
}

TEST_F(CliMalformed, TruncatedTinyModel) {
  // Every prefix length class: inside the header, inside an initializer, near the end.
  const std::string bytes = serialize_onnx(testing::tiny_classifier());
  for (std::size_t n : {std::size_t{3}, std::size_t{40}, bytes.size() / 2, bytes.size() - 5}) {
    const std::string path = dir_.write("trunc_" + std::to_string(n) + ".onnx", bytes.substr(0, n));
    auto r = eval(path, data_.path());
    SCOPED_TRACE("prefix of " + std::to_string(n) + " of " + std::to_string(bytes.size()) + " bytes");
    ASSERT_FALSE(r.signaled) << r.describe();
    EXPECT_NE(r.exit_code, 0) << r.describe();
    EXPECT_THAT(r.err, HasSubstr(path)) << r.describe();
  }
}

TEST_F(CliMalformed, TruncatedResnet8) {
  QPIPE_REQUIRE_SHARED(shared);
  std::ifstream in(shared + "/models/resnet8.onnx", std::ios::binary);
  std::string head(1000, '\0');
  in.read(head.data(), 1000);
  ASSERT_EQ(in.gcount(), 1000);
  const std::string path = dir_.write("resnet8_first_1000_bytes.onnx", head);
  auto r = eval(path, data_.path());
  expect_clean_failure(r, ErrorKind::kInput, {path});
  EXPECT_EQ(lines(r.err), 1) << r.describe();
  expect_clean_failure(run_process({testing::qpipe_bin(), "inspect", path}), ErrorKind::kInput, {path});
}

TEST_F(CliMalformed, UnsupportedOpNamesNodeOpAndFile) {
  const std::string path = dir_.file("hardswish.onnx");
  save_onnx(testing::tiny_classifier("HardSwish"), path);
  auto r = eval(path, data_.path());
  expect_clean_failure(r, ErrorKind::kUnsupported, {path, "unsupported_node", "HardSwish", "supported ops"});
}

TEST_F(CliMalformed, CifarFileSizeNotAMultipleOfRecordSize) {
  ScratchDir bad("cli_bad_cifar");
  testing::write_cifar_fixture(bad, 3, 5);
  auto r = eval(good_model_, bad.path());
  expect_clean_failure(r, ErrorKind::kInput, {"test_batch.bin", "3073"});
  EXPECT_EQ(lines(r.err), 1) << r.describe();
}

TEST_F(CliMalformed, CifarLabelOutOfRange) {
  ScratchDir bad("cli_bad_label");
  testing::write_cifar_fixture(bad, 4);
  {
    std::fstream f(bad.file("test_batch.bin"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(2 * 3073);
    f.put(static_cast<char>(12));
  }
  auto r = eval(good_model_, bad.path());
  expect_clean_failure(r, ErrorKind::kInput, {"test_batch.bin", "12"});
}

TEST_F(CliMalformed, MissingDataFolder) {
  const std::string missing = dir_.file("no_such_cifar_dir");
  auto r = eval(good_model_, missing);
  expect_clean_failure(r, ErrorKind::kInput, {missing});
  EXPECT_EQ(lines(r.err), 1) << r.describe();
}

TEST_F(CliMalformed, MissingTestBatchInExistingFolder) {
  ScratchDir bad("cli_no_test_batch");
  testing::write_cifar_fixture(bad, 2);
  std::filesystem::remove(bad.file("test_batch.bin"));
  expect_clean_failure(eval(good_model_, bad.path()), ErrorKind::kInput, {"test_batch.bin"});
}

// The success path on the real model (1000 images: cheap).
TEST(CliShared, EvalFirst1000ImagesAndInspect) {
  QPIPE_REQUIRE_SHARED(shared);
  ScratchDir dir("cli_shared");
  const std::string model = shared + "/models/resnet8.onnx", data = shared + "/data/cifar-10-batches-bin";
  const std::string json = dir.file("r.json");
  auto r = run_process({testing::qpipe_bin(), "eval", "--model", model, "--data", data, "--max-samples", "1000",
                        "--json", json, "--quiet"});
  ASSERT_FALSE(r.signaled) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("881/1000"));
  std::ifstream in(json);
  const auto j = nlohmann::json::parse(in);
  EXPECT_EQ(j["overall"]["correct"], 881);
  EXPECT_EQ(j["overall"]["total"], 1000);
  EXPECT_EQ(j["backend"], "qpipe");
  auto i = run_process({testing::qpipe_bin(), "inspect", model});
  ASSERT_EQ(i.exit_code, 0) << i.describe();
  EXPECT_THAT(i.out, HasSubstr("Conv"));
  EXPECT_THAT(i.out, HasSubstr("319598"));
}

}  // namespace
}  // namespace qpipe
