// `qpipe bench` (pipeline/cli/cmd_bench.cc): option parsing and its errors
// (usage 2 with did-you-mean, bad model 4), and real runs of tiny models built
// here (FP32 and QDQ) checking the table's rows, the skipped-mode notes, the
// JSON rows and the MAC count. Timings are never asserted.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "tests/fixtures/kernel_runner.h"
#include "tests/fixtures/process.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using testing::run_process;

testing::ProcessResult qpipe(std::vector<std::string> args) {
  args.insert(args.begin(), testing::qpipe_bin());
  return run_process(args);
}

Node make_node(std::string name, std::string op, std::vector<std::string> in, std::vector<std::string> out) {
  Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

// input [N,32,32,3] -> Transpose -> Conv(3->4, 3x3, stride 2, pad 1) -> Relu
// -> GlobalAveragePool -> Flatten -> Gemm(4 -> 10) -> "logits".
// MACs per image: 4*16*16 * 3*3*3 + 4*10 = 27688.
// `qdq`: the conv's input goes through QuantizeLinear->DequantizeLinear and
// its weight is an int8 initializer behind DequantizeLinear.
constexpr int64_t kTinyMacs = 4 * 16 * 16 * 27 + 4 * 10;

Model tiny_conv_model(bool qdq) {
  testing::Rng rng(99);
  Model m;
  m.graph.name = qdq ? "tiny_conv_qdq" : "tiny_conv";
  m.opset = 13;
  m.graph.inputs = {"input"};
  m.graph.outputs = {"logits"};
  m.graph.value_info["input"] = ValueInfo{DType::kFloat32, {-1, 32, 32, 3}, true};
  m.graph.value_info["logits"] = ValueInfo{DType::kFloat32, {-1, 10}, true};
  m.graph.initializers["conv_b"] = rng.tensor({4}, -0.1f, 0.1f);
  m.graph.initializers["fc_w"] = rng.tensor({4, 10}, -0.5f, 0.5f);
  m.graph.initializers["fc_b"] = rng.tensor({10}, -0.1f, 0.1f);
  Node t = make_node("to_nchw", "Transpose", {"input"}, {"nchw"});
  t.attrs["perm"] = Attribute::Ints({0, 3, 1, 2});
  m.graph.nodes.push_back(t);
  std::string conv_in = "nchw", conv_w = "conv_w";
  if (qdq) {
    m.graph.initializers["x_scale"] = Tensor::scalar<float>(1.0f);
    m.graph.initializers["x_zp"] = Tensor::scalar<uint8_t>(0);
    m.graph.initializers["w_scale"] = Tensor::scalar<float>(0.01f);
    m.graph.initializers["w_zp"] = Tensor::scalar<int8_t>(0);
    Tensor wq(DType::kInt8, {4, 3, 3, 3});
    for (auto& v : wq.span<int8_t>()) v = static_cast<int8_t>(rng.integer(-100, 100));
    m.graph.initializers["conv_w_q"] = wq;
    m.graph.nodes.push_back(make_node("x_q", "QuantizeLinear", {"nchw", "x_scale", "x_zp"}, {"nchw_q"}));
    m.graph.nodes.push_back(make_node("x_dq", "DequantizeLinear", {"nchw_q", "x_scale", "x_zp"}, {"nchw_dq"}));
    m.graph.nodes.push_back(make_node("w_dq", "DequantizeLinear", {"conv_w_q", "w_scale", "w_zp"}, {"conv_w_dq"}));
    conv_in = "nchw_dq";
    conv_w = "conv_w_dq";
  } else {
    m.graph.initializers["conv_w"] = rng.tensor({4, 3, 3, 3}, -0.2f, 0.2f);
  }
  Node conv = make_node("conv", "Conv", {conv_in, conv_w, "conv_b"}, {"conv_out"});
  conv.attrs["kernel_shape"] = Attribute::Ints({3, 3});
  conv.attrs["strides"] = Attribute::Ints({2, 2});
  conv.attrs["pads"] = Attribute::Ints({1, 1, 1, 1});
  m.graph.nodes.push_back(conv);
  m.graph.nodes.push_back(make_node("relu", "Relu", {"conv_out"}, {"relu_out"}));
  m.graph.nodes.push_back(make_node("gap", "GlobalAveragePool", {"relu_out"}, {"pooled"}));
  m.graph.nodes.push_back(make_node("flatten", "Flatten", {"pooled"}, {"flat"}));
  m.graph.nodes.push_back(make_node("fc", "Gemm", {"flat", "fc_w", "fc_b"}, {"logits"}));
  return m;
}

// Markdown table rows (lines starting with "| " that are not the header).
std::vector<std::vector<std::string>> table_rows(const std::string& out) {
  std::vector<std::vector<std::string>> rows;
  std::size_t pos = 0;
  while (pos < out.size()) {
    std::size_t end = out.find('\n', pos);
    if (end == std::string::npos) end = out.size();
    const std::string line = out.substr(pos, end - pos);
    pos = end + 1;
    if (line.rfind("| ", 0) != 0 || line.rfind("| model ", 0) == 0) continue;
    std::vector<std::string> cells;
    std::size_t c = 1;
    while (c < line.size()) {
      std::size_t bar = line.find('|', c);
      if (bar == std::string::npos) break;
      std::string cell = line.substr(c, bar - c);
      while (!cell.empty() && cell.front() == ' ') cell.erase(cell.begin());
      while (!cell.empty() && cell.back() == ' ') cell.pop_back();
      cells.push_back(cell);
      c = bar + 1;
    }
    rows.push_back(cells);
  }
  return rows;
}

class CliBench : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(testing::qpipe_bin())) << testing::qpipe_bin() << " not built";
  }
  testing::ScratchDir dir_{"cli_bench"};
  std::string fp32_model() {
    const std::string p = dir_.file("tiny_conv.onnx");
    if (!std::filesystem::exists(p)) save_onnx(tiny_conv_model(false), p);
    return p;
  }
  std::string qdq_model() {
    const std::string p = dir_.file("tiny_conv_qdq.onnx");
    if (!std::filesystem::exists(p)) save_onnx(tiny_conv_model(true), p);
    return p;
  }
};

TEST_F(CliBench, HelpListsEveryOption) {
  auto r = qpipe({"bench", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* s : {"usage: qpipe bench", "--model", "--data", "--batch", "--threads", "--exec-mode", "--seconds",
                        "--json", "reference", "ort-avx2"})
    EXPECT_THAT(r.out, HasSubstr(s)) << s;
  auto top = qpipe({"--help"});
  EXPECT_THAT(top.out, HasSubstr("bench"));
}

TEST_F(CliBench, UnknownModeIsAUsageErrorWithSuggestion) {
  const std::string m = fp32_model();
  auto r = qpipe({"bench", "--model", m, "--exec-mode", "reference,ort_avx2", "--seconds", "0"});
  EXPECT_EQ(r.exit_code, exit_code(ErrorKind::kUsage)) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("'ort_avx2'"));
  EXPECT_THAT(r.err, HasSubstr("did you mean 'ort-avx2'"));
  EXPECT_EQ(r.out, "");  // nothing was timed
  auto r2 = qpipe({"bench", "--model", m, "--exec-mode", "refrence"});
  EXPECT_EQ(r2.exit_code, exit_code(ErrorKind::kUsage)) << r2.describe();
  EXPECT_THAT(r2.err, HasSubstr("did you mean 'reference'"));
  auto r3 = qpipe({"bench", "--model", m, "--exec-mode", ","});
  EXPECT_EQ(r3.exit_code, exit_code(ErrorKind::kUsage)) << r3.describe();
}

TEST_F(CliBench, MalformedListsAndNumbersAreUsageErrors) {
  const std::string m = fp32_model();
  struct Case {
    std::vector<std::string> extra;
    std::string mention;
  };
  const std::vector<Case> cases = {
      {{"--batch", "0"}, "--batch"},         {{"--batch", "1,x"}, "'x'"},
      {{"--batch", ""}, "--batch"},          {{"--threads", "-1"}, "--threads"},
      {{"--threads", "1;2"}, "--threads"},   {{"--seconds", "abc"}, "--seconds"},
      {{"--seconds", "-1"}, "--seconds"},    {{"--batchs", "1"}, "did you mean '--batch'"},
      {{"--model"}, "--model"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"bench", "--model", m};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    auto r = qpipe(args);
    EXPECT_EQ(r.exit_code, exit_code(ErrorKind::kUsage)) << c.mention << "\n" << r.describe();
    EXPECT_THAT(r.err, HasSubstr(c.mention)) << r.describe();
  }
}

TEST_F(CliBench, BadModelIsAnInputErrorWithOneMessage) {
  const std::string missing = dir_.file("nope.onnx");
  auto r = qpipe({"bench", "--model", missing, "--seconds", "0"});
  EXPECT_EQ(r.exit_code, exit_code(ErrorKind::kInput)) << r.describe();
  EXPECT_THAT(r.err, HasSubstr("nope.onnx"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(r.out, "");

  const std::string garbage = dir_.write("garbage.onnx", "this is not a protobuf \x01\x02\x03");
  // A good model first: nothing is timed before every model has loaded.
  auto g = qpipe({"bench", "--model", fp32_model() + "," + garbage, "--seconds", "0"});
  EXPECT_EQ(g.exit_code, exit_code(ErrorKind::kInput)) << g.describe();
  EXPECT_THAT(g.err, HasSubstr("garbage.onnx"));
  EXPECT_EQ(g.out, "");
}

TEST_F(CliBench, Fp32ModelGivesOneRowPerBatchAndThreadsAndSkipsIntegerModes) {
  const std::string json = dir_.file("bench.json");
  auto r = qpipe({"bench", "--model", fp32_model(), "--batch", "1,3", "--threads", "1,2", "--exec-mode", "all",
                  "--seconds", "0", "--json", json});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("synthetic"));
  EXPECT_THAT(r.out, HasSubstr("| model | mode | ISA path | batch | threads | images/s | GFLOP/s | ms/batch | RSS MiB |"));
  EXPECT_THAT(r.out, HasSubstr("skipped: tiny_conv ort-avx2: FP32 model"));
  EXPECT_THAT(r.out, HasSubstr("skipped: tiny_conv exact: FP32 model"));
  EXPECT_THAT(r.out, HasSubstr("peak RSS"));
  const auto rows = table_rows(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  const std::vector<std::pair<std::string, std::string>> want = {{"1", "1"}, {"1", "2"}, {"3", "1"}, {"3", "2"}};
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ASSERT_EQ(rows[i].size(), 9u) << r.out;
    EXPECT_EQ(rows[i][0], "tiny_conv");
    EXPECT_EQ(rows[i][1], "reference");
    EXPECT_FALSE(rows[i][2].empty());
    EXPECT_EQ(rows[i][3], want[i].first);
    EXPECT_EQ(rows[i][4], want[i].second);
    EXPECT_GT(std::stod(rows[i][5]), 0.0);  // images/s: positive, value not asserted
  }

  const nlohmann::json j = nlohmann::json::parse(testing::read_whole_file(json));
  EXPECT_EQ(j["input"], "synthetic");
  ASSERT_EQ(j["rows"].size(), 4u);
  for (const auto& row : j["rows"]) {
    EXPECT_EQ(row["macs_per_image"].get<int64_t>(), kTinyMacs);
    EXPECT_GE(row["runs"].get<int>(), 3);
    EXPECT_GT(row["ms_per_batch"].get<double>(), 0.0);
    EXPECT_LE(row["ms_min"].get<double>(), row["ms_per_batch"].get<double>());
  }
  ASSERT_EQ(j["skipped"].size(), 2u);
  EXPECT_EQ(j["skipped"][0]["mode"], "ort-avx2");
}

TEST_F(CliBench, QdqModelRunsEveryRequestedModeWithTheSameMacs) {
  const std::string json = dir_.file("qdq.json");
  auto r = qpipe({"bench", "--model", qdq_model() + "," + fp32_model(), "--batch", "2", "--threads", "1",
                  "--exec-mode", "reference,ort-avx2", "--seconds", "0", "--json", json});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto rows = table_rows(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  EXPECT_EQ(rows[0][0], "tiny_conv_qdq");
  EXPECT_EQ(rows[0][1], "reference");
  EXPECT_EQ(rows[1][0], "tiny_conv_qdq");
  EXPECT_EQ(rows[1][1], "ort-avx2");
  EXPECT_EQ(rows[2][0], "tiny_conv");
  EXPECT_EQ(rows[2][1], "reference");
  EXPECT_THAT(r.out, HasSubstr("skipped: tiny_conv ort-avx2"));
  EXPECT_THAT(r.out, Not(HasSubstr("skipped: tiny_conv_qdq")));
  const nlohmann::json j = nlohmann::json::parse(testing::read_whole_file(json));
  for (const auto& row : j["rows"]) EXPECT_EQ(row["macs_per_image"].get<int64_t>(), kTinyMacs);
}

TEST_F(CliBench, DataFeedsCifarImagesAndChecksTheInputShape) {
  testing::ScratchDir data("cli_bench_data");
  testing::write_cifar_fixture(data, 3);
  // Batch 5 from 3 records: the images repeat.
  auto r = qpipe({"bench", "--model", fp32_model(), "--data", data.path(), "--batch", "5", "--threads", "1",
                  "--exec-mode", "reference", "--seconds", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("CIFAR-10 test images"));
  EXPECT_EQ(table_rows(r.out).size(), 1u) << r.out;

  // A dataset folder that does not exist: input error before timing.
  auto bad = qpipe({"bench", "--model", fp32_model(), "--data", data.file("missing"), "--seconds", "0"});
  EXPECT_EQ(bad.exit_code, exit_code(ErrorKind::kInput)) << bad.describe();
  EXPECT_EQ(bad.out, "");
}

}  // namespace
}  // namespace qpipe
