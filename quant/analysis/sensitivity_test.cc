// Sensitivity on a tiny model where one layer is deliberately coarse, and
// the QDQ surgery it is built on.

#include "quant/analysis/sensitivity.h"

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include "engine/evaluate.h"
#include "engine/session.h"
#include "engine/error.h"
#include "quant/analysis/test_models.h"

namespace qpipe::analysis {
namespace {

using testing::GraphBuilder;

struct Pair {
  Model fp32, qdq;
  Tensor inputs;
  std::vector<int> labels;
};

// x[8] -> MatMul W1 -> h1 -> MatMul W2 -> h2 -> MatMul W3 -> y[4], with Q/DQ on
// x, h1, h2, y. W2's weight scale is huge (0.9 for weights in [-1, 1]:
// codes -1, 0, 1 only), the rest fine. Labels = the FP32 model's argmax.
Pair coarse_model() {
  Pair p;
  Tensor w1 = testing::random_tensor({8, 8}, 1, -1, 1), w2 = testing::random_tensor({8, 8}, 2, -1, 1),
         w3 = testing::random_tensor({8, 4}, 3, -1, 1);
  p.fp32 = GraphBuilder("fp32")
               .input("x", {-1, 8})
               .init("w1", w1)
               .init("w2", w2)
               .init("w3", w3)
               .node("MatMul", {"x", "w1"}, {"h1"}, "mm1")
               .node("MatMul", {"h1", "w2"}, {"h2"}, "mm2")
               .node("MatMul", {"h2", "w3"}, {"y"}, "mm3")
               .output("y")
               .build();
  p.qdq = GraphBuilder("qdq")
              .input("x", {-1, 8})
              .qdq("x", 2.0f / 127, 0)
              .const_qdq("w1", w1, 1.0f / 127)
              .const_qdq("w2", w2, 0.9f)
              .const_qdq("w3", w3, 1.0f / 127)
              .node("MatMul", {"x_dq", "w1_dq"}, {"h1"}, "mm1")
              .qdq("h1", 8.0f / 127, 0)
              .node("MatMul", {"h1_dq", "w2_dq"}, {"h2"}, "mm2")
              .qdq("h2", 16.0f / 127, 0)
              .node("MatMul", {"h2_dq", "w3_dq"}, {"y"}, "mm3")
              .qdq("y", 32.0f / 127, 0)
              .output("y_dq")
              .build();
  p.inputs = testing::random_tensor({600, 8}, 4, -2, 2);
  Session s(p.fp32);
  p.labels = argmax_rows(s.run(p.inputs).at(0));
  return p;
}

TEST(AnalysisSensitivity, SurgeryKeepsOrRemovesExactlyTheLayersQuantization) {
  Pair p = coarse_model();
  QdqGraph g(p.qdq);
  ASSERT_EQ(g.layers().size(), 3u);
  EXPECT_EQ(g.layers()[1].name, "mm2");
  // mm3 owns y's output-only Q/DQ.
  EXPECT_EQ(g.owner_of_activation(g.activation_index("y")), 2);
  EXPECT_EQ(g.owner_of_activation(g.activation_index("h1")), -1);
  Session f(p.fp32), all(keep_float(g, p.fp32, {0, 1, 2})), none(keep_float(g, p.fp32, {})), q(p.qdq);
  Tensor a = f.run(p.inputs).at(0), b = all.run(p.inputs).at(0), c = none.run(p.inputs).at(0), d = q.run(p.inputs).at(0);
  for (int64_t i = 0; i < a.numel(); ++i) {
    EXPECT_FLOAT_EQ(a.data<float>()[i], b.data<float>()[i]);
    EXPECT_EQ(c.data<float>()[i], d.data<float>()[i]);
  }
  // only_quantized(mm2): mm2 reads h1_dq and w2_dq; mm1/mm3 read float.
  Model m = only_quantized(g, p.fp32, 1);
  const auto& nodes = m.graph.nodes;
  for (const auto& n : nodes) {
    if (n.name == "mm1") EXPECT_EQ(n.inputs, (std::vector<std::string>{"x", "w1__fp32"}));
    if (n.name == "mm2") EXPECT_EQ(n.inputs, (std::vector<std::string>{"h1_dq", "w2_dq"}));
    if (n.name == "mm3") EXPECT_EQ(n.inputs, (std::vector<std::string>{"h2", "w3__fp32"}));
  }
  EXPECT_EQ(m.graph.outputs, std::vector<std::string>{"y"});
  EXPECT_THROW(only_quantized(g, p.fp32, 7), PtqError);
}

TEST(AnalysisSensitivity, CoarseLayerRanksFirstInBothVariants) {
  Pair p = coarse_model();
  QdqGraph g(p.qdq);
  AnalysisData data = testing::tensor_data(p.inputs, p.labels, 4);
  SensitivityOptions o;
  o.batch = 128;
  SensitivityResult r1, r2;
  tbb::task_arena one(1), two(2);
  one.execute([&] { r1 = analyze_sensitivity(p.fp32, g, data, o); });
  two.execute([&] { r2 = analyze_sensitivity(p.fp32, g, data, o); });
  EXPECT_EQ(r1.fp32.correct, 600);
  ASSERT_EQ(r1.only_quantized.size(), 3u);
  ASSERT_EQ(r1.keep_float.size(), 3u);
  EXPECT_EQ(r1.only_quantized[0].layer, "mm2");
  EXPECT_EQ(r1.keep_float[0].layer, "mm2");
  EXPECT_LT(r1.only_quantized[0].delta_pp, r1.only_quantized[1].delta_pp);
  EXPECT_GT(r1.keep_float[0].delta_pp, 0);
  EXPECT_LT(r1.only_quantized[0].stats.output.sqnr_db(), r1.only_quantized[1].stats.output.sqnr_db());
  EXPECT_EQ(r1.only_quantized[0].class_delta_pp.size(), 4u);
  // Thread count does not change anything.
  EXPECT_EQ(sensitivity_to_json(r1).dump(), sensitivity_to_json(r2).dump());
  // Restricting to named layers; an unknown name is a spec error naming the layers.
  o.layers = {"mm3"};
  EXPECT_EQ(analyze_sensitivity(p.fp32, g, data, o).only_quantized.size(), 1u);
  o.layers = {"mm9"};
  try {
    analyze_sensitivity(p.fp32, g, data, o);
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_NE(std::string(e.what()).find("mm1, mm2, mm3"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qpipe::analysis
