// Whole-graph execution vs node-by-node execution on ResNet-like op chains.
//
// Session may plan a graph differently from its nodes taken one at a time
// (constant folding, views, fused epilogues after Conv, fused elementwise
// chains, QuantizeLinear->DequantizeLinear round trips). Whatever it does, the
// result must be bit-identical to running every node alone through its own
// one-node Session (KernelRunner), where nothing can be fused. The chains
// mirror what ResNet8 and its QDQ version contain: Conv + per-channel Mul/Add
// (BatchNorm) + Relu, TF-'same' stride-2 convs with a 1x1 stride-2 shortcut,
// residual Add, QDQ around every op with int8 per-tensor and per-channel
// weights and int32 biases, fan-out of an intermediate, AveragePool, Reshape,
// MatMul + Add, Softmax. Also checked at 1 and 2 threads and batch 1 vs 7.

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/session.h"
#include "tests/fixtures/kernel_runner.h"

namespace qpipe {
namespace {

using testing::f32;
using testing::KernelRunner;
using testing::Rng;

// Builds a graph node by node, adding initializers and QDQ pairs.
class GraphBuilder {
 public:
  explicit GraphBuilder(uint32_t seed) : rng_(seed) {}

  Model& model() { return m_; }
  Rng& rng() { return rng_; }

  void input(const std::string& name, Shape shape) {
    m_.graph.inputs.push_back(name);
    m_.graph.value_info[name] = ValueInfo{DType::kFloat32, std::move(shape), true};
  }
  void output(const std::string& name) { m_.graph.outputs.push_back(name); }
  std::string init(const std::string& name, Tensor t) {
    m_.graph.initializers[name] = std::move(t);
    return name;
  }
  std::string node(const std::string& op, std::vector<std::string> in, const std::string& out,
                   std::map<std::string, Attribute> attrs = {}) {
    Node n;
    n.name = out + "_node";
    n.op_type = op;
    n.inputs = std::move(in);
    n.outputs = {out};
    n.attrs = std::move(attrs);
    m_.graph.nodes.push_back(std::move(n));
    return out;
  }
  // x -> QuantizeLinear(int8, scale, zp) -> DequantizeLinear: returns the DQ output.
  std::string qdq(const std::string& x, float scale, int zp) {
    const std::string s = init(x + "_scale", Tensor::scalar<float>(scale));
    const std::string z = init(x + "_zp", Tensor::scalar<int8_t>(static_cast<int8_t>(zp)));
    node("QuantizeLinear", {x, s, z}, x + "_q");
    return node("DequantizeLinear", {x + "_q", s, z}, x + "_dq");
  }
  // int8 weights (symmetric, per-tensor or per output channel) + DequantizeLinear.
  std::string qweight(const std::string& name, Shape shape, bool per_channel) {
    Tensor q(DType::kInt8, shape);
    for (auto& v : q.span<int8_t>()) v = static_cast<int8_t>(rng_.integer(-127, 127));
    init(name, q);
    const int64_t m = shape[0];
    Tensor s = per_channel ? Tensor(DType::kFloat32, {m}) : Tensor(DType::kFloat32, {});
    for (auto& v : s.span<float>()) v = rng_.uniform(0.002f, 0.01f);
    Tensor z = per_channel ? Tensor(DType::kInt8, {m}) : Tensor(DType::kInt8, {});
    init(name + "_scale", s);
    init(name + "_zp", z);
    std::map<std::string, Attribute> a;
    if (per_channel) a["axis"] = Attribute::Int(0);
    return node("DequantizeLinear", {name, name + "_scale", name + "_zp"}, name + "_dq", a);
  }
  std::string qbias(const std::string& name, int64_t m, float scale) {
    Tensor q(DType::kInt32, {m});
    for (auto& v : q.span<int32_t>()) v = static_cast<int32_t>(rng_.integer(-3000, 3000));
    init(name, q);
    init(name + "_scale", Tensor::scalar<float>(scale));
    return node("DequantizeLinear", {name, name + "_scale"}, name + "_dq");
  }
  std::string conv(const std::string& x, const std::string& w, const std::string& b, const std::string& out,
                   int64_t k, int64_t stride, std::vector<int64_t> pads) {
    std::vector<std::string> in = {x, w};
    if (!b.empty()) in.push_back(b);
    return node("Conv", in, out,
                {{"kernel_shape", Attribute::Ints({k, k})},
                 {"strides", Attribute::Ints({stride, stride})},
                 {"pads", Attribute::Ints(std::move(pads))}});
  }
  Tensor rand(Shape s, float lo, float hi) { return rng_.tensor(std::move(s), lo, hi); }

 private:
  Model m_;
  Rng rng_;
};

// Runs every node alone (one-node Sessions), in file order.
std::map<std::string, Tensor> node_by_node(const Model& m, const std::map<std::string, Tensor>& feeds) {
  std::map<std::string, Tensor> values = feeds;
  for (const Node& n : m.graph.nodes) {
    KernelRunner r(n.op_type, n.name);
    r.opset(m.opset);
    for (const auto& in : n.inputs) {
      if (in.empty()) r.omitted();
      else if (m.graph.initializers.count(in)) r.constant(in, m.graph.initializers.at(in));
      else r.input(in, values.at(in));
    }
    for (const auto& [k, a] : n.attrs) r.attr(k, a);
    r.outputs(n.outputs);
    std::vector<Tensor> out = r.run();
    for (std::size_t i = 0; i < n.outputs.size(); ++i) values[n.outputs[i]] = out[i];
  }
  return values;
}

void expect_whole_equals_node_by_node(const Model& m, const Tensor& x, const std::string& what) {
  const auto ref = node_by_node(m, {{m.graph.inputs[0], x}});
  Session s(m);
  for (int threads : {1, 2}) {
    std::vector<Tensor> got;
    tbb::task_arena arena(threads);
    arena.execute([&] { got = s.run({{m.graph.inputs[0], x}}, m.graph.outputs); });
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_TRUE(testing::bit_identical(got[i], ref.at(m.graph.outputs[i])))
          << what << ": output '" << m.graph.outputs[i] << "' at " << threads << " thread(s)";
  }
  // Batch independence: the last image alone gives the same bits.
  const int64_t n = x.dim(0);
  if (n > 1) {
    Shape one = x.shape();
    one[0] = 1;
    Tensor x1(DType::kFloat32, one);
    std::copy_n(x.data<float>() + (n - 1) * x1.numel(), x1.numel(), x1.data<float>());
    std::vector<Tensor> got1 = s.run({{m.graph.inputs[0], x1}}, m.graph.outputs);
    for (std::size_t i = 0; i < got1.size(); ++i) {
      const Tensor& full = ref.at(m.graph.outputs[i]);
      const std::size_t per = full.nbytes() / static_cast<std::size_t>(n);
      EXPECT_EQ(std::memcmp(got1[i].raw(), static_cast<const char*>(full.raw()) + (n - 1) * per, per), 0)
          << what << ": output '" << m.graph.outputs[i] << "' of the last image differs when run alone";
    }
  }
}

// FP32 ResNet block as tf2onnx writes ResNet8: NHWC input, Transpose, conv +
// BN(Mul, Add) + Relu, a stride-2 block with TF-'same' pads and a 1x1 stride-2
// shortcut, residual Add + Relu, 8x8 AveragePool, Reshape, MatMul + Add, Softmax.
Model fp32_block(uint32_t seed) {
  GraphBuilder g(seed);
  g.input("input", {-1, 16, 16, 3});
  g.node("Transpose", {"input"}, "nchw", {{"perm", Attribute::Ints({0, 3, 1, 2})}});
  auto bn = [&](const std::string& x, const std::string& name, int64_t c) {
    g.init(name + "_mul", g.rand({c, 1, 1}, 0.5f, 1.5f));
    g.init(name + "_add", g.rand({c, 1, 1}, -0.5f, 0.5f));
    g.node("Mul", {x, name + "_mul"}, name + "_m");
    return g.node("Add", {name + "_m", name + "_add"}, name);
  };
  g.init("w0", g.rand({8, 3, 3, 3}, -0.3f, 0.3f));
  g.init("b0", g.rand({8}, -0.1f, 0.1f));
  g.conv("nchw", "w0", "b0", "c0", 3, 1, {1, 1, 1, 1});
  g.node("Relu", {bn("c0", "bn0", 8)}, "a0");  // a0 fans out to the block and the shortcut
  g.init("w1", g.rand({13, 8, 3, 3}, -0.3f, 0.3f));
  g.init("b1", g.rand({13}, -0.1f, 0.1f));
  g.conv("a0", "w1", "b1", "c1", 3, 2, {0, 0, 1, 1});
  g.node("Relu", {bn("c1", "bn1", 13)}, "a1");
  g.init("w2", g.rand({13, 13, 3, 3}, -0.3f, 0.3f));
  g.conv("a1", "w2", "", "c2", 3, 1, {1, 1, 1, 1});  // no bias
  g.init("ws", g.rand({13, 8, 1, 1}, -0.3f, 0.3f));
  g.init("bs", g.rand({13}, -0.1f, 0.1f));
  g.conv("a0", "ws", "bs", "shortcut", 1, 2, {0, 0, 0, 0});
  g.node("Add", {bn("c2", "bn2", 13), "shortcut"}, "res");
  g.node("Relu", {"res"}, "a2");
  g.node("AveragePool", {"a2"}, "pool", {{"kernel_shape", Attribute::Ints({8, 8})}, {"strides", Attribute::Ints({8, 8})}});
  g.init("shape", testing::i64({2}, {-1, 13}));
  g.node("Reshape", {"pool", "shape"}, "flat");
  g.init("fc_w", g.rand({13, 10}, -0.5f, 0.5f));
  g.init("fc_b", g.rand({10}, -0.1f, 0.1f));
  g.node("MatMul", {"flat", "fc_w"}, "mm");
  g.node("Add", {"mm", "fc_b"}, "logits");
  g.node("Softmax", {"logits"}, "probs");
  g.output("probs");
  g.output("a1");  // an intermediate that is also a graph output
  return std::move(g.model());
}

// The same structure in the QDQ layout of resnet8_int8_ort_reference.onnx:
// Q/DQ on every activation, int8 weights (per-tensor and per-channel) and
// int32 biases through DequantizeLinear, Relu folded into the Q after the BN
// Add, QDQ'd BN constants, residual Add of two DQ'd branches.
Model qdq_block(uint32_t seed, bool per_channel) {
  GraphBuilder g(seed);
  g.input("input", {-1, 16, 16, 3});
  g.node("Transpose", {"input"}, "nchw", {{"perm", Attribute::Ints({0, 3, 1, 2})}});
  std::string x = g.qdq("nchw", 1.f, -128);
  auto bn = [&](const std::string& c, const std::string& name, int64_t ch, bool relu_folded) {
    std::string cq = g.qdq(c, 0.05f, 3);
    Tensor mul(DType::kInt8, {ch, 1, 1}), add(DType::kInt8, {ch, 1, 1});
    for (auto& v : mul.span<int8_t>()) v = static_cast<int8_t>(g.rng().integer(40, 127));
    for (auto& v : add.span<int8_t>()) v = static_cast<int8_t>(g.rng().integer(-128, 127));
    g.init(name + "_mulq", mul);
    g.init(name + "_mulq_s", Tensor::scalar<float>(0.01f));
    g.init(name + "_mulq_z", Tensor::scalar<int8_t>(0));
    g.init(name + "_addq", add);
    g.init(name + "_addq_s", Tensor::scalar<float>(0.004f));
    g.init(name + "_addq_z", Tensor::scalar<int8_t>(-5));
    g.node("DequantizeLinear", {name + "_mulq", name + "_mulq_s", name + "_mulq_z"}, name + "_mul_dq");
    g.node("DequantizeLinear", {name + "_addq", name + "_addq_s", name + "_addq_z"}, name + "_add_dq");
    g.node("Mul", {cq, name + "_mul_dq"}, name + "_m");
    std::string mq = g.qdq(name + "_m", 0.04f, -2);
    g.node("Add", {mq, name + "_add_dq"}, name);
    // Relu folded: the Q after the Add has zero point -128 (range starts at 0).
    return relu_folded ? g.qdq(name, 0.03f, -128) : g.qdq(name, 0.05f, 7);
  };
  g.conv(x, g.qweight("w0", {8, 3, 3, 3}, per_channel), g.qbias("b0", 8, 0.01f * 0.005f), "c0", 3, 1, {1, 1, 1, 1});
  std::string a0 = bn("c0", "bn0", 8, true);
  g.conv(a0, g.qweight("w1", {13, 8, 3, 3}, per_channel), g.qbias("b1", 13, 0.0001f), "c1", 3, 2, {0, 0, 1, 1});
  std::string a1 = bn("c1", "bn1", 13, true);
  g.conv(a1, g.qweight("w2", {13, 13, 3, 3}, per_channel), "", "c2", 3, 1, {1, 1, 1, 1});
  std::string b2 = bn("c2", "bn2", 13, false);
  g.conv(a0, g.qweight("ws", {13, 8, 1, 1}, per_channel), g.qbias("bs", 13, 0.0001f), "shortcut", 1, 2, {0, 0, 0, 0});
  std::string sq = g.qdq("shortcut", 0.05f, 0);
  g.node("Add", {b2, sq}, "res");
  std::string a2 = g.qdq("res", 0.06f, -128);  // Relu folded into the Q
  g.node("AveragePool", {a2}, "pool", {{"kernel_shape", Attribute::Ints({8, 8})}, {"strides", Attribute::Ints({8, 8})}});
  std::string pq = g.qdq("pool", 0.06f, -128);
  g.init("shape", testing::i64({2}, {-1, 13}));
  g.node("Reshape", {pq, "shape"}, "flat");
  std::string fq = g.qdq("flat", 0.06f, -128);
  g.node("MatMul", {fq, g.qweight("fc_w", {13, 10}, false)}, "mm");
  std::string mmq = g.qdq("mm", 0.1f, 0);
  g.node("Add", {mmq, g.qbias("fc_b", 10, 0.001f)}, "logits");
  std::string lq = g.qdq("logits", 0.1f, 0);
  g.node("Softmax", {lq}, "probs");
  g.output(g.qdq("probs", 1.f / 255.f, -128));
  g.output("c1");  // a raw conv output as a graph output: must not be fused away
  return std::move(g.model());
}

TEST(EngineChain, Fp32ResnetBlockWholeGraphEqualsNodeByNode) {
  Model m = fp32_block(1);
  Rng rng(2);
  expect_whole_equals_node_by_node(m, rng.tensor({7, 16, 16, 3}, 0.f, 255.f), "fp32 block, batch 7");
  expect_whole_equals_node_by_node(m, rng.tensor({1, 16, 16, 3}, 0.f, 255.f), "fp32 block, batch 1");
}

TEST(EngineChain, QdqResnetBlockWholeGraphEqualsNodeByNode) {
  for (bool per_channel : {false, true}) {
    Model m = qdq_block(3, per_channel);
    Rng rng(4);
    const std::string what = per_channel ? "qdq block, per-channel weights" : "qdq block, per-tensor weights";
    expect_whole_equals_node_by_node(m, rng.tensor({7, 16, 16, 3}, 0.f, 255.f), what + ", batch 7");
    expect_whole_equals_node_by_node(m, rng.tensor({1, 16, 16, 3}, 0.f, 255.f), what + ", batch 1");
  }
}

TEST(EngineChain, TapsDoNotChangeResults) {
  // Fetching intermediates (which may prevent fusion) must not change outputs.
  Model m = qdq_block(5, true);
  Rng rng(6);
  Tensor x = rng.tensor({3, 16, 16, 3}, 0.f, 255.f);
  Session s(m);
  std::vector<Tensor> plain = s.run({{"input", x}}, m.graph.outputs);
  std::vector<std::string> fetch = m.graph.outputs;
  for (const char* t : {"c0", "c0_q", "bn0_m", "bn0", "bn0_dq", "c2", "res", "pool", "mm"}) fetch.push_back(t);
  std::vector<Tensor> tapped = s.run({{"input", x}}, fetch);
  for (std::size_t i = 0; i < plain.size(); ++i) EXPECT_TRUE(testing::bit_identical(plain[i], tapped[i])) << fetch[i];
  const auto ref = node_by_node(m, {{"input", x}});
  for (std::size_t i = 0; i < fetch.size(); ++i)
    EXPECT_TRUE(testing::bit_identical(tapped[i], ref.at(fetch[i]))) << "tap " << fetch[i];
}

}  // namespace
}  // namespace qpipe
