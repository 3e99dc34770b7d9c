// Distributions: code histograms, clipping and codes used on known values.

#include "quant/analysis/distributions.h"

#include <gtest/gtest.h>

#include "quant/analysis/test_models.h"

namespace qpipe::analysis {
namespace {

using testing::GraphBuilder;

TEST(AnalysisDistributions, KnownValuesOnTheGrid) {
  Tensor w = Tensor::from<float>({4}, std::vector<float>{0.1f, -0.1f, 0.25f, 0.0f});
  Model fp32 = GraphBuilder("fp32").input("x", {-1, 6}).init("w", w).node("Relu", {"x"}, {"out"}).output("out").build();
  Model qdq = GraphBuilder("qdq")
                  .input("x", {-1, 6})
                  .qdq("x", 0.5f, 0)
                  .const_qdq("w", w, 0.1f)
                  .node("Relu", {"x_dq"}, {"out"})
                  .output("out")
                  .build();
  // Codes: -64.5/0.5 = -129 (clipped low -> -128), 0, 1, 2, 127, 200 (clipped high -> 127).
  Tensor in = Tensor::from<float>({2, 6}, std::vector<float>{-64.5f, 0.f, 0.5f, 1.f, 63.5f, 100.f,  //
                                                             0.f, 0.f, 0.f, 0.5f, 0.5f, 1.f});
  DistributionResult r = analyze_distributions(fp32, QdqGraph(qdq), testing::tensor_data(in, {0, 0}, 1));
  EXPECT_EQ(r.images, 2);
  const TensorDistribution* x = r.find("x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->count, 12);
  EXPECT_EQ(x->clipped_low, 1);
  EXPECT_EQ(x->clipped_high, 1);
  EXPECT_EQ(x->codes_used(), 5);  // -128, 0, 1, 2, 127
  EXPECT_EQ(x->codes_total(), 256);
  EXPECT_EQ(x->code_hist[0], 1);
  EXPECT_EQ(x->code_hist[128], 4);  // code 0
  EXPECT_EQ(x->code_hist[129], 3);  // code 1
  EXPECT_EQ(x->code_hist[255], 2);  // 63.5 and the clipped 100
  EXPECT_DOUBLE_EQ(x->min, -64.5);
  EXPECT_DOUBLE_EQ(x->max, 100);
  EXPECT_DOUBLE_EQ(x->grid_min, -64);
  EXPECT_DOUBLE_EQ(x->grid_max, 63.5);
  // The constant: codes 1, -1, 2 (0.25/0.1 = 2.5 rounds to even 2), 0.
  const TensorDistribution* wd = r.find("w");
  ASSERT_NE(wd, nullptr);
  EXPECT_EQ(wd->kind, "constant");
  EXPECT_EQ(wd->codes_used(), 4);
  EXPECT_EQ(wd->code_hist[130], 1);
  auto j = distributions_to_json(r);
  EXPECT_EQ(j["schema"], "distributions");
  EXPECT_EQ(j["tensors"][0]["code_histogram"].size(), 256u);
  const std::string svg = histogram_chart_svg(*x);
  EXPECT_NE(svg.find("5 of 256 codes used"), std::string::npos);
}

}  // namespace
}  // namespace qpipe::analysis
