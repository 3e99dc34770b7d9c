// QDQ placement (plan_qdq) and graph rewrite (build_qdq); see qdq_rewrite.h.

#include "quant/qdq_rewrite.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "quant/overrides.h"

namespace qpipe {

namespace {

using json = nlohmann::json;

const std::set<std::string>& direct_8bit_ops() {
  static const std::set<std::string> ops = {"Transpose", "Reshape",     "Flatten", "Squeeze",
                                            "Unsqueeze", "AveragePool", "MaxPool", "GlobalAveragePool"};
  return ops;
}

std::string scale_name(const std::string& t) { return t + "_scale"; }
std::string zp_name(const std::string& t) { return t + "_zero_point"; }
std::string q_out(const std::string& t) { return t + "_q"; }
std::string dq_out(const std::string& t) { return t + "_dq"; }
std::string quantized_name(const std::string& t) { return t + "_quantized"; }

// ---------------------------------------------------------------------------
// Placement
// ---------------------------------------------------------------------------

class Planner {
 public:
  Planner(const Graph& g, const QuantConfig& cfg) : g_(g), cfg_(cfg) {}

  QdqPlan run() {
    for (std::size_t idx : g_.topological_order()) {
      const Node& n = g_.nodes[idx];
      if (!quantizable_op_types().count(n.op_type) || cfg_.is_excluded(n.name, n.op_type) || !n.domain.empty())
        continue;
      visit(n);
    }
    return std::move(plan_);
  }

 private:
  bool is_float(const std::string& name) const {
    if (name.empty()) return false;
    if (auto it = g_.initializers.find(name); it != g_.initializers.end())
      return it->second.dtype() == DType::kFloat32;
    if (auto it = g_.value_info.find(name); it != g_.value_info.end()) return it->second.dtype == DType::kFloat32;
    return true;  // intermediates without declared type: float in qpipe's op set
  }
  bool is_const(const std::string& name) const { return g_.is_constant(name); }
  bool quantized(const std::string& name) const { return index_of(name) >= 0; }
  int index_of(const std::string& name) const {
    for (std::size_t i = 0; i < plan_.tensors.size(); ++i)
      if (plan_.tensors[i].name == name) return static_cast<int>(i);
    return -1;
  }
  // Current name of a tensor after folds (a folded producer output is renamed).
  std::string cur(const std::string& name) const {
    auto it = plan_.renamed.find(name);
    return it == plan_.renamed.end() ? name : it->second;
  }

  void add(QdqTensor t) {
    if (!is_float(t.name)) return;
    const int i = index_of(t.name);
    if (i >= 0) {
      // ORT: a shared-parameter request overwrites; anything else keeps the first.
      if (t.role == QdqRole::kActivation && t.source == QdqSource::kShared) plan_.tensors[i] = std::move(t);
      return;
    }
    plan_.tensors.push_back(std::move(t));
  }
  void activation(const std::string& name, const Node& n) {
    if (name.empty()) return;
    if (is_const(name)) {
      QdqTensor t{.name = name, .role = QdqRole::kConstant};
      t.node = n.name;
      add(std::move(t));
      return;
    }
    QdqTensor t{.name = cur(name), .role = QdqRole::kActivation};
    t.node = n.name;
    add(std::move(t));
  }
  void weight(const std::string& name, const Node& n, int channel_axis) {
    if (!is_const(name)) return activation(name, n);
    QdqTensor t{.name = name, .role = QdqRole::kWeight};
    t.axis = cfg_.per_channel ? channel_axis : -1;
    t.node = n.name;
    add(std::move(t));
  }
  void bias(const std::string& name, const Node& n, const std::string& input, const std::string& w) {
    if (name.empty() || !is_const(name)) return;
    if (!quantized(cur(input)) || !quantized(w)) return;
    const Tensor& b = g_.initializers.at(name);
    if (b.rank() != 1) return;  // only [C] biases are int32-quantized
    QdqTensor t{.name = name, .role = QdqRole::kBias};
    t.bias_input = cur(input);
    t.bias_weight = w;
    t.node = n.name;
    add(std::move(t));
  }

  void visit(const Node& n) {
    const std::string& op = n.op_type;
    auto in = [&](std::size_t i) { return i < n.inputs.size() ? n.inputs[i] : std::string(); };
    bool processed = true;
    if (op == "Conv") {
      activation(in(0), n);
      weight(in(1), n, 0);
      bias(in(2), n, in(0), in(1));
      activation(n.outputs[0], n);
    } else if (op == "Gemm") {
      activation(in(0), n);
      weight(in(1), n, n.attr_int("transB", 0) ? 0 : 1);
      if (n.attr_float("alpha", 1.0f) == 1.0f && n.attr_float("beta", 1.0f) == 1.0f && !n.attr_int("transA", 0))
        bias(in(2), n, in(0), in(1));
      else
        activation(in(2), n);
      activation(n.outputs[0], n);
    } else if (op == "MatMul") {
      for (std::size_t i = 0; i < n.inputs.size(); ++i) {
        if (is_const(in(i))) weight(in(i), n, i == 1 ? 1 : -1);
        else activation(in(i), n);
      }
      activation(n.outputs[0], n);
    } else if (op == "Add" || op == "Mul") {
      for (const auto& i : n.inputs) activation(i, n);
      activation(n.outputs[0], n);
    } else if (op == "Relu" || op == "Clip") {
      const std::string x = cur(in(0));
      if (!quantized(x)) {
        processed = false;
      } else if (cfg_.fold_activations && !cfg_.activation_symmetric && can_fold(in(0))) {
        // try_replacing_upstream_output: the producer writes the activation's output.
        plan_.tensors.erase(plan_.tensors.begin() + index_of(x));
        plan_.renamed[in(0)] = n.outputs[0];
        plan_.removed_nodes.insert(n.name);
        activation(n.outputs[0], n);
      } else {
        activation(n.outputs[0], n);
      }
    } else if (direct_8bit_ops().count(op)) {
      const std::string x = cur(in(0));
      if (quantized(x) && plan_.tensors[index_of(x)].role == QdqRole::kActivation) {
        QdqTensor t{.name = n.outputs[0], .role = QdqRole::kActivation, .source = QdqSource::kShared};
        t.share_from = x;
        t.node = n.name;
        add(std::move(t));
      } else {
        processed = false;
      }
    } else if (op == "Softmax") {
      activation(in(0), n);
      QdqTensor t{.name = n.outputs[0], .role = QdqRole::kActivation, .source = QdqSource::kFixed};
      t.fixed_range = Range{0.0f, 1.0f};
      t.node = n.name;
      add(std::move(t));
    } else {
      processed = false;
    }
    if (processed) plan_.quantized_nodes.insert(n.name);
  }

  // ORT: the upstream tensor has exactly one consumer and is neither a graph
  // input nor a graph output; it must have a producer node to rename.
  bool can_fold(const std::string& upstream) const {
    if (plan_.renamed.count(upstream)) return false;
    if (!g_.producer(upstream)) return false;
    if (std::find(g_.outputs.begin(), g_.outputs.end(), upstream) != g_.outputs.end()) return false;
    if (std::find(g_.inputs.begin(), g_.inputs.end(), upstream) != g_.inputs.end()) return false;
    std::size_t uses = 0;
    for (const auto& node : g_.nodes)
      for (const auto& i : node.inputs) uses += (i == upstream);
    return uses == 1;
  }

  const Graph& g_;
  const QuantConfig& cfg_;
  QdqPlan plan_;
};

// ---------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------

struct Resolved {
  std::vector<QuantParams> params;
  int axis = -1;
  Tensor codes;  // constants only
  QdqParamRecord record;
};

void apply_adjustments(std::vector<QuantParams>& ps, const TensorOverride* ov, const std::string& name) {
  if (!ov) return;
  for (auto& p : ps) {
    if (ov->scale_factor != 1.0) p.scale = static_cast<float>(static_cast<double>(p.scale) * ov->scale_factor);
    if (ov->zero_point_shift != 0) p.zero_point = std::clamp(p.zero_point + ov->zero_point_shift, p.qmin, p.qmax);
    validate_qparams(p, fmt::format("override of tensor '{}'", name));
  }
}

std::vector<QuantParams> params_from_override(const TensorOverride& ov, QType type, const std::string& name) {
  std::vector<QuantParams> ps;
  for (std::size_t i = 0; i < ov.scale.size(); ++i)
    ps.push_back(make_qparams(ov.scale[i], ov.zero_point[i], type,
                              ov.scale.size() == 1 ? fmt::format("override of tensor '{}'", name)
                                                   : fmt::format("override of tensor '{}' (channel {})", name, i)));
  return ps;
}

// The natural per-channel axis of a weight for its consumer.
int natural_axis(const Graph& g, const QdqTensor& t) {
  if (t.axis >= 0) return t.axis;
  for (const auto& n : g.nodes) {
    if (n.name != t.node) continue;
    if (n.op_type == "Conv") return 0;
    if (n.op_type == "MatMul") return 1;
    if (n.op_type == "Gemm") return n.attr_int("transB", 0) ? 0 : 1;
  }
  return -1;
}

Tensor codes_for(const Tensor& w, const std::vector<QuantParams>& ps, int axis) {
  if (ps.size() == 1) return quantize_tensor(w, ps[0]);
  return quantize_tensor(w, std::span<const QuantParams>(ps), axis);
}

Tensor scale_tensor(const std::vector<QuantParams>& ps) {
  if (ps.size() == 1) return Tensor::scalar<float>(ps[0].scale);
  std::vector<float> s;
  for (const auto& p : ps) s.push_back(p.scale);
  return Tensor::from<float>({static_cast<int64_t>(s.size())}, std::span<const float>(s));
}

Tensor zp_tensor(const std::vector<QuantParams>& ps) {
  const QType t = ps[0].type;
  const bool scalar = ps.size() == 1;
  Tensor z(qtype_dtype(t), scalar ? Shape{} : Shape{static_cast<int64_t>(ps.size())});
  for (std::size_t i = 0; i < ps.size(); ++i) {
    switch (t) {
      case QType::kInt8: z.data<int8_t>()[i] = static_cast<int8_t>(ps[i].zero_point); break;
      case QType::kUInt8: z.data<uint8_t>()[i] = static_cast<uint8_t>(ps[i].zero_point); break;
      case QType::kInt32: z.data<int32_t>()[i] = ps[i].zero_point; break;
    }
  }
  return z;
}

void fill_record(QdqParamRecord& r, const std::vector<QuantParams>& ps, int axis) {
  r.scale.clear();
  r.zero_point.clear();
  for (const auto& p : ps) {
    r.scale.push_back(p.scale);
    r.zero_point.push_back(p.zero_point);
  }
  r.type = ps.at(0).type;
  r.axis = axis;
}

}  // namespace

const char* qdq_role_name(QdqRole r) {
  switch (r) {
    case QdqRole::kActivation: return "activation";
    case QdqRole::kWeight: return "weight";
    case QdqRole::kBias: return "bias";
    case QdqRole::kConstant: return "constant";
  }
  return "?";
}

const QdqTensor* QdqPlan::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<std::string> QdqPlan::tensors_to_calibrate() const {
  std::vector<std::string> out;
  for (const auto& t : tensors)
    if (t.role == QdqRole::kActivation && t.source == QdqSource::kCalibrated) out.push_back(t.name);
  return out;
}

int QdqPlan::count(QdqRole role) const {
  return static_cast<int>(std::count_if(tensors.begin(), tensors.end(), [&](const QdqTensor& t) { return t.role == role; }));
}

QdqPlan plan_qdq(const Graph& graph, const QuantConfig& config) {
  config.validate();
  return Planner(graph, config).run();
}

const QdqParamRecord* QdqResult::find(const std::string& tensor) const {
  for (const auto& r : params)
    if (r.tensor == tensor) return &r;
  return nullptr;
}

nlohmann::json QdqResult::to_json() const {
  json rows = json::array();
  for (const auto& r : params) {
    json e;
    e["tensor"] = r.tensor;
    e["role"] = qdq_role_name(r.role);
    e["source"] = r.source;
    e["type"] = qtype_name(r.type);
    if (r.scale.size() == 1) {
      e["scale"] = r.scale[0];
      e["zero_point"] = r.zero_point[0];
    } else {
      e["scale"] = r.scale;
      e["zero_point"] = r.zero_point;
      e["axis"] = r.axis;
    }
    if (r.has_range) e["range"] = {r.range.min, r.range.max};
    if (r.role == QdqRole::kBias) e["saturated"] = r.saturated;
    rows.push_back(e);
  }
  return json{{"tensors", rows}, {"quantize_linear", quantize_nodes}, {"dequantize_linear", dequantize_nodes}};
}

QdqResult build_qdq(const Model& fp32, const QdqPlan& plan, const std::map<std::string, Range>& ranges,
                    const QuantConfig& config, const TensorOverrides* overrides) {
  config.validate();
  const Graph& g = fp32.graph;
  const std::string model_name = fp32.path.empty() ? g.name : fp32.path;

  // Overrides must name quantized tensors.
  if (overrides) {
    std::vector<std::string> unknown;
    for (const auto& [name, o] : overrides->tensors)
      if (!plan.find(name)) unknown.push_back(name);
    if (!unknown.empty()) {
      std::string list;
      for (const auto& u : unknown) list += (list.empty() ? "'" : ", '") + u + "'";
      fail(ErrorKind::kInput, "{}: {} override(s) name tensors that are not quantized in {}: {}", overrides->source,
           unknown.size(), model_name, list);
    }
  }
  auto ov_of = [&](const std::string& name) -> const TensorOverride* {
    return overrides ? overrides->find(name) : nullptr;
  };

  // ---- Parameters, in plan order ----
  std::map<std::string, Resolved> res;
  const bool wsym = config.effective_weight_symmetric();
  for (const QdqTensor& t : plan.tensors) {
    Resolved r;
    r.record.tensor = t.name;
    r.record.role = t.role;
    const TensorOverride* ov = ov_of(t.name);
    const std::string where = fmt::format("{}: tensor '{}' (node '{}')", model_name, t.name, t.node);
    switch (t.role) {
      case QdqRole::kActivation: {
        if (ov && ov->has_params()) {
          if (ov->scale.size() != 1)
            fail(ErrorKind::kInput, "{}: override for activation '{}' has {} scales; expected one", overrides->source,
                 t.name, ov->scale.size());
          r.params = params_from_override(*ov, config.activation_type, t.name);
          r.record.source = "override";
        } else if (t.source == QdqSource::kCalibrated) {
          auto it = ranges.find(t.name);
          if (it == ranges.end())
            fail(ErrorKind::kRuntime, "{}: no calibration range for this tensor (expected one per tensor of "
                 "tensors_to_calibrate())", where);
          r.params = {choose_qparams(it->second.min, it->second.max, config.activation_type,
                                     config.activation_symmetric, false)};
          r.record.has_range = true;
          r.record.range = it->second;
          r.record.source = "calibrated";
        } else if (t.source == QdqSource::kShared) {
          auto it = res.find(t.share_from);
          if (it == res.end())
            fail(ErrorKind::kRuntime, "{}: shares parameters with '{}', which is not quantized", where, t.share_from);
          r.params = it->second.params;
          r.record.source = "shared:" + t.share_from;
        } else {  // fixed (Softmax output)
          if (config.activation_type == QType::kUInt8)
            r.params = {make_qparams(1.0f / 255.0f, 0, QType::kUInt8, where)};
          else
            r.params = {choose_qparams(t.fixed_range.min, t.fixed_range.max, config.activation_type,
                                       config.activation_symmetric, false)};
          r.record.has_range = true;
          r.record.range = t.fixed_range;
          r.record.source = "fixed";
        }
        apply_adjustments(r.params, ov, t.name);
        break;
      }
      case QdqRole::kWeight:
      case QdqRole::kConstant: {
        const Tensor& w = g.initializers.at(t.name);
        const bool is_weight = t.role == QdqRole::kWeight;
        const QType type = is_weight ? config.weight_type : config.activation_type;
        if (ov && ov->has_params()) {
          r.params = params_from_override(*ov, type, t.name);
          if (r.params.size() > 1) {
            r.axis = is_weight ? natural_axis(g, t) : -1;
            if (r.axis < 0 || r.axis >= static_cast<int>(w.rank()) ||
                w.dim(static_cast<std::size_t>(r.axis)) != static_cast<int64_t>(r.params.size()))
              fail(ErrorKind::kInput, "{}: override for '{}' has {} scales, which does not match {} of shape {}",
                   overrides->source, t.name, r.params.size(), is_weight ? "a channel axis" : "per-tensor constant",
                   shape_str(w.shape()));
          }
          r.record.source = "override";
        } else {
          QuantizedTensor q = quantize_weights(w, type, is_weight ? wsym : config.activation_symmetric,
                                               is_weight ? t.axis : -1, is_weight && config.reduce_range);
          r.params = q.params;
          r.axis = q.axis;
          r.record.source = is_weight ? "weights" : "constant";
        }
        apply_adjustments(r.params, ov, t.name);
        r.codes = codes_for(w, r.params, r.axis);
        break;
      }
      case QdqRole::kBias: {
        const Tensor& b = g.initializers.at(t.name);
        auto in = res.find(t.bias_input);
        auto wt = res.find(t.bias_weight);
        if (in == res.end() || wt == res.end())
          fail(ErrorKind::kRuntime, "{}: bias needs quantized input '{}' and weight '{}'", where, t.bias_input,
               t.bias_weight);
        if (ov && ov->has_params()) {
          r.params = params_from_override(*ov, QType::kInt32, t.name);
          if (r.params.size() > 1 && static_cast<int64_t>(r.params.size()) != b.numel())
            fail(ErrorKind::kInput, "{}: override for bias '{}' has {} scales but the bias has {} values",
                 overrides->source, t.name, r.params.size(), b.numel());
          r.record.source = "override";
        } else {
          QuantizedTensor q = quantize_bias(b, in->second.params.at(0).scale, wt->second.params);
          r.params = q.params;
          r.record.source = "bias";
        }
        apply_adjustments(r.params, ov, t.name);
        r.axis = r.params.size() > 1 ? 0 : -1;
        // Quantize through quantize_bias with unit input scale (the float32 product 1·s is exact).
        QuantizedTensor q = quantize_bias(b, 1.0f, r.params);
        r.codes = q.codes;
        r.record.saturated = q.saturated;
        break;
      }
    }
    fill_record(r.record, r.params, r.axis);
    res[t.name] = std::move(r);
  }

  // ---- Graph ----
  QdqResult out;
  Model& m = out.model;
  m.ir_version = fp32.ir_version;
  m.opset = std::max<int64_t>(fp32.opset, 13);
  m.producer_name = "qpipe";
  m.producer_version = fp32.producer_version;
  m.metadata = fp32.metadata;
  m.metadata["qpipe.quant_config"] = config.to_json().dump();
  Graph& ng = m.graph;
  ng.name = g.name + "_" + qtype_name(config.activation_type) + "_qdq";
  ng.inputs = g.inputs;
  ng.initializers = g.initializers;

  auto rename = [&](const std::string& t) {
    auto it = plan.renamed.find(t);
    return it == plan.renamed.end() ? t : it->second;
  };
  auto add_init = [&](const std::string& name, Tensor t) {
    if (ng.initializers.count(name) && !g.initializers.count(name))
      fail(ErrorKind::kRuntime, "{}: generated initializer name '{}' is used twice", model_name, name);
    if (g.initializers.count(name) || g.producer(name) ||
        std::find(g.inputs.begin(), g.inputs.end(), name) != g.inputs.end())
      fail(ErrorKind::kRuntime, "{}: generated name '{}' already exists in the model", model_name, name);
    ng.initializers[name] = std::move(t);
  };
  auto make_node = [](std::string name, std::string op, std::vector<std::string> ins, std::string outp, int axis) {
    Node n;
    n.name = std::move(name);
    n.op_type = std::move(op);
    n.inputs = std::move(ins);
    n.outputs = {std::move(outp)};
    if (axis >= 0) n.attrs["axis"] = Attribute::Int(axis);
    return n;
  };
  std::set<std::string> emitted;
  auto emit_activation = [&](const std::string& x) {
    const Resolved& r = res.at(x);
    add_init(scale_name(x), scale_tensor(r.params));
    add_init(zp_name(x), zp_tensor(r.params));
    ng.nodes.push_back(make_node(x + "_QuantizeLinear", "QuantizeLinear", {x, scale_name(x), zp_name(x)}, q_out(x), -1));
    ng.nodes.push_back(
        make_node(x + "_DequantizeLinear", "DequantizeLinear", {q_out(x), scale_name(x), zp_name(x)}, dq_out(x), -1));
    out.quantize_nodes++;
    out.dequantize_nodes++;
    emitted.insert(x);
  };
  auto emit_constant = [&](const std::string& c) {
    const Resolved& r = res.at(c);
    add_init(quantized_name(c), r.codes);
    add_init(scale_name(c), scale_tensor(r.params));
    add_init(zp_name(c), zp_tensor(r.params));
    ng.nodes.push_back(make_node(c + "_DequantizeLinear", "DequantizeLinear",
                                 {quantized_name(c), scale_name(c), zp_name(c)}, dq_out(c), r.axis));
    out.dequantize_nodes++;
    emitted.insert(c);
  };
  auto read_name = [&](const std::string& t) {
    const std::string x = rename(t);
    return res.count(x) ? dq_out(x) : x;
  };

  for (const auto& in : g.inputs)
    if (auto* t = plan.find(in); t && t->role == QdqRole::kActivation) emit_activation(in);

  for (std::size_t idx : g.topological_order()) {
    const Node& n = g.nodes[idx];
    if (plan.removed_nodes.count(n.name)) continue;
    for (const auto& i : n.inputs) {
      const QdqTensor* t = plan.find(i);
      if (t && t->role != QdqRole::kActivation && !emitted.count(i)) emit_constant(i);
    }
    Node copy = n;
    for (auto& i : copy.inputs)
      if (!i.empty()) i = read_name(i);
    for (auto& o : copy.outputs) o = rename(o);
    ng.nodes.push_back(copy);
    for (const auto& o : copy.outputs) {
      const QdqTensor* t = plan.find(o);
      if (t && t->role == QdqRole::kActivation && !emitted.count(o)) emit_activation(o);
    }
  }
  // Activations that were planned but never produced (should not happen).
  for (const auto& t : plan.tensors)
    if (!emitted.count(t.name))
      fail(ErrorKind::kRuntime, "{}: planned tensor '{}' (node '{}') was never emitted", model_name, t.name, t.node);

  for (const auto& o : g.outputs) {
    const std::string x = rename(o);
    const std::string name = res.count(x) ? dq_out(x) : x;
    ng.outputs.push_back(name);
    if (auto it = g.value_info.find(o); it != g.value_info.end()) ng.value_info[name] = it->second;
  }
  for (const auto& i : g.inputs)
    if (auto it = g.value_info.find(i); it != g.value_info.end()) ng.value_info[i] = it->second;

  // Drop original initializers nobody reads any more (ORT clean_initializers).
  std::set<std::string> used;
  for (const auto& n : ng.nodes)
    for (const auto& i : n.inputs) used.insert(i);
  for (const auto& [name, t] : g.initializers)
    if (!used.count(name)) ng.initializers.erase(name);

  for (const auto& t : plan.tensors) out.params.push_back(res.at(t.name).record);
  return out;
}

QdqResult quantize_qdq(const Model& fp32, const std::map<std::string, Range>& ranges, const QuantConfig& config,
                       const TensorOverrides* overrides) {
  return build_qdq(fp32, plan_qdq(fp32.graph, config), ranges, config, overrides);
}

namespace {

struct BiasLocation {
  std::string bias_tensor;       // the Conv's input 2
  const Node* dq = nullptr;      // DequantizeLinear producing it, if quantized
};

BiasLocation locate_bias(const Model& m, const std::string& node_name) {
  const Graph& g = m.graph;
  const Node* conv = nullptr;
  for (const auto& n : g.nodes)
    if (n.name == node_name) conv = &n;
  if (!conv) fail(ErrorKind::kRuntime, "bias correction: no node named '{}' in the model", node_name);
  BiasLocation loc;
  if (conv->inputs.size() < 3 || conv->inputs[2].empty()) return loc;
  loc.bias_tensor = conv->inputs[2];
  if (auto p = g.producer(loc.bias_tensor)) {
    const Node& dq = g.nodes[*p];
    if (dq.op_type != "DequantizeLinear" || !g.is_constant(dq.inputs.at(0)) || !g.is_constant(dq.inputs.at(1)))
      fail(ErrorKind::kRuntime, "bias correction: bias '{}' of node '{}' is produced by {} '{}', expected a "
           "DequantizeLinear of constants", loc.bias_tensor, node_name, dq.op_type, dq.name);
    loc.dq = &dq;
  } else if (!g.is_constant(loc.bias_tensor)) {
    fail(ErrorKind::kRuntime, "bias correction: bias '{}' of node '{}' is not a constant", loc.bias_tensor, node_name);
  }
  return loc;
}

std::vector<QuantParams> bias_params(const Graph& g, const Node& dq) {
  const Tensor& s = g.initializers.at(dq.inputs[1]);
  std::vector<QuantParams> ps;
  const auto st = to_double(s);
  for (double v : st) {
    QuantParams p;
    p.scale = static_cast<float>(v);
    p.zero_point = 0;
    p.type = QType::kInt32;
    p.qmin = std::numeric_limits<int32_t>::min();
    p.qmax = std::numeric_limits<int32_t>::max();
    ps.push_back(p);
  }
  return ps;
}

}  // namespace

int64_t replace_conv_bias(Model& qdq, const std::string& node_name, const Tensor& new_bias) {
  BiasLocation loc = locate_bias(qdq, node_name);
  if (loc.bias_tensor.empty()) fail(ErrorKind::kRuntime, "bias correction: node '{}' has no bias", node_name);
  Graph& g = qdq.graph;
  if (!loc.dq) {
    Tensor& b = g.initializers.at(loc.bias_tensor);
    if (b.numel() != new_bias.numel())
      fail(ErrorKind::kRuntime, "bias correction: node '{}': new bias has {} values, expected {}", node_name,
           new_bias.numel(), b.numel());
    b = new_bias.reshaped(b.shape()).clone();
    return 0;
  }
  Tensor& codes = g.initializers.at(loc.dq->inputs[0]);
  if (codes.dtype() != DType::kInt32 || codes.numel() != new_bias.numel())
    fail(ErrorKind::kRuntime, "bias correction: node '{}': bias codes '{}' are {} {}, expected int32 with {} values",
         node_name, loc.dq->inputs[0], dtype_name(codes.dtype()), shape_str(codes.shape()), new_bias.numel());
  QuantizedTensor q = quantize_bias(new_bias.reshaped(codes.shape()), 1.0f, bias_params(g, *loc.dq));
  codes = q.codes;
  return q.saturated;
}

void check_onnx_model(const Model& model) {
  onnx::ModelProto proto;
  const std::string bytes = serialize_onnx(model);
  if (!proto.ParseFromString(bytes))
    fail(ErrorKind::kRuntime, "onnx checker: the serialized model ({} bytes) does not parse back", bytes.size());
  try {
    onnx::checker::check_model(proto);
  } catch (const std::exception& e) {
    fail(ErrorKind::kRuntime, "onnx checker rejected model '{}': {}", model.graph.name, e.what());
  }
}

Tensor conv_bias_value(const Model& qdq, const std::string& node_name) {
  BiasLocation loc = locate_bias(qdq, node_name);
  if (loc.bias_tensor.empty()) return Tensor();
  const Graph& g = qdq.graph;
  if (!loc.dq) return g.initializers.at(loc.bias_tensor).clone();
  const Tensor& codes = g.initializers.at(loc.dq->inputs[0]);
  auto ps = bias_params(g, *loc.dq);
  if (ps.size() == 1) return dequantize_tensor(codes, ps[0]);
  return dequantize_tensor(codes, std::span<const QuantParams>(ps), 0);
}

}  // namespace qpipe
