// qpipe analyze end to end on a small subset of the real data: every output
// file is written, JSON schemas are tagged, usage errors exit with kUsage.

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fmt/format.h>

#include "pipeline/text_util.h"
#include "pipeline/atomic_file.h"
#include "tests/test_support.h"

namespace {

namespace fs = std::filesystem;

int run(const std::string& cmd) {
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST(AnalysisCli, WritesJsonSvgAndSummary) {
  QPIPE_REQUIRE_SHARED(shared);
  const fs::path out = fs::temp_directory_path() / fmt::format("qpipe_analyze_{}", ::getpid());
  fs::remove_all(out);
  const std::string cmd = fmt::format(
      "{} analyze --fp32 {}/models/resnet8.onnx --qdq {}/models/resnet8_int8_ort_reference.onnx --data "
      "{}/data/cifar-10-batches-bin --max-samples 40 --layers conv2d,add_2 --out {} --threads 2 2>/dev/null",
      qpipe::testing::qpipe_bin(), shared, shared, shared, out.string());
  ASSERT_EQ(run(cmd), 0) << cmd;
  for (const char* name : {"sqnr", "residual", "sensitivity", "distributions", "overflow"}) {
    auto j = qpipe::read_json_file((out / (std::string(name) + ".json")).string());
    EXPECT_EQ(j["schema"], name);
    EXPECT_EQ(j["schema_version"], 1);
  }
  for (const char* svg : {"sqnr.svg", "residual.svg", "sensitivity_only_quantized.svg", "sensitivity_keep_float.svg"})
    EXPECT_TRUE(fs::exists(out / svg)) << svg;
  EXPECT_TRUE(fs::exists(out / "hist"));
  const std::string md = qpipe::read_file(out / "summary.md");
  EXPECT_NE(md.find("## Residual Adds"), std::string::npos);
  EXPECT_NE(md.find("conv2d"), std::string::npos);
  auto res = qpipe::read_json_file((out / "residual.json").string());
  EXPECT_NEAR(res["min_ratio"].get<double>(), 2.65, 0.005);
  EXPECT_NEAR(res["max_ratio"].get<double>(), 3.32, 0.005);
  // Unknown analysis name: usage error (exit 2).
  EXPECT_EQ(run(fmt::format("{} analyze --fp32 a --qdq b --data c --what sqnr,residuals 2>/dev/null",
                            qpipe::testing::qpipe_bin())),
            2);
  fs::remove_all(out);
}

}  // namespace
