// Residual-Add analysis on a two-input Add with known scales.

#include "quant/analysis/residual.h"

#include <gtest/gtest.h>

#include "engine/error.h"
#include "quant/analysis/test_models.h"

namespace qpipe::analysis {
namespace {

using testing::GraphBuilder;

Model two_adds() {
  // a, b, c inputs; r1 = a + b (scales 0.1, 0.3: ratio 3), r2 = r1 + c
  // (0.2 vs 0.15: ratio 1.333), plus a constant Add that is not a residual join.
  Tensor k = Tensor::from<float>({1}, std::vector<float>{0.5f});
  return GraphBuilder("adds")
      .input("a", {-1, 4})
      .input("b", {-1, 4})
      .input("c", {-1, 4})
      .qdq("a", 0.1f, 0)
      .qdq("b", 0.3f, 3)
      .qdq("c", 0.15f, -2)
      .node("Add", {"a_dq", "b_dq"}, {"r1"}, "join1")
      .qdq("r1", 0.2f, 0)
      .node("Add", {"r1_dq", "c_dq"}, {"r2"}, "join2")
      .qdq("r2", 0.25f, 0)
      .const_qdq("k", k, 0.01f)
      .node("Add", {"r2_dq", "k_dq"}, {"out"}, "bias")
      .output("out")
      .build();
}

TEST(AnalysisResidual, KnownScalesRatiosAndMultipliers) {
  QdqGraph g(two_adds());
  ResidualResult r = analyze_residual(g, nullptr);
  ASSERT_EQ(r.adds.size(), 2u);  // the constant Add is not a join
  const auto& j1 = r.adds[0];
  EXPECT_EQ(j1.node, "join1");
  EXPECT_EQ(j1.input_a, "a");
  EXPECT_EQ(j1.input_b, "b");
  EXPECT_EQ(j1.b.zero_point, 3);
  EXPECT_NEAR(j1.ratio, 3.0, 1e-6);
  EXPECT_TRUE(j1.flagged);
  ASSERT_TRUE(j1.has_output_quant);
  EXPECT_FLOAT_EQ(j1.out.scale, 0.2f);
  // tflite rescaling: common scale 2·0.3 = 0.6; m_a = 1/6, m_b = 1/2.
  EXPECT_NEAR(j1.common_scale, 0.6, 1e-6);
  EXPECT_NEAR(quantized_multiplier_value(j1.mult_a), 1.0 / 6, 1e-8);
  EXPECT_NEAR(quantized_multiplier_value(j1.mult_b), 0.5, 1e-8);
  EXPECT_NEAR(quantized_multiplier_value(j1.mult_out), 0.6 / (1048576.0 * 0.2), 1e-12);
  const auto& j2 = r.adds[1];
  EXPECT_NEAR(j2.ratio, 0.2 / 0.15, 1e-6);
  EXPECT_FALSE(j2.flagged);
  EXPECT_EQ(r.flagged, 1);
  EXPECT_NEAR(r.min_ratio, 0.2 / 0.15, 1e-6);
  EXPECT_NEAR(r.max_ratio, 3.0, 1e-6);
  // The threshold is configurable.
  ResidualOptions o;
  o.ratio_threshold = 1.2;
  EXPECT_EQ(analyze_residual(g, nullptr, o).flagged, 2);
  o.ratio_threshold = 0.5;
  EXPECT_THROW(analyze_residual(g, nullptr, o), PtqError);
  auto js = residual_to_json(r);
  EXPECT_EQ(js["schema"], "residual");
  EXPECT_EQ(js["adds"][0]["flagged"], true);
  EXPECT_NE(residual_markdown(r).find("join1"), std::string::npos);
}

}  // namespace
}  // namespace qpipe::analysis
