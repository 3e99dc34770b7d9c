// The analyses on the study's reference int8 model and real CIFAR-10 data
// (../shared): QDQ structure, residual scale ratios (the study's 2.65x-3.32x),
// SQNR sanity, and the kernel-overflow finding on conv2d.

#include <gtest/gtest.h>

#include <cmath>
#include <fmt/format.h>

#include "engine/io/cifar10.h"
#include "quant/analysis/overflow.h"
#include "quant/analysis/qdq_graph.h"
#include "quant/analysis/residual.h"
#include "quant/analysis/sensitivity.h"
#include "engine/session.h"
#include "quant/analysis/sqnr.h"
#include "tests/test_support.h"

namespace qpipe::analysis {
namespace {

struct Models {
  Model fp32, qdq;
};
Models load(const std::string& shared) {
  return {load_onnx(shared + "/models/resnet8.onnx"), load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx")};
}

TEST(AnalysisReference, QdqStructure) {
  QPIPE_REQUIRE_SHARED(shared);
  QdqGraph g(load(shared).qdq);
  EXPECT_EQ(g.activations().size(), 32u);
  EXPECT_EQ(g.constants().size(), 34u);
  int convs = 0;
  for (const auto& l : g.layers()) convs += l.op_type == "Conv";
  EXPECT_EQ(convs, 9);
  const int i = g.activation_index("activation");
  ASSERT_GE(i, 0);
  EXPECT_TRUE(g.activations()[static_cast<std::size_t>(i)].clamps_at_zero());
  EXPECT_EQ(g.activations()[static_cast<std::size_t>(i)].consumers.size(), 2u);
  const int k = g.constant_of_dq("conv2d/kernel_dq");
  ASSERT_GE(k, 0);
  EXPECT_EQ(g.constants()[static_cast<std::size_t>(k)].fp32_name, "conv2d/kernel");
}

TEST(AnalysisReference, ResidualRatiosReproduceStudyRange) {
  QPIPE_REQUIRE_SHARED(shared);
  QdqGraph g(load(shared).qdq);
  ResidualResult r = analyze_residual(g, nullptr);
  ASSERT_EQ(r.adds.size(), 3u);
  // The study's 2.65x-3.32x are the three residual joins: add (activation +
  // batch_normalization_2) 2.65x, add_1 (conv2d_5 + batch_normalization_4)
  // 3.32x, add_2 (conv2d_8 + batch_normalization_6) 2.77x.
  auto r2 = [](double v) { return std::round(v * 100) / 100; };
  EXPECT_EQ(r.adds[0].node, "add");
  EXPECT_EQ(r.adds[0].input_a, "activation");
  EXPECT_EQ(r.adds[0].input_b, "batch_normalization_2");
  EXPECT_EQ(r2(r.adds[0].ratio), 2.65);
  EXPECT_EQ(r.adds[1].node, "add_1");
  EXPECT_EQ(r2(r.adds[1].ratio), 3.32);
  EXPECT_EQ(r.adds[2].node, "add_2");
  EXPECT_EQ(r2(r.adds[2].ratio), 2.77);
  EXPECT_EQ(std::round(r.min_ratio * 100) / 100, 2.65);
  EXPECT_EQ(std::round(r.max_ratio * 100) / 100, 3.32);
  EXPECT_EQ(r.flagged, 3);
}

TEST(AnalysisReference, SqnrSubset) {
  QPIPE_REQUIRE_SHARED(shared);
  auto m = load(shared);
  QdqGraph g(m.qdq);
  auto data = AnalysisData::from_cifar10(open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest).limited(64));
  SqnrResult r = analyze_sqnr(m.fp32, g, data);
  fmt::print("{}", sqnr_markdown(r));
  EXPECT_EQ(r.images, 64);
  const auto* in = r.find("input_nchw");
  ASSERT_NE(in, nullptr);
  EXPECT_TRUE(std::isinf(in->accumulated.sqnr_db()));
  EXPECT_GT(r.output.sqnr_db(), 10.0);
}

// Surgery sanity: every layer kept float reproduces the FP32 model; no layer
// kept float is the QDQ model itself.
TEST(AnalysisReference, KeepFloatAllLayersIsTheFp32Model) {
  QPIPE_REQUIRE_SHARED(shared);
  auto m = load(shared);
  QdqGraph g(m.qdq);
  std::set<int> all;
  for (int i = 0; i < static_cast<int>(g.layers().size()); ++i) all.insert(i);
  Session f(m.fp32), q(m.qdq), kf(keep_float(g, m.fp32, all)), k0(keep_float(g, m.fp32, {}));
  auto data = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  Cifar10Batch b = data.read_batch(0, 16);
  auto a = f.run(b.images).at(0), c = kf.run(b.images).at(0), d = q.run(b.images).at(0), e = k0.run(b.images).at(0);
  ASSERT_EQ(a.numel(), c.numel());
  for (int64_t i = 0; i < a.numel(); ++i) {
    EXPECT_NEAR(a.data<float>()[i], c.data<float>()[i], 1e-5f) << i;
    EXPECT_EQ(d.data<float>()[i], e.data<float>()[i]) << i;
  }
}

TEST(AnalysisReference, SensitivitySubset) {
  QPIPE_REQUIRE_SHARED(shared);
  auto m = load(shared);
  QdqGraph g(m.qdq);
  auto data = AnalysisData::from_cifar10(open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest).limited(200));
  SensitivityOptions o;
  o.layers = {"conv2d", "conv2d_7", "dense/matmul"};
  SensitivityResult r = analyze_sensitivity(m.fp32, g, data, o);
  fmt::print("{}", sensitivity_markdown(r));
  EXPECT_EQ(r.fp32.total, 200);
  EXPECT_EQ(r.only_quantized.size(), 3u);
  EXPECT_EQ(r.keep_float.size(), 3u);
}

// The six weight pairs of conv2d, and over the full test set the affected
// images (7,603) and output codes (1.46%) of ort_fused_int8_numerics.md.
TEST(AnalysisReference, OverflowFlagsSixPairsOfConv2d) {
  QPIPE_REQUIRE_SHARED(shared);
  QdqGraph g(load(shared).qdq);
  auto data = AnalysisData::from_cifar10(open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest));
  OverflowResult r = analyze_overflow(g, data);
  fmt::print("{}", overflow_markdown(r));
  std::vector<std::string> fused;
  for (const auto& o : r.nodes) {
    if (o.would_fuse && o.op_type == "Conv") fused.push_back(o.node);
    if (o.node == "conv2d") {
      EXPECT_EQ(o.pairs.size(), 6u);
      EXPECT_EQ(o.images, 10000);
      EXPECT_EQ(o.images_with_overflow, 7603);
      EXPECT_EQ(o.images_with_changed_codes, 7472);
      EXPECT_NEAR(100.0 * o.changed_fraction(), 1.46, 0.005);
      EXPECT_EQ(o.max_code_change, 11);
    }
  }
  EXPECT_EQ(fused, (std::vector<std::string>{"conv2d", "conv2d_2", "conv2d_4", "conv2d_7"}));
  EXPECT_NE(r.advice.find("conv2d"), std::string::npos);
}

}  // namespace
}  // namespace qpipe::analysis
