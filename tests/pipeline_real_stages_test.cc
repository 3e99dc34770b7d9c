// `qpipe run` with the production stage types (dataset, load_model, quantize,
// evaluate, sqnr, sqnr_compare) through the CLI binary: a small real spec on
// the shared CIFAR-10 / ResNet8 runs, passes its gates and is fully reused on
// a second run; bad inputs (missing or corrupt model, missing dataset folder,
// an unsupported op, a gate on an unknown metric) give the documented exit
// code and a message naming the culprit. Cache and reports live in temp dirs.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/graph.h"
#include "tests/fixtures/process.h"
#include "tests/fixtures/tiny_models.h"
#include "tests/pipeline_test_util.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using testing::ProcessResult;
using testing::ScratchDir;

// Runs `qpipe run <spec>` with the scratch folder's cache and reports.
ProcessResult qpipe_run(const ScratchDir& dir, const std::string& spec, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {testing::qpipe_bin(), "run",          spec,     "--cache-dir",
                                   dir.file("cache"),    "--reports-dir", dir.file("reports"), "--threads",
                                   "2"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  return testing::run_process(argv);
}

std::string describe(const ProcessResult& r) { return "stdout:\n" + r.out + "\nstderr:\n" + r.err; }

#define REQUIRE_QPIPE_BINARY()                                          \
  if (!fs::exists(testing::qpipe_bin())) {                              \
    GTEST_SKIP() << "qpipe binary not built: " << testing::qpipe_bin(); \
  }

// The small real spec: 200 test images, int8 PTQ on 100 calibration images,
// FP32 and int8 evaluations, SQNR of int8 and per-channel int8 on 50 images
// and their comparison.
std::string small_spec(const std::string& shared) {
  return R"(experiment: real-small
description: small real run for the tests
settings: {batch_size: 100}
vars:
  shared_dir: ")" + shared + R"("
stages:
  test_set:
    type: dataset
    params: {path: "${vars.shared_dir}/data/cifar-10-batches-bin", split: test, max_samples: 200}
  train_set:
    type: dataset
    params: {path: "${vars.shared_dir}/data/cifar-10-batches-bin", split: train}
  fp32:
    type: load_model
    params: {path: "${vars.shared_dir}/models/resnet8.onnx"}
  quant:
    type: quantize
    matrix: {pc: [false, true]}
    params:
      sampler: numpy
      seed: 42
      per_class: 10
      draw: 1
      config: {activation_type: int8, weight_type: int8, per_channel: "${matrix.pc}"}
    inputs: {model: fp32.model, calibration_data: train_set.dataset}
  eval_fp32:
    type: evaluate
    inputs: {model: fp32.model, data: test_set.dataset}
    params: {dtype: float32}
  eval_int8:
    type: evaluate
    inputs: {model: "quant[pc=false].model", data: test_set.dataset}
    params: {dtype: int8}
  sqnr:
    type: sqnr
    matrix: {pc: [false, true]}
    inputs: {fp32: fp32.model, qdq: quant.model, data: test_set.dataset}
    params: {max_samples: 50, local: false, label: "int8 pc=${matrix.pc}"}
  gain:
    type: sqnr_compare
    inputs: {sqnr: sqnr.result}
    params: {baseline: "int8 pc=false"}
gates:
  - name: floor
    for_each: evaluate
    metric: overall.accuracy
    op: ">="
    value: 0.75
  - name: drop
    metric: eval_int8.overall.accuracy
    drop_vs: eval_fp32
    op: "<="
    value: 5
)";
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(testing::read_whole_file(p.string())); }

TEST(PipelineRealStages, SmallRealSpecRunsPassesAndIsReusedOnSecondRun) {
  QPIPE_REQUIRE_SHARED(shared);
  REQUIRE_QPIPE_BINARY();
  ScratchDir dir("real_small");
  const std::string spec = dir.write("real.yaml", small_spec(shared));

  ProcessResult first = qpipe_run(dir, spec);
  ASSERT_FALSE(first.signaled) << describe(first);
  ASSERT_EQ(first.exit_code, 0) << describe(first);

  const fs::path latest = fs::path(dir.file("reports")) / "real-small" / "latest";
  nlohmann::json report = read_json(latest / "report.json");
  EXPECT_EQ(report.value("status", ""), "passed");
  nlohmann::json run1 = read_json(latest / "run.json");
  ASSERT_TRUE(run1.contains("stages")) << run1.dump(1);
  const auto& st1 = run1["stages"];
  // 3 inputs + 2 quantize + 2 evaluate + 2 sqnr + 1 sqnr_compare.
  EXPECT_EQ(st1.size(), 10u) << st1.dump(1);
  for (const auto& [id, s] : st1.items()) EXPECT_EQ(s.value("cache", ""), "miss") << id;

  // The evaluations are real: the FP32 model gets most of 200 images right.
  int checked = 0;
  for (const auto& s : report["stages"]) {
    if (s.value("type", "") != "evaluate") continue;
    nlohmann::json eval = read_json(fs::path(dir.file("cache")) / s["outputs"]["eval"]["path"].get<std::string>());
    EXPECT_EQ(eval["overall"]["total"], 200);
    EXPECT_GE(eval["overall"]["accuracy"].get<double>(), 0.75) << s["id"];
    ++checked;
  }
  EXPECT_EQ(checked, 2);

  // sqnr_compare lines up both variants and names the top layers.
  bool saw_gain = false;
  for (const auto& s : report["stages"]) {
    if (s.value("type", "") != "sqnr_compare") continue;
    nlohmann::json g = read_json(fs::path(dir.file("cache")) / s["outputs"]["result"]["path"].get<std::string>());
    EXPECT_EQ(g["baseline"], "int8 pc=false");
    ASSERT_EQ(g["variants"].size(), 2u);
    EXPECT_GT(g["tensors"].size(), 10u);
    ASSERT_TRUE(g["top_gains"].contains("int8 pc=true")) << g["top_gains"].dump();
    EXPECT_LE(g["top_gains"]["int8 pc=true"].size(), 5u);
    for (const auto& e : g["top_activation_gains"]["int8 pc=true"]) EXPECT_EQ(e["kind"], "activation");
    // Ranked by gain, largest first.
    const auto& top = g["top_gains"]["int8 pc=true"];
    for (size_t k = 1; k < top.size(); ++k) EXPECT_GE(top[k - 1]["gain_db"].get<double>(), top[k]["gain_db"].get<double>());
    EXPECT_THAT(g["report"]["markdown"].get<std::string>(), HasSubstr("int8 pc=true"));
    saw_gain = true;
  }
  EXPECT_TRUE(saw_gain);

  ProcessResult second = qpipe_run(dir, spec);
  ASSERT_EQ(second.exit_code, 0) << describe(second);
  nlohmann::json run2 = read_json(latest / "run.json");
  EXPECT_NE(run2.value("run_id", ""), run1.value("run_id", ""));
  ASSERT_EQ(run2["stages"].size(), 10u);
  for (const auto& [id, s] : run2["stages"].items()) EXPECT_EQ(s.value("cache", ""), "hit") << id;
}

// A spec with one model and an evaluation on a dataset folder.
std::string eval_spec(const std::string& model, const std::string& data, const std::string& gates = "") {
  return "experiment: bad-input\nstages:\n"
         "  test_set:\n    type: dataset\n    params: {path: \"" + data + "\", split: test}\n"
         "  model:\n    type: load_model\n    params: {path: \"" + model + "\"}\n"
         "  eval:\n    type: evaluate\n    inputs: {model: model.model, data: test_set.dataset}\n" +
         gates;
}

class PipelineRealStagesBadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::qpipe_bin())) GTEST_SKIP() << "qpipe binary not built: " << testing::qpipe_bin();
    // A 20-record CIFAR-10 fixture and a tiny runnable model (milliseconds).
    testing::write_cifar_fixture(cifar_dir_, 20);
    cifar_ = cifar_dir_.path();
    good_model_ = dir_.file("tiny.onnx");
    save_onnx(testing::tiny_classifier(), good_model_);
  }
  ScratchDir dir_{"real_bad"};
  ScratchDir cifar_dir_{"real_cifar"};
  std::string cifar_, good_model_;
};

TEST_F(PipelineRealStagesBadInput, FixtureSpecRuns) {
  // The control: the same spec with good inputs runs (so the failures below
  // come from the bad input, not from the spec).
  ProcessResult r = qpipe_run(dir_, dir_.write("ok.yaml", eval_spec(good_model_, cifar_)));
  EXPECT_EQ(r.exit_code, 0) << describe(r);
}

TEST_F(PipelineRealStagesBadInput, MissingModelFileIsExit4NamingTheFile) {
  const std::string missing = dir_.file("no_such_model.onnx");
  ProcessResult r = qpipe_run(dir_, dir_.write("spec.yaml", eval_spec(missing, cifar_)));
  EXPECT_EQ(r.exit_code, 4) << describe(r);
  EXPECT_THAT(r.err + r.out, HasSubstr("no_such_model.onnx"));
}

TEST_F(PipelineRealStagesBadInput, CorruptModelFileIsExit4NamingTheFile) {
  const std::string corrupt = dir_.write("corrupt.onnx", std::string("this is not a protobuf \x01\xff\xfe garbage", 40));
  ProcessResult r = qpipe_run(dir_, dir_.write("spec.yaml", eval_spec(corrupt, cifar_)));
  EXPECT_EQ(r.exit_code, 4) << describe(r);
  EXPECT_THAT(r.err + r.out, HasSubstr("corrupt.onnx"));
  EXPECT_FALSE(r.signaled);
}

TEST_F(PipelineRealStagesBadInput, MissingDatasetFolderIsExit4) {
  const std::string missing = dir_.file("no_cifar_here");
  ProcessResult r = qpipe_run(dir_, dir_.write("spec.yaml", eval_spec(good_model_, missing)));
  EXPECT_EQ(r.exit_code, 4) << describe(r);
  EXPECT_THAT(r.err + r.out, HasSubstr("no_cifar_here"));
}

TEST_F(PipelineRealStagesBadInput, UnsupportedOpIsExit5NamingTheOp) {
  const std::string model = dir_.file("hardswish.onnx");
  save_onnx(testing::tiny_classifier("HardSwish"), model);
  ProcessResult r = qpipe_run(dir_, dir_.write("spec.yaml", eval_spec(model, cifar_)));
  EXPECT_EQ(r.exit_code, 5) << describe(r);
  EXPECT_THAT(r.err + r.out, HasSubstr("HardSwish"));
}

TEST_F(PipelineRealStagesBadInput, GateOnUnknownMetricIsExit3BeforeRunning) {
  const std::string gates =
      "gates:\n  - name: bogus\n    metric: eval.overal.accuracy\n    op: \">=\"\n    value: 0.5\n";
  ProcessResult r = qpipe_run(dir_, dir_.write("spec.yaml", eval_spec(good_model_, cifar_, gates)));
  EXPECT_EQ(r.exit_code, 3) << describe(r);
  EXPECT_THAT(r.err + r.out, HasSubstr("overal"));
  // Nothing ran: no report was written.
  EXPECT_FALSE(fs::exists(fs::path(dir_.file("reports")) / "bad-input" / "latest"));
}

}  // namespace
}  // namespace qpipe
