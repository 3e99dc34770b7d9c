// exec_mode "exact" through the user-facing entry points (needs ../shared and
// the qpipe binary): `qpipe eval --exec-mode exact` writes exec_mode "exact"
// and agrees with reference mode on the first 500 test images; an `evaluate`
// stage with `exec_mode: exact` runs in `qpipe run` and passes an accuracy
// gate, and an unknown exec_mode is a spec error listing "exact".

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "tests/fixtures/process.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;
using testing::ProcessResult;
using testing::ScratchDir;

#define REQUIRE_QPIPE_BINARY()                                          \
  if (!fs::exists(testing::qpipe_bin())) {                              \
    GTEST_SKIP() << "qpipe binary not built: " << testing::qpipe_bin(); \
  }

nlohmann::json eval_json(const std::string& shared, const std::string& mode, const ScratchDir& dir) {
  const std::string out = dir.file(mode + ".json");
  ProcessResult r = testing::run_process({testing::qpipe_bin(), "eval", "--model",
                                          shared + "/models/resnet8_int8_ort_reference.onnx", "--data",
                                          shared + "/data/cifar-10-batches-bin", "--max-samples", "500",
                                          "--threads", "2", "--exec-mode", mode, "--predictions", "--json", out});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  if (r.exit_code != 0) return {};
  return nlohmann::json::parse(testing::read_whole_file(out));
}

TEST(ExactCli, EvalExecModeExactAgreesWithReference) {
  QPIPE_REQUIRE_SHARED(shared);
  REQUIRE_QPIPE_BINARY();
  ScratchDir dir("exact_cli");
  const nlohmann::json ex = eval_json(shared, "exact", dir);
  const nlohmann::json ref = eval_json(shared, "reference", dir);
  ASSERT_FALSE(ex.empty());
  ASSERT_FALSE(ref.empty());
  EXPECT_EQ(ex.value("exec_mode", ""), "exact");
  ASSERT_EQ(ex["overall"]["total"].get<int>(), 500);
  const auto& pe = ex.at("predictions");
  const auto& pr = ref.at("predictions");
  ASSERT_EQ(pe.size(), pr.size());
  int same = 0;
  for (std::size_t i = 0; i < pe.size(); ++i) same += pe[i] == pr[i];
  EXPECT_GE(same, 495);  // >= 99% on 500 images (99.69% on all 10,000)
  EXPECT_NEAR(ex["overall"]["correct"].get<double>(), ref["overall"]["correct"].get<double>(), 5.0);
}

TEST(ExactCli, EvaluateStageAcceptsExecModeExact) {
  QPIPE_REQUIRE_SHARED(shared);
  REQUIRE_QPIPE_BINARY();
  ScratchDir dir("exact_stage");
  auto spec = [&](const std::string& mode) {
    return R"(experiment: exact-stage
settings: {batch_size: 100}
stages:
  test_set:
    type: dataset
    params: {path: ")" + shared + R"(/data/cifar-10-batches-bin", split: test, max_samples: 200}
  int8:
    type: load_model
    params: {path: ")" + shared + R"(/models/resnet8_int8_ort_reference.onnx"}
  eval_exact:
    type: evaluate
    inputs: {model: int8.model, data: test_set.dataset}
    params: {dtype: int8, exec_mode: )" + mode + R"(}
gates:
  - name: floor
    metric: eval_exact.overall.accuracy
    op: ">="
    value: 0.8
)";
  };
  auto run = [&](const std::string& file) {
    return testing::run_process({testing::qpipe_bin(), "run", file, "--cache-dir", dir.file("cache"), "--reports-dir",
                                 dir.file("reports"), "--threads", "2"});
  };
  ProcessResult ok = run(dir.write("exact.yaml", spec("exact")));
  EXPECT_EQ(ok.exit_code, 0) << ok.describe();
  ProcessResult bad = run(dir.write("bad.yaml", spec("exakt")));
  EXPECT_EQ(bad.exit_code, 3) << bad.describe();
  EXPECT_NE((bad.out + bad.err).find("exact"), std::string::npos) << bad.describe();
}

}  // namespace
}  // namespace qpipe
