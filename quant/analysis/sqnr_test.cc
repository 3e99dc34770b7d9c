// SQNR on synthetic cases with analytically known answers.

#include "quant/analysis/sqnr.h"

#include <gtest/gtest.h>

#include <cmath>

#include "quant/analysis/test_models.h"

namespace qpipe::analysis {
namespace {

using testing::GraphBuilder;

TEST(AnalysisSqnr, ErrorStatsExactDecibels) {
  // x = ±2 (power 4), noise = ±0.02 (power 4e-4): 10·log10(4 / 4e-4) = 40 dB exactly.
  std::vector<float> x, y;
  for (int i = 0; i < 1000; ++i) {
    const float v = i % 3 ? 2.0f : -2.0f;
    x.push_back(v);
    y.push_back(v + (i % 2 ? 0.02f : -0.02f));
  }
  ErrorStats s;
  s.add(x, y);
  EXPECT_NEAR(s.sqnr_db(), 40.0, 1e-4);
  EXPECT_NEAR(s.max_abs, 0.02, 1e-6);
  EXPECT_GT(s.cosine(), 0.9999);
  // Merging partials equals one pass.
  ErrorStats a, b;
  a.add(std::span(x).first(400), std::span(y).first(400));
  b.add(std::span(x).subspan(400), std::span(y).subspan(400));
  a.merge(b);
  EXPECT_NEAR(a.sqnr_db(), s.sqnr_db(), 1e-9);
  EXPECT_EQ(a.count, 1000);
  // Identical values: infinite SQNR, reported as exact.
  ErrorStats e;
  e.add(x, x);
  EXPECT_TRUE(std::isinf(e.sqnr_db()));
  EXPECT_TRUE(e.to_json(false)["exact"].get<bool>());
  EXPECT_TRUE(e.to_json(false)["sqnr_db"].is_null());
}

TEST(AnalysisSqnr, ClippingCountsValuesOutsideTheGrid) {
  QuantParams p = make_qparams(0.5f, 0, QType::kInt8);  // grid [-64, 63.5]
  ErrorStats s;
  std::vector<float> x = {-70.f, -64.f, 0.f, 63.5f, 63.8f, 100.f};
  s.add(x, x);
  s.add_clipping(x, p);
  EXPECT_EQ(s.clipped_low, 1);   // -70 -> code -140
  EXPECT_EQ(s.clipped_high, 2);  // 63.8 -> 128 (rounds up), 100
}

// A chain x -> Mul(1) -> y -> Mul(1) -> z with Q/DQ on x, y, z. Uniform x in
// [-A, A] quantized with step s has noise s²/12 against power A²/3:
// SQNR = 20·log10(2A/s). x is coarse (s = A/4: 18.06 dB), y and z fine
// (s = A/127: 48.10 dB). Accumulated z carries x's error; local z does not.
TEST(AnalysisSqnr, UniformNoiseGivesKnownDecibelsAccumulatedAndLocal) {
  const float A = 8.0f, sx = A / 4, sf = A / 127;
  Tensor one = Tensor::from<float>({1}, std::vector<float>{1.0f});
  Model fp32 = GraphBuilder("fp32")
                   .input("x", {-1, 64})
                   .init("c1", one)
                   .init("c2", one)
                   .node("Mul", {"x", "c1"}, {"y"})
                   .node("Mul", {"y", "c2"}, {"z"})
                   .output("z")
                   .build();
  Model qdq = GraphBuilder("qdq")
                  .input("x", {-1, 64})
                  .qdq("x", sx, 0)
                  .const_qdq("c1", one, 1.0f / 64)
                  .const_qdq("c2", one, 1.0f / 64)
                  .node("Mul", {"x_dq", "c1_dq"}, {"y"})
                  .qdq("y", sf, 0)
                  .node("Mul", {"y_dq", "c2_dq"}, {"z"})
                  .qdq("z", sf, 0)
                  .output("z_dq")
                  .build();
  // x uniform in [-A, A]: the rounding error is uniform over whole grid cells
  // (the two half cells at ±A make one), so its power is exactly s²/12.
  Tensor in = testing::random_tensor({500, 64}, 7, -A, A);
  AnalysisData data = testing::tensor_data(in, std::vector<int>(500, 0), 1);
  QdqGraph g(qdq);
  SqnrOptions o;
  o.batch = 64;
  SqnrResult r = analyze_sqnr(fp32, g, data, o);
  EXPECT_EQ(r.images, 500);
  const double expect_x = 20 * std::log10(2 * A / sx), expect_f = 20 * std::log10(2 * A / sf);
  const auto* x = r.find("x");
  const auto* y = r.find("y");
  const auto* z = r.find("z");
  ASSERT_TRUE(x && y && z);
  // 32,000 samples: the sample powers are within ~1% (0.05 dB) of the expectation.
  EXPECT_NEAR(x->accumulated.sqnr_db(), expect_x, 0.2);
  EXPECT_NEAR(x->local.sqnr_db(), expect_x, 0.2);
  // y reads x_dq: locally too it sees x's coarse grid (local = the op with its
  // own input quantization, fed FP32 values).
  EXPECT_NEAR(y->local.sqnr_db(), expect_x, 0.2);
  // z: accumulated carries x's error; local only y's fine grid (z's grid is
  // the same, so re-quantizing is exact).
  EXPECT_NEAR(z->accumulated.sqnr_db(), expect_x, 0.2);
  EXPECT_NEAR(z->local.sqnr_db(), expect_f, 0.2);
  EXPECT_EQ(y->accumulated.clipped_fraction(), 0.0);
  EXPECT_TRUE(z->model_output);
  EXPECT_NEAR(r.output.sqnr_db(), z->accumulated.sqnr_db(), 1e-9);
  // Constants: 1.0 at scale 1/64 is exact.
  ASSERT_EQ(r.constants.size(), 2u);
  EXPECT_TRUE(std::isinf(r.constants[0].accumulated.sqnr_db()));
  // Batch size changes only the summation grouping, not the result beyond rounding.
  o.batch = 500;
  SqnrResult r2 = analyze_sqnr(fp32, g, data, o);
  EXPECT_NEAR(r2.find("z")->accumulated.sqnr_db(), z->accumulated.sqnr_db(), 1e-9);
  auto j = sqnr_to_json(r);
  EXPECT_EQ(j["schema"], "sqnr");
  EXPECT_EQ(j["schema_version"], 1);
  EXPECT_EQ(j["activations"].size(), 3u);
}

}  // namespace
}  // namespace qpipe::analysis
