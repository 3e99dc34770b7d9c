// Empirical bias correction on a two-Conv model whose coarse int8 weights
// (one outlier stretches the weight scale) shift every channel's mean output:
// after correction, the QDQ model's per-channel output means match FP32 to
// within the bias quantization step, layer after layer (sequential mode).

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "quant/bias_correction.h"
#include "quant/calibrate.h"
#include "quant/qdq_rewrite.h"

namespace qpipe {
namespace {

Node conv_node(const std::string& name, const std::string& x, const std::string& y) {
  Node n;
  n.name = name;
  n.op_type = "Conv";
  n.inputs = {x, name + "/kernel", name + "/bias"};
  n.outputs = {y};
  n.attrs["kernel_shape"] = Attribute::Ints({3, 3});
  n.attrs["pads"] = Attribute::Ints({1, 1, 1, 1});
  return n;
}

Tensor coarse_kernel(int64_t cout, int64_t cin, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-0.2f, 0.2f);
  Tensor w(DType::kFloat32, {cout, cin, 3, 3});
  for (float& v : w.span<float>()) v = u(rng);
  w.data<float>()[0] = 6.0f;  // the outlier: scale 6/127, most weights are a few steps wide
  return w;
}

Model two_convs() {
  Model m;
  m.opset = 15;
  m.graph.name = "bc";
  m.graph.inputs = {"x"};
  m.graph.outputs = {"z"};
  ValueInfo vi;
  vi.shape = {-1, 3, 6, 6};
  vi.has_shape = true;
  m.graph.value_info["x"] = vi;
  ValueInfo vo = vi;
  vo.shape = {-1, 4, 6, 6};
  m.graph.value_info["z"] = vo;
  m.graph.initializers["c1/kernel"] = coarse_kernel(4, 3, 1);
  m.graph.initializers["c1/bias"] = Tensor::from<float>({4}, std::vector<float>{0.1f, -0.1f, 0.2f, 0.0f});
  m.graph.initializers["c2/kernel"] = coarse_kernel(4, 4, 2);
  m.graph.initializers["c2/bias"] = Tensor::from<float>({4}, std::vector<float>{0.0f, 0.3f, -0.2f, 0.1f});
  Node relu;
  relu.name = "relu";
  relu.op_type = "Relu";
  relu.inputs = {"y"};
  relu.outputs = {"r"};
  m.graph.nodes = {conv_node("c1", "x", "y"), relu, conv_node("c2", "r", "z")};
  return m;
}

Tensor positive_images(int64_t n) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  Tensor t(DType::kFloat32, {n, 3, 6, 6});
  for (float& v : t.span<float>()) v = u(rng);
  return t;
}

double max_mean_gap(const Model& q, const Model& fp, const Tensor& x, const std::string& qt, const std::string& ft) {
  auto a = channel_means(q, x, {qt}, 16).at(0);
  auto b = channel_means(fp, x, {ft}, 16).at(0);
  double worst = 0;
  for (std::size_t c = 0; c < a.size(); ++c) worst = std::max(worst, std::fabs(a[c] - b[c]));
  return worst;
}

TEST(BiasCorrection, RemovesTheMeanShiftPerChannel) {
  Model fp = two_convs();
  Tensor x = positive_images(64);
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(fp.graph, cfg);
  // Conv c1's output is renamed to the Relu output 'r' in the QDQ model.
  ASSERT_EQ(plan.renamed.at("y"), "r");
  std::map<std::string, Range> ranges = {{"x", {0.0f, 1.0f}}, {"r", {0.0f, 8.0f}}, {"z", {-20.0f, 20.0f}}};
  QdqResult q = build_qdq(fp, plan, ranges, cfg);

  const double before1 = max_mean_gap(q.model, fp, x, "r", "y");
  const double before2 = max_mean_gap(q.model, fp, x, "z", "z");
  EXPECT_GT(before1, 0.02);  // the shift is real
  EXPECT_GT(before2, 0.02);

  BiasCorrectionOptions o;
  o.batch = 16;
  BiasCorrectionReport rep = apply_bias_correction(q.model, fp, x, o);
  ASSERT_EQ(rep.rows.size(), 2u);
  EXPECT_EQ(rep.rows[0].node, "c1");
  EXPECT_EQ(rep.rows[1].node, "c2");
  EXPECT_NEAR(rep.rows[0].max_abs_delta, before1, 1e-6);
  EXPECT_EQ(rep.rows[0].saturated, 0);

  // Bias step = s_in · s_w; the corrected means agree to within it (plus float error).
  const float step1 = q.find("c1/bias")->scale[0], step2 = q.find("c2/bias")->scale[0];
  EXPECT_LT(max_mean_gap(q.model, fp, x, "r", "y"), step1 + 1e-5);
  EXPECT_LT(max_mean_gap(q.model, fp, x, "z", "z"), step2 + 1e-4);
  EXPECT_EQ(rep.to_json()["nodes"].size(), 2u);
}

TEST(BiasCorrection, SkipsNodesWithoutBias) {
  Model fp = two_convs();
  fp.graph.nodes[2].inputs.resize(2);  // c2 without bias
  fp.graph.initializers.erase("c2/bias");
  QuantConfig cfg;
  QdqResult q = quantize_qdq(fp, {{"x", {0.0f, 1.0f}}, {"r", {0.0f, 8.0f}}, {"z", {-20.0f, 20.0f}}}, cfg);
  BiasCorrectionReport rep = apply_bias_correction(q.model, fp, positive_images(8));
  ASSERT_EQ(rep.rows.size(), 2u);
  EXPECT_TRUE(rep.rows[0].skipped.empty());
  EXPECT_EQ(rep.rows[1].skipped, "no bias input");
}

}  // namespace
}  // namespace qpipe
