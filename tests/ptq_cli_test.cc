// `qpipe quantize` end to end through the binary: the study's parameters as
// overrides (no calibration needed) give the 32 Q / 66 DQ model, which passes
// the checker and reloads; a small real calibration with a what-if override
// (scale × 2) and bias correction writes its JSON; bad input exits with the
// right code and names the problem.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "quant/qdq_rewrite.h"
#include "tests/fixtures/process.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

testing::ProcessResult qpipe(std::vector<std::string> args) {
  args.insert(args.begin(), testing::qpipe_bin());
  return testing::run_process(args);
}

class PtqCli : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fs::exists(testing::qpipe_bin())) << testing::qpipe_bin() << " not built";
    dir_ = fs::temp_directory_path() / ("qpipe_ptq_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(PtqCli, StudyOverridesReproduceTheReferenceLayout) {
  QPIPE_REQUIRE_SHARED(shared);
  auto r = qpipe({"quantize", "--model", shared + "/models/resnet8.onnx", "--out", path("q.onnx"), "--overrides",
                  shared + "/reference/ort_int8_quant_params.json", "--name-map",
                  shared + "/reference/ort_tensor_name_map.json", "--json", path("q.json")});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("32 QuantizeLinear, 66 DequantizeLinear"));
  Model q = load_onnx(path("q.onnx"));
  EXPECT_NO_THROW(check_onnx_model(q));
  Model ref = load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx");
  ASSERT_EQ(q.graph.nodes.size(), ref.graph.nodes.size());
  for (std::size_t i = 0; i < ref.graph.nodes.size(); ++i) EXPECT_EQ(q.graph.nodes[i].name, ref.graph.nodes[i].name);
  std::ifstream in(path("q.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str());
  EXPECT_EQ(j["params"]["quantize_linear"], 32);
  EXPECT_EQ(j["config"]["activation_type"], "int8");
}

TEST_F(PtqCli, CalibratesWithWhatIfOverrideAndBiasCorrection) {
  QPIPE_REQUIRE_SHARED(shared);
  std::ofstream(path("whatif.json")) << R"({"tensors": {"activation_3": {"scale_factor": 2.0}}})";
  auto r = qpipe({"quantize", "--model", shared + "/models/resnet8.onnx", "--data",
                  shared + "/data/cifar-10-batches-bin", "--out", path("q.onnx"), "--calib-per-class", "5",
                  "--per-channel", "--overrides", path("whatif.json"), "--bias-correction", "--json", path("q.json"),
                  "--threads", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_THAT(r.out, HasSubstr("50 images"));
  EXPECT_THAT(r.out, HasSubstr("9 nodes corrected"));
  std::ifstream in(path("q.json"));
  std::stringstream ss;
  ss << in.rdbuf();
  auto j = nlohmann::json::parse(ss.str());
  double calibrated = 0, used = 0;
  for (const auto& row : j["calibration"]["tensors"])
    if (row["tensor"] == "activation_3") calibrated = row["range"]["max"].get<double>();
  for (const auto& row : j["params"]["tensors"])
    if (row["tensor"] == "activation_3") used = row["scale"].get<double>();
  ASSERT_GT(calibrated, 0.0);
  EXPECT_NEAR(used, 2.0 * calibrated / 255.0, 1e-6 * used);
  EXPECT_EQ(j["bias_correction"]["nodes"].size(), 9u);
  EXPECT_NO_THROW(check_onnx_model(load_onnx(path("q.onnx"))));
}

TEST_F(PtqCli, BadInputExitsWithTheRightCode) {
  QPIPE_REQUIRE_SHARED(shared);
  const std::string model = shared + "/models/resnet8.onnx";
  auto bad_type = qpipe({"quantize", "--model", model, "--out", path("q.onnx"), "--act-type", "int4"});
  EXPECT_EQ(bad_type.exit_code, exit_code(ErrorKind::kSpec)) << bad_type.describe();
  EXPECT_THAT(bad_type.err, HasSubstr("int4"));

  auto no_data = qpipe({"quantize", "--model", model, "--out", path("q.onnx")});
  EXPECT_EQ(no_data.exit_code, exit_code(ErrorKind::kInput)) << no_data.describe();
  EXPECT_THAT(no_data.err, HasSubstr("no calibration images"));

  std::ofstream(path("bad.json")) << R"({"tensors": {"not_a_tensor": {"scale": 1, "zero_point": 0}}})";
  auto unknown = qpipe({"quantize", "--model", model, "--data", shared + "/data/cifar-10-batches-bin", "--out",
                        path("q.onnx"), "--calib-per-class", "1", "--overrides", path("bad.json")});
  EXPECT_EQ(unknown.exit_code, exit_code(ErrorKind::kInput)) << unknown.describe();
  EXPECT_THAT(unknown.err, HasSubstr("'not_a_tensor'"));
  EXPECT_FALSE(fs::exists(path("q.onnx")));

  auto map_only = qpipe({"quantize", "--model", model, "--out", path("q.onnx"), "--name-map", path("bad.json")});
  EXPECT_EQ(map_only.exit_code, exit_code(ErrorKind::kUsage)) << map_only.describe();

  auto bad_order = qpipe({"quantize", "--model", model, "--out", path("q.onnx"), "--calib-order", "mlas"});
  EXPECT_EQ(bad_order.exit_code, exit_code(ErrorKind::kUsage)) << bad_order.describe();
  EXPECT_THAT(bad_order.err, HasSubstr("ort or qpipe"));
}

}  // namespace
}  // namespace qpipe
