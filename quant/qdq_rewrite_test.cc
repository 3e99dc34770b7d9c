// QDQ placement and rewrite on small in-memory graphs: Conv-Relu folding,
// the Conv-Add-Relu residual, Reshape/AveragePool chains sharing parameters,
// the Softmax output, Mul/Add constants, exclusions, per-channel weights,
// symmetric activations, overrides, bias replacement; and that the
// rewritten graphs run and pass onnx::checker.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/session.h"
#include "quant/overrides.h"
#include "quant/qdq_rewrite.h"

namespace qpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---- in-memory model builder ------------------------------------------------

Tensor random_tensor(Shape shape, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(DType::kFloat32, std::move(shape));
  for (float& v : t.span<float>()) v = u(rng);
  return t;
}

struct Builder {
  Model m;
  Builder() {
    m.opset = 15;
    m.graph.name = "toy";
  }
  Builder& input(const std::string& name, Shape shape) {
    m.graph.inputs.push_back(name);
    ValueInfo vi;
    vi.shape = std::move(shape);
    vi.has_shape = true;
    m.graph.value_info[name] = vi;
    return *this;
  }
  // onnx::checker wants a shape on graph inputs and outputs.
  Builder& output(const std::string& name, Shape shape) {
    m.graph.outputs.push_back(name);
    ValueInfo vi;
    vi.shape = std::move(shape);
    vi.has_shape = true;
    m.graph.value_info[name] = vi;
    return *this;
  }
  Builder& init(const std::string& name, Tensor t) {
    m.graph.initializers[name] = std::move(t);
    return *this;
  }
  Builder& node(const std::string& name, const std::string& op, std::vector<std::string> in,
                std::vector<std::string> out, std::map<std::string, Attribute> attrs = {}) {
    Node n;
    n.name = name;
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attrs = std::move(attrs);
    m.graph.nodes.push_back(n);
    return *this;
  }
  Builder& conv(const std::string& name, const std::string& x, const std::string& y, int64_t cin, int64_t cout,
                uint32_t seed, bool bias = true) {
    init(name + "/kernel", random_tensor({cout, cin, 3, 3}, seed, -0.5f, 0.5f));
    std::vector<std::string> in = {x, name + "/kernel"};
    if (bias) {
      init(name + "/bias", random_tensor({cout}, seed + 1, -0.2f, 0.2f));
      in.push_back(name + "/bias");
    }
    return node(name, "Conv", in, {y},
                {{"kernel_shape", Attribute::Ints({3, 3})}, {"pads", Attribute::Ints({1, 1, 1, 1})}});
  }
};

int count_op(const Model& m, const std::string& op) {
  return static_cast<int>(std::count_if(m.graph.nodes.begin(), m.graph.nodes.end(),
                                        [&](const Node& n) { return n.op_type == op; }));
}
const Node* node_named(const Model& m, const std::string& name) {
  for (const auto& n : m.graph.nodes)
    if (n.name == name) return &n;
  return nullptr;
}
std::vector<std::string> names_of(const std::vector<QdqTensor>& ts) {
  std::vector<std::string> out;
  for (const auto& t : ts) out.push_back(t.name);
  return out;
}
// A range per calibrated tensor: [lo, hi].
std::map<std::string, Range> ranges_for(const QdqPlan& plan, float lo = -2.0f, float hi = 6.0f) {
  std::map<std::string, Range> r;
  for (const auto& t : plan.tensors_to_calibrate()) r[t] = {lo, hi};
  return r;
}

// x [N,2,5,5] → conv → y → Relu → r (graph output).
Model conv_relu() {
  Builder b;
  b.input("x", {-1, 2, 5, 5}).conv("conv", "x", "y", 2, 3, 1).node("relu", "Relu", {"y"}, {"r"}).output("r", {-1, 3, 5, 5});
  return b.m;
}

// ---- Conv-Relu -----------------------------------------------------------------

TEST(QdqPlacement, ConvReluFoldsRelu) {
  Model m = conv_relu();
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(m.graph, cfg);
  EXPECT_THAT(names_of(plan.tensors), ElementsAre("x", "conv/kernel", "conv/bias", "r"));
  EXPECT_EQ(plan.renamed.at("y"), "r");
  EXPECT_TRUE(plan.removed_nodes.count("relu"));
  EXPECT_THAT(plan.tensors_to_calibrate(), ElementsAre("x", "r"));

  std::map<std::string, Range> ranges = {{"x", {-1.0f, 1.0f}}, {"r", {0.0f, 2.55f}}};
  QdqResult q = build_qdq(m, plan, ranges, cfg);
  EXPECT_EQ(count_op(q.model, "Relu"), 0);
  EXPECT_EQ(q.quantize_nodes, 2);
  EXPECT_EQ(q.dequantize_nodes, 4);
  EXPECT_EQ(count_op(q.model, "QuantizeLinear"), 2);
  EXPECT_EQ(count_op(q.model, "DequantizeLinear"), 4);
  const Node* conv = node_named(q.model, "conv");
  ASSERT_NE(conv, nullptr);
  EXPECT_THAT(conv->inputs, ElementsAre("x_dq", "conv/kernel_dq", "conv/bias_dq"));
  EXPECT_THAT(conv->outputs, ElementsAre("r"));  // the producer writes the Relu's output
  EXPECT_THAT(q.model.graph.outputs, ElementsAre("r_dq"));
  // Node order: Q/DQ of the input first, weight DQs, the Conv, its output pair.
  std::vector<std::string> order;
  for (const auto& n : q.model.graph.nodes) order.push_back(n.name);
  EXPECT_THAT(order, ElementsAre("x_QuantizeLinear", "x_DequantizeLinear", "conv/kernel_DequantizeLinear",
                                 "conv/bias_DequantizeLinear", "conv", "r_QuantizeLinear", "r_DequantizeLinear"));
  // The Relu range starts at 0: zero point is qmin and saturation clips.
  const QdqParamRecord* r = q.find("r");
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->zero_point[0], -128);
  EXPECT_FLOAT_EQ(r->scale[0], 0.01f);
  // Float initializers nobody reads are gone; the quantized ones are in.
  EXPECT_FALSE(q.model.graph.initializers.count("conv/kernel"));
  EXPECT_EQ(q.model.graph.initializers.at("conv/kernel_quantized").dtype(), DType::kInt8);
  EXPECT_EQ(q.model.graph.initializers.at("conv/bias_quantized").dtype(), DType::kInt32);
  EXPECT_EQ(q.model.graph.initializers.at("conv/bias_zero_point").dtype(), DType::kInt32);
  EXPECT_EQ(q.model.graph.initializers.at("r_zero_point").dtype(), DType::kInt8);
  // Bias scale is s_in · s_w (float32 product), zero point 0.
  const QdqParamRecord* w = q.find("conv/kernel");
  const QdqParamRecord* bias = q.find("conv/bias");
  const QdqParamRecord* x = q.find("x");
  EXPECT_EQ(w->zero_point[0], 0);  // int8 weights symmetric
  EXPECT_EQ(bias->scale[0], x->scale[0] * w->scale[0]);
  EXPECT_EQ(bias->zero_point[0], 0);
  EXPECT_NO_THROW(check_onnx_model(q.model));

  // It runs, and its output never goes below 0 (the Q saturates at zp).
  Session s(q.model);
  Tensor in = random_tensor({2, 2, 5, 5}, 7);
  Tensor out = s.run(in).at(0);
  Tensor ref = Session(m).run(in).at(0);
  ASSERT_EQ(out.shape(), ref.shape());
  for (int64_t i = 0; i < out.numel(); ++i) {
    EXPECT_GE(out.data<float>()[i], 0.0f);
    EXPECT_NEAR(out.data<float>()[i], ref.data<float>()[i], 0.1f);
  }
}

TEST(QdqPlacement, ReluNotFoldedWithSymmetricActivationsOrWhenSharedOrDisabled) {
  Model m = conv_relu();
  QuantConfig sym;
  sym.activation_symmetric = true;
  QdqPlan p1 = plan_qdq(m.graph, sym);
  EXPECT_TRUE(p1.removed_nodes.empty());
  EXPECT_THAT(p1.tensors_to_calibrate(), ElementsAre("x", "y", "r"));
  QdqResult q1 = build_qdq(m, p1, ranges_for(p1), sym);
  EXPECT_EQ(count_op(q1.model, "Relu"), 1);
  EXPECT_EQ(q1.quantize_nodes, 3);
  EXPECT_THAT(node_named(q1.model, "relu")->inputs, ElementsAre("y_dq"));
  EXPECT_EQ(q1.find("y")->zero_point[0], 0);  // symmetric int8

  QuantConfig nofold;
  nofold.fold_activations = false;
  EXPECT_TRUE(plan_qdq(m.graph, nofold).removed_nodes.empty());

  // y read by the Relu and by a second node: no fold (ORT needs one consumer).
  Builder b;
  b.input("x", {-1, 2, 5, 5})
      .conv("conv", "x", "y", 2, 3, 1)
      .node("relu", "Relu", {"y"}, {"r"})
      .node("add", "Add", {"y", "r"}, {"s"})
      .output("s", {-1, 3, 5, 5});
  QdqPlan p2 = plan_qdq(b.m.graph, QuantConfig{});
  EXPECT_TRUE(p2.removed_nodes.empty());
  EXPECT_THAT(p2.tensors_to_calibrate(), ElementsAre("x", "y", "r", "s"));
}

TEST(QdqPlacement, ReluAfterUnquantizedProducerStaysFloat) {
  Builder b;
  b.input("x", {-1, 4}).node("relu", "Relu", {"x"}, {"r"}).output("r", {-1, 4});
  QdqPlan p = plan_qdq(b.m.graph, QuantConfig{});
  EXPECT_TRUE(p.tensors.empty());
  EXPECT_TRUE(p.quantized_nodes.empty());
}

// ---- Conv-Add-Relu residual ------------------------------------------------------

TEST(QdqPlacement, ResidualConvAddRelu) {
  Builder b;
  b.input("x", {-1, 3, 6, 6})
      .conv("conv_a", "x", "a", 3, 4, 10)
      .node("relu_a", "Relu", {"a"}, {"r1"})
      .conv("conv_b", "r1", "c", 4, 4, 20)
      .node("add", "Add", {"r1", "c"}, {"sum"})
      .node("relu_out", "Relu", {"sum"}, {"r2"})
      .output("r2", {-1, 4, 6, 6});
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(b.m.graph, cfg);
  EXPECT_THAT(plan.tensors_to_calibrate(), ElementsAre("x", "r1", "c", "r2"));
  EXPECT_EQ(plan.renamed.at("a"), "r1");
  EXPECT_EQ(plan.renamed.at("sum"), "r2");
  QdqResult q = build_qdq(b.m, plan, ranges_for(plan), cfg);
  EXPECT_EQ(q.quantize_nodes, 4);
  EXPECT_EQ(q.dequantize_nodes, 8);  // 4 activations + 2 weights + 2 biases
  EXPECT_EQ(count_op(q.model, "Relu"), 0);
  // The residual Add reads both quantized branches and writes the Relu output.
  const Node* add = node_named(q.model, "add");
  EXPECT_THAT(add->inputs, ElementsAre("r1_dq", "c_dq"));
  EXPECT_THAT(add->outputs, ElementsAre("r2"));
  // r1 feeds two nodes through one shared Q/DQ pair.
  EXPECT_THAT(node_named(q.model, "conv_b")->inputs[0], "r1_dq");
  EXPECT_NO_THROW(check_onnx_model(q.model));
  EXPECT_NO_THROW(Session(q.model).run(random_tensor({1, 3, 6, 6}, 3)));
}

// ---- Reshape chains and the graph input feeding a Transpose ---------------------

TEST(QdqPlacement, TransposeReshapeChainsShareParameters) {
  Builder b;
  b.input("in", {-1, 6, 6, 2})
      .node("to_nchw", "Transpose", {"in"}, {"x"}, {{"perm", Attribute::Ints({0, 3, 1, 2})}})
      .conv("conv", "x", "y", 2, 4, 5)
      .node("relu", "Relu", {"y"}, {"r"})
      .node("pool", "AveragePool", {"r"}, {"p"}, {{"kernel_shape", Attribute::Ints({6, 6})}})
      .init("shape1", Tensor::from<int64_t>({2}, std::vector<int64_t>{-1, 4}))
      .node("flat", "Reshape", {"p", "shape1"}, {"f"})
      .init("shape2", Tensor::from<int64_t>({3}, std::vector<int64_t>{-1, 2, 2}))
      .node("again", "Reshape", {"f", "shape2"}, {"g"})
      .init("shape3", Tensor::from<int64_t>({2}, std::vector<int64_t>{-1, 4}))
      .node("back", "Reshape", {"g", "shape3"}, {"h"})
      .init("dense/kernel", random_tensor({4, 3}, 9))
      .node("dense", "MatMul", {"h", "dense/kernel"}, {"logits"})
      .output("logits", {-1, 3});
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(b.m.graph, cfg);
  // The graph input is not quantized (the Transpose's input is not); the
  // Transpose output is calibrated on its own; pool/reshape outputs share.
  EXPECT_EQ(plan.find("in"), nullptr);
  EXPECT_EQ(plan.find("x")->source, QdqSource::kCalibrated);
  EXPECT_EQ(plan.find("p")->source, QdqSource::kShared);
  EXPECT_EQ(plan.find("p")->share_from, "r");
  EXPECT_EQ(plan.find("f")->share_from, "p");
  EXPECT_EQ(plan.find("g")->share_from, "f");
  EXPECT_EQ(plan.find("h")->share_from, "g");
  EXPECT_EQ(plan.find("shape1"), nullptr);  // int64 shape input untouched
  EXPECT_THAT(plan.tensors_to_calibrate(), ElementsAre("x", "r", "logits"));

  std::map<std::string, Range> ranges = {{"x", {0.0f, 255.0f}}, {"r", {0.0f, 3.0f}}, {"logits", {-4.0f, 4.0f}}};
  QdqResult q = build_qdq(b.m, plan, ranges, cfg);
  // The study's input: range 0..255 in int8 is exactly scale 1, zero point -128.
  EXPECT_EQ(q.find("x")->scale[0], 1.0f);
  EXPECT_EQ(q.find("x")->zero_point[0], -128);
  for (const char* t : {"p", "f", "g", "h"}) {
    SCOPED_TRACE(t);
    EXPECT_EQ(q.find(t)->scale, q.find("r")->scale);
    EXPECT_EQ(q.find(t)->zero_point, q.find("r")->zero_point);
    // Separate initializers with equal values (as the reference model).
    EXPECT_TRUE(q.model.graph.initializers.count(std::string(t) + "_scale"));
  }
  EXPECT_EQ(q.quantize_nodes, 7);  // x, r, p, f, g, h, logits
  EXPECT_THAT(node_named(q.model, "to_nchw")->inputs, ElementsAre("in"));
  EXPECT_THAT(node_named(q.model, "flat")->inputs, ElementsAre("p_dq", "shape1"));
  EXPECT_NO_THROW(check_onnx_model(q.model));
  EXPECT_NO_THROW(Session(q.model).run(random_tensor({2, 6, 6, 2}, 4, 0.0f, 255.0f)));

  // An override on a shared tensor de-shares it; downstream follows it.
  TensorOverrides ov;
  ov.source = "test";
  ov.tensors["f"].scale = {0.5f};
  ov.tensors["f"].zero_point = {-100};
  QdqResult q2 = build_qdq(b.m, plan, ranges, cfg, &ov);
  EXPECT_EQ(q2.find("f")->scale[0], 0.5f);
  EXPECT_EQ(q2.find("g")->scale[0], 0.5f);
  EXPECT_EQ(q2.find("h")->zero_point[0], -100);
  EXPECT_EQ(q2.find("p")->scale, q2.find("r")->scale);
}

// ---- Softmax output ---------------------------------------------------------------

Model dense_softmax() {
  Builder b;
  b.input("x", {-1, 5})
      .init("w", random_tensor({5, 3}, 11))
      .node("mm", "MatMul", {"x", "w"}, {"logits"})
      .node("softmax", "Softmax", {"logits"}, {"prob"}, {{"axis", Attribute::Int(-1)}})
      .output("prob", {-1, 3});
  return b.m;
}

TEST(QdqPlacement, SoftmaxOutputIsFixed) {
  Model m = dense_softmax();
  struct Case {
    QType act;
    bool sym;
    float scale;
    int32_t zp;
  };
  for (const Case& c : {Case{QType::kInt8, false, 1.0f / 255.0f, -128}, Case{QType::kUInt8, false, 1.0f / 255.0f, 0},
                        Case{QType::kInt8, true, 1.0f / 127.0f, 0}}) {
    SCOPED_TRACE(fmt::format("{} symmetric={}", qtype_name(c.act), c.sym));
    QuantConfig cfg;
    cfg.activation_type = c.act;
    cfg.weight_type = c.act;
    cfg.activation_symmetric = c.sym;
    QdqPlan plan = plan_qdq(m.graph, cfg);
    EXPECT_EQ(plan.find("prob")->source, QdqSource::kFixed);
    EXPECT_THAT(plan.tensors_to_calibrate(), ElementsAre("x", "logits"));
    QdqResult q = build_qdq(m, plan, ranges_for(plan), cfg);
    EXPECT_FLOAT_EQ(q.find("prob")->scale[0], c.scale);
    EXPECT_EQ(q.find("prob")->zero_point[0], c.zp);
    EXPECT_THAT(q.model.graph.outputs, ElementsAre("prob_dq"));
    EXPECT_EQ(q.model.graph.initializers.at("prob_zero_point").dtype(), qtype_dtype(c.act));
    // MatMul weight: int8 symmetric, uint8 asymmetric (ORT defaults).
    if (c.act == QType::kUInt8) EXPECT_NE(q.find("w")->zero_point[0], 127);
    else EXPECT_EQ(q.find("w")->zero_point[0], 0);
    EXPECT_NO_THROW(check_onnx_model(q.model));
    Tensor out = Session(q.model).run(random_tensor({3, 5}, 12)).at(0);
    for (float v : out.span<float>()) {
      EXPECT_GE(v, 0.0f);
      EXPECT_LE(v, 1.0f + 1e-6f);
    }
  }
}

// ---- Mul/Add constants, exclusions, per-channel ------------------------------------

TEST(QdqPlacement, MulAddConstantsAreAsymmetricLikeActivations) {
  Builder b;
  b.input("x", {-1, 2, 3, 3})
      .init("scale", Tensor::from<float>({2, 1, 1}, std::vector<float>{0.5f, 2.0f}))
      .node("mul", "Mul", {"x", "scale"}, {"m"})
      .init("shift", Tensor::from<float>({2, 1, 1}, std::vector<float>{-1.0f, 3.0f}))
      .node("add", "Add", {"m", "shift"}, {"y"})
      .output("y", {-1, 2, 3, 3});
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(b.m.graph, cfg);
  EXPECT_EQ(plan.find("scale")->role, QdqRole::kConstant);
  QdqResult q = build_qdq(b.m, plan, ranges_for(plan), cfg);
  // [0, 2] int8 asymmetric: scale 2/255, zp -128.
  EXPECT_FLOAT_EQ(q.find("scale")->scale[0], 2.0f / 255.0f);
  EXPECT_EQ(q.find("scale")->zero_point[0], -128);
  EXPECT_EQ(q.model.graph.initializers.at("scale_quantized").dtype(), DType::kInt8);
  EXPECT_EQ(q.model.graph.initializers.at("scale_quantized").data<int8_t>()[1], 127);
  // [-1, 3]: scale 4/255, zp round(-128 + 1/(4/255)) = round(-64.25) = -64.
  EXPECT_EQ(q.find("shift")->zero_point[0], -64);
  EXPECT_THAT(node_named(q.model, "add")->inputs, ElementsAre("m_dq", "shift_dq"));
}

TEST(QdqPlacement, ExcludedNodesStayFloatButReadQuantizedInputs) {
  Model m = dense_softmax();
  QuantConfig cfg;
  cfg.exclude_nodes = {"softmax"};
  QdqPlan plan = plan_qdq(m.graph, cfg);
  EXPECT_EQ(plan.find("prob"), nullptr);
  QdqResult q = build_qdq(m, plan, ranges_for(plan), cfg);
  EXPECT_THAT(node_named(q.model, "softmax")->inputs, ElementsAre("logits_dq"));
  EXPECT_THAT(q.model.graph.outputs, ElementsAre("prob"));

  QuantConfig by_type;
  by_type.exclude_op_types = {"MatMul", "Softmax"};
  QdqPlan p2 = plan_qdq(m.graph, by_type);
  EXPECT_TRUE(p2.tensors.empty());
  QdqResult q2 = build_qdq(m, p2, {}, by_type);
  EXPECT_EQ(q2.quantize_nodes + q2.dequantize_nodes, 0);
  EXPECT_TRUE(q2.model.graph.initializers.count("w"));
}

TEST(QdqPlacement, PerChannelWeightsAndBiases) {
  Model m = conv_relu();
  QuantConfig cfg;
  cfg.per_channel = true;
  QdqPlan plan = plan_qdq(m.graph, cfg);
  EXPECT_EQ(plan.find("conv/kernel")->axis, 0);
  QdqResult q = build_qdq(m, plan, ranges_for(plan), cfg);
  const QdqParamRecord* w = q.find("conv/kernel");
  const QdqParamRecord* b = q.find("conv/bias");
  ASSERT_EQ(w->scale.size(), 3u);
  ASSERT_EQ(b->scale.size(), 3u);
  const float sx = q.find("x")->scale[0];
  for (int c = 0; c < 3; ++c) EXPECT_EQ(b->scale[c], sx * w->scale[c]);
  const Node* dq = node_named(q.model, "conv/kernel_DequantizeLinear");
  EXPECT_EQ(dq->attr_int("axis", -1), 0);
  EXPECT_EQ(node_named(q.model, "conv/bias_DequantizeLinear")->attr_int("axis", -1), 0);
  EXPECT_EQ(q.model.graph.initializers.at("conv/kernel_scale").shape(), Shape{3});
  EXPECT_NO_THROW(check_onnx_model(q.model));
  EXPECT_NO_THROW(Session(q.model).run(random_tensor({1, 2, 5, 5}, 2)));
}

// ---- Overrides --------------------------------------------------------------------

TEST(QdqOverrides, ReplaceScaleAndFactorAndRejectUnknownTensors) {
  Model m = conv_relu();
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(m.graph, cfg);
  auto ranges = ranges_for(plan);
  QdqResult base = build_qdq(m, plan, ranges, cfg);

  TensorOverrides ov;
  ov.source = "test";
  ov.tensors["r"].scale_factor = 2.0;
  ov.tensors["conv/kernel"].scale = {0.01f};
  ov.tensors["conv/kernel"].zero_point = {0};
  QdqResult q = build_qdq(m, plan, ranges, cfg, &ov);
  EXPECT_EQ(q.find("r")->scale[0], base.find("r")->scale[0] * 2.0f);
  EXPECT_EQ(q.find("r")->zero_point, base.find("r")->zero_point);
  EXPECT_EQ(q.find("conv/kernel")->source, "override");
  EXPECT_EQ(q.find("conv/bias")->scale[0], q.find("x")->scale[0] * 0.01f);
  // The weight codes follow the given scale (and saturate at the int8 range).
  const Tensor& w = m.graph.initializers.at("conv/kernel");
  const Tensor& codes = q.model.graph.initializers.at("conv/kernel_quantized");
  for (int64_t i = 0; i < w.numel(); ++i)
    EXPECT_EQ(codes.data<int8_t>()[i],
              static_cast<int8_t>(std::clamp(std::nearbyint(w.data<float>()[i] / 0.01f), -128.0f, 127.0f)));

  TensorOverrides bad;
  bad.source = "bad.json";
  bad.tensors["y"].scale_factor = 2.0;  // folded away: not quantized
  bad.tensors["nope"].scale_factor = 2.0;
  try {
    build_qdq(m, plan, ranges, cfg, &bad);
    FAIL() << "expected an error";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_THAT(e.what(), HasSubstr("'nope'"));
    EXPECT_THAT(e.what(), HasSubstr("'y'"));
    EXPECT_THAT(e.what(), HasSubstr("bad.json"));
  }
}

TEST(QdqOverrides, MissingRangeIsAnError) {
  Model m = conv_relu();
  QuantConfig cfg;
  QdqPlan plan = plan_qdq(m.graph, cfg);
  std::map<std::string, Range> ranges = {{"x", {-1.0f, 1.0f}}};
  try {
    build_qdq(m, plan, ranges, cfg);
    FAIL() << "expected an error";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("'r'"));
    EXPECT_THAT(e.what(), HasSubstr("no calibration range"));
  }
}

// ---- Bias replacement (used by bias correction) -----------------------------------

TEST(QdqBias, ReplaceConvBiasRequantizesAtTheSameScale) {
  Model m = conv_relu();
  QuantConfig cfg;
  QdqResult q = build_qdq(m, plan_qdq(m.graph, cfg), {{"x", {-1.0f, 1.0f}}, {"r", {0.0f, 2.0f}}}, cfg);
  Tensor b = conv_bias_value(q.model, "conv");
  ASSERT_EQ(b.numel(), 3);
  const float s = q.find("conv/bias")->scale[0];
  // The dequantized bias is within half a step of the float bias.
  const Tensor& fb = m.graph.initializers.at("conv/bias");
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(b.data<float>()[i], fb.data<float>()[i], 0.5f * s + 1e-9f);
  Tensor nb = Tensor::from<float>({3}, std::vector<float>{0.25f, -0.5f, 1.0f});
  EXPECT_EQ(replace_conv_bias(q.model, "conv", nb), 0);
  const Tensor& codes = q.model.graph.initializers.at("conv/bias_quantized");
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(codes.data<int32_t>()[i], static_cast<int32_t>(std::nearbyint(double(nb.data<float>()[i]) / double(s))));
  EXPECT_THROW(replace_conv_bias(q.model, "no_such_node", nb), PtqError);
}

}  // namespace
}  // namespace qpipe
