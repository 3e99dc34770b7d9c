#pragma once
// Tiny in-memory FP32 / QDQ model pairs for the analysis tests (header-only,
// test use only): a graph builder with Q/DQ helpers so each test spells out
// the exact structure it needs.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "quant/analysis/common.h"

namespace qpipe::analysis::testing {

class GraphBuilder {
 public:
  explicit GraphBuilder(std::string name) { m_.graph.name = name; m_.path = "<" + name + ">"; }

  GraphBuilder& input(const std::string& name, Shape shape) {
    m_.graph.inputs.push_back(name);
    ValueInfo vi;
    vi.shape = std::move(shape);
    vi.has_shape = true;
    m_.graph.value_info[name] = vi;
    return *this;
  }
  GraphBuilder& output(const std::string& name) {
    m_.graph.outputs.push_back(name);
    return *this;
  }
  GraphBuilder& init(const std::string& name, Tensor t) {
    m_.graph.initializers[name] = std::move(t);
    return *this;
  }
  GraphBuilder& node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                     const std::string& name = "") {
    Node n;
    n.op_type = op;
    n.name = name.empty() ? out.at(0) : name;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    m_.graph.nodes.push_back(std::move(n));
    return *this;
  }
  // x -> x_q -> x_dq with int8 params.
  GraphBuilder& qdq(const std::string& x, float scale, int8_t zp) {
    init(x + "_scale", Tensor::scalar<float>(scale));
    init(x + "_zero_point", Tensor::scalar<int8_t>(zp));
    node("QuantizeLinear", {x, x + "_scale", x + "_zero_point"}, {x + "_q"}, x + "_QuantizeLinear");
    node("DequantizeLinear", {x + "_q", x + "_scale", x + "_zero_point"}, {x + "_dq"}, x + "_DequantizeLinear");
    return *this;
  }
  // Constant w (float) quantized per tensor, symmetric int8 with `scale`: w_quantized -> w_dq.
  GraphBuilder& const_qdq(const std::string& w, const Tensor& values, float scale) {
    Tensor codes(DType::kInt8, values.shape());
    for (int64_t i = 0; i < values.numel(); ++i) {
      const float q = std::nearbyint(values.data<float>()[i] / scale);
      codes.data<int8_t>()[i] = static_cast<int8_t>(std::clamp(q, -128.0f, 127.0f));
    }
    init(w + "_quantized", codes);
    init(w + "_scale", Tensor::scalar<float>(scale));
    init(w + "_zero_point", Tensor::scalar<int8_t>(0));
    node("DequantizeLinear", {w + "_quantized", w + "_scale", w + "_zero_point"}, {w + "_dq"}, w + "_DequantizeLinear");
    return *this;
  }
  Model build() const { return m_; }

 private:
  Model m_;
};

inline Tensor random_tensor(Shape shape, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  Tensor t(DType::kFloat32, shape);
  for (auto& v : t.span<float>()) v = u(rng);
  return t;
}

// Data source over a fixed input tensor [N, ...] with the given labels.
inline AnalysisData tensor_data(const Tensor& inputs, std::vector<int> labels, int classes) {
  AnalysisData d;
  d.size = inputs.dim(0);
  for (int c = 0; c < classes; ++c) d.class_names.push_back("class" + std::to_string(c));
  const int64_t per = inputs.numel() / inputs.dim(0);
  d.read = [inputs, labels, per](int64_t first, int64_t count) {
    Cifar10Batch b;
    Shape s = inputs.shape();
    s[0] = count;
    b.images = Tensor(DType::kFloat32, s);
    std::copy_n(inputs.data<float>() + first * per, count * per, b.images.data<float>());
    b.labels.assign(labels.begin() + first, labels.begin() + first + count);
    for (int64_t i = 0; i < count; ++i) b.indices.push_back(first + i);
    return b;
  };
  return d;
}

}  // namespace qpipe::analysis::testing
