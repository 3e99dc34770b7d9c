// Overflow analysis on a 1x1 convolution with one saturating weight pair.

#include "quant/analysis/overflow.h"

#include <gtest/gtest.h>

#include "quant/analysis/test_models.h"

namespace qpipe::analysis {
namespace {

using testing::GraphBuilder;

// x [N,2,4,4] (raw 0..255 at scale 1, zp -128, like ResNet8's first conv)
// -> Conv 1x1 with 2 output channels; channel 0 weights (codes) 100, 50
// (255·150 = 38250 > 32767: flagged), channel 1 weights 100, -50 (opposite
// signs: never). y at scale 2, zp -128, read by one Relu: the conv fuses.
Model conv_model() {
  Tensor w = Tensor::from<float>({2, 2, 1, 1}, std::vector<float>{1.0f, 0.5f, 1.0f, -0.5f});
  return GraphBuilder("conv")
      .input("x", {-1, 2, 4, 4})
      .qdq("x", 1.0f, -128)
      .const_qdq("w", w, 0.01f)
      .node("Conv", {"x_dq", "w_dq"}, {"y"}, "conv")
      .qdq("y", 2.0f, -128)
      .node("Relu", {"y_dq"}, {"out"})
      .output("out")
      .build();
}

TEST(AnalysisOverflow, FlagsTheSameSignPairAndCountsRealOverflows) {
  QdqGraph g(conv_model());
  // Image 0: all 255 (every output of channel 0 overflows); image 1: all 0; image 2: 128.
  Tensor in(DType::kFloat32, {3, 2, 4, 4});
  for (int64_t i = 0; i < 32; ++i) in.data<float>()[i] = 255;
  for (int64_t i = 64; i < 96; ++i) in.data<float>()[i] = 128;
  OverflowResult r = analyze_overflow(g, testing::tensor_data(in, {0, 0, 0}, 1));
  ASSERT_EQ(r.nodes.size(), 1u);
  const NodeOverflow& o = r.nodes[0];
  ASSERT_TRUE(o.analyzable) << o.note;
  EXPECT_TRUE(o.would_fuse) << o.fuse_reason;
  EXPECT_EQ(o.k, 2);
  ASSERT_EQ(o.pairs.size(), 1u);
  EXPECT_EQ(o.pairs[0].out_channel, 0);
  EXPECT_EQ(o.pairs[0].w_a, 100);
  EXPECT_EQ(o.pairs[0].w_b, 50);
  EXPECT_EQ(o.pairs[0].worst, 38250);
  EXPECT_EQ(o.pairs[0].pos_a, "(kh=0,kw=0,c=0)");
  EXPECT_EQ(o.images, 3);
  EXPECT_EQ(o.outputs, 3 * 2 * 16);
  EXPECT_EQ(o.overflowed_outputs, 16);  // image 0, channel 0; 128·150 = 19200 fits
  EXPECT_EQ(o.images_with_overflow, 1);
  // Exact 38250 · 0.005 = 191.25 -> 191; saturated 32767 · 0.005 = 163.8 -> 164.
  EXPECT_EQ(o.changed_codes, 16);
  EXPECT_EQ(o.max_code_change, 27);
  EXPECT_NE(r.advice.find("conv"), std::string::npos);
  auto j = overflow_to_json(r);
  EXPECT_EQ(j["schema"], "overflow");
  EXPECT_EQ(j["nodes"][0]["flagged_pairs"].size(), 1u);
}

TEST(AnalysisOverflow, MultiReaderInputIsNotFusedAndSmallCodeRangeIsSafe) {
  Model m = conv_model();
  // A second reader of x_dq keeps x int8 in ORT: no fusion.
  m.graph.nodes.push_back([] {
    Node n;
    n.op_type = "Relu";
    n.name = "x_relu";
    n.inputs = {"x_dq"};
    n.outputs = {"x_relu"};
    return n;
  }());
  m.graph.outputs.push_back("x_relu");
  QdqGraph g(m);
  Tensor in(DType::kFloat32, {1, 2, 4, 4});
  OverflowOptions oo;
  OverflowResult r = analyze_overflow(g, testing::tensor_data(in, {0}, 1), oo);
  EXPECT_FALSE(r.nodes[0].would_fuse);
  EXPECT_NE(r.nodes[0].fuse_reason.find("x"), std::string::npos);
  // With inputs known to stay below 200, 200·150 = 30000 fits: nothing flagged.
  oo.input_code_max = 200;
  EXPECT_TRUE(analyze_overflow(g, testing::tensor_data(in, {0}, 1), oo).nodes[0].pairs.empty());
}

}  // namespace
}  // namespace qpipe::analysis
