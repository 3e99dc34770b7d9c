#include "quant/analysis/qdq_graph.h"

#include <fmt/format.h>

#include <algorithm>

#include "engine/error.h"

namespace qpipe::analysis {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const std::string& model_where(const Model& m) { return m.path.empty() ? m.graph.name : m.path; }

// Scale/zero-point initializers of a Q or DQ node -> one QuantParams per index.
std::vector<QuantParams> read_params(const Model& m, std::size_t ni, DType code_type) {
  const Graph& g = m.graph;
  const Node& n = g.nodes[ni];
  if (n.inputs.size() < 2 || !g.is_constant(n.inputs[1]))
    fail(ErrorKind::kInput, "{}: {}: the scale must be an initializer", model_where(m), n.where(ni));
  const Tensor& st = g.initializers.at(n.inputs[1]);
  if (st.dtype() != DType::kFloat32)
    fail(ErrorKind::kInput, "{}: {}: the scale must be float32, got {}", model_where(m), n.where(ni), dtype_name(st.dtype()));
  std::vector<double> zp;
  if (n.inputs.size() >= 3 && !n.inputs[2].empty()) {
    if (!g.is_constant(n.inputs[2]))
      fail(ErrorKind::kInput, "{}: {}: the zero point must be an initializer", model_where(m), n.where(ni));
    const Tensor& zt = g.initializers.at(n.inputs[2]);
    if (zt.numel() != st.numel())
      fail(ErrorKind::kInput, "{}: {}: scale has {} values but zero point has {}", model_where(m), n.where(ni),
           st.numel(), zt.numel());
    zp = to_double(zt);
  } else {
    zp.assign(static_cast<std::size_t>(st.numel()), 0.0);
  }
  const QType qt = qtype_from_dtype(code_type);
  std::vector<QuantParams> out;
  const float* s = st.data<float>();
  for (int64_t i = 0; i < st.numel(); ++i)
    out.push_back(make_qparams(s[i], static_cast<int32_t>(zp[static_cast<std::size_t>(i)]), qt,
                               fmt::format("{}: {}", model_where(m), n.where(ni))));
  return out;
}

DType q_output_type(const Graph& g, const Node& n) {
  if (n.inputs.size() >= 3 && !n.inputs[2].empty() && g.is_constant(n.inputs[2]))
    return g.initializers.at(n.inputs[2]).dtype();
  return DType::kUInt8;  // ONNX default when the zero point is omitted
}

}  // namespace

std::string fp32_constant_name(const std::string& dq_tensor, const std::string& quantized_init) {
  if (ends_with(dq_tensor, "_dq")) return dq_tensor.substr(0, dq_tensor.size() - 3);
  if (ends_with(quantized_init, "_quantized")) return quantized_init.substr(0, quantized_init.size() - 10);
  return "";
}

QdqGraph::QdqGraph(Model qdq) : model_(std::move(qdq)) {
  const Graph& g = model_.graph;
  const std::string& where = model_where(model_);
  std::map<std::string, std::size_t> producer;
  std::map<std::string, std::vector<std::size_t>> consumers;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    for (const auto& o : g.nodes[i].outputs) producer[o] = i;
    for (const auto& in : g.nodes[i].inputs)
      if (!in.empty()) {
        auto& c = consumers[in];
        if (c.empty() || c.back() != i) c.push_back(i);
      }
  }
  auto is_q = [&](std::size_t i) { return g.nodes[i].op_type == "QuantizeLinear"; };
  auto is_dq = [&](std::size_t i) { return g.nodes[i].op_type == "DequantizeLinear"; };
  std::set<std::string> outputs(g.outputs.begin(), g.outputs.end());

  // Activation points, in node order of their Q.
  std::set<std::size_t> dq_claimed;
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (!is_q(i)) continue;
    const Node& n = g.nodes[i];
    if (n.inputs.empty() || n.outputs.size() != 1)
      fail(ErrorKind::kInput, "{}: {}: expected one input and one output", where, n.where(i));
    if (g.is_constant(n.inputs[0])) continue;  // a Q of a constant is folded; not an activation point
    ActivationQuant a;
    a.tensor = n.inputs[0];
    a.q_tensor = n.outputs[0];
    a.q_node = i;
    auto ps = read_params(model_, i, q_output_type(g, n));
    if (ps.size() != 1)
      fail(ErrorKind::kUnsupported, "{}: {}: per-axis activation quantization is not supported by the analyses",
           where, n.where(i));
    a.params = ps[0];
    for (std::size_t c : consumers[a.q_tensor]) {
      if (!is_dq(c))
        fail(ErrorKind::kInput, "{}: {} reads the quantized tensor '{}' directly; expected a DequantizeLinear", where,
             g.nodes[c].where(c), a.q_tensor);
      a.dq_nodes.push_back(c);
      a.dq_tensors.push_back(g.nodes[c].outputs.at(0));
      dq_claimed.insert(c);
    }
    if (a.dq_nodes.empty())
      fail(ErrorKind::kInput, "{}: {}: its output '{}' has no DequantizeLinear", where, n.where(i), a.q_tensor);
    if (auto it = producer.find(a.tensor); it != producer.end()) a.producer = it->second;
    std::set<std::size_t> cons;
    for (const auto& dq : a.dq_tensors) {
      for (std::size_t c : consumers[dq]) cons.insert(c);
      if (outputs.count(dq)) a.feeds_graph_output = true;
    }
    a.consumers.assign(cons.begin(), cons.end());
    const int idx = static_cast<int>(acts_.size());
    act_by_tensor_[a.tensor] = idx;
    for (const auto& dq : a.dq_tensors) act_by_dq_[dq] = idx;
    acts_.push_back(std::move(a));
  }

  // Constant points.
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (!is_dq(i) || dq_claimed.count(i)) continue;
    const Node& n = g.nodes[i];
    if (n.inputs.empty() || n.outputs.size() != 1 || !g.is_constant(n.inputs[0]))
      fail(ErrorKind::kInput, "{}: {}: reads '{}', which is neither an initializer nor a QuantizeLinear output", where,
           n.where(i), n.inputs.empty() ? std::string() : n.inputs[0]);
    ConstantQuant c;
    c.dq_tensor = n.outputs[0];
    c.quantized_init = n.inputs[0];
    c.fp32_name = fp32_constant_name(c.dq_tensor, c.quantized_init);
    c.dq_node = i;
    const Tensor& codes = g.initializers.at(c.quantized_init);
    c.shape = codes.shape();
    c.params = read_params(model_, i, codes.dtype());
    if (c.params.size() > 1) {
      int64_t axis = n.attr_int("axis", 1);
      if (axis < 0) axis += static_cast<int64_t>(codes.rank());
      if (axis < 0 || axis >= static_cast<int64_t>(codes.rank()) || codes.dim(static_cast<std::size_t>(axis)) !=
                                                                        static_cast<int64_t>(c.params.size()))
        fail(ErrorKind::kInput, "{}: {}: {} scales do not match axis {} of shape {}", where, n.where(i),
             c.params.size(), n.attr_int("axis", 1), shape_str(codes.shape()));
      c.axis = static_cast<int>(axis);
    }
    c.consumers = consumers[c.dq_tensor];
    const_by_dq_[c.dq_tensor] = static_cast<int>(consts_.size());
    consts_.push_back(std::move(c));
  }

  // Layers.
  layer_of_node_.assign(g.nodes.size(), -1);
  for (std::size_t i = 0; i < g.nodes.size(); ++i) {
    if (is_q(i) || is_dq(i)) continue;
    const Node& n = g.nodes[i];
    Layer l;
    l.node = i;
    l.name = n.name.empty() ? (n.outputs.empty() ? fmt::format("node{}", i) : n.outputs[0]) : n.name;
    l.op_type = n.op_type;
    bool quantized = false;
    for (const auto& in : n.inputs) {
      const int a = activation_of_dq(in), c = constant_of_dq(in);
      l.act_inputs.push_back(a);
      l.const_inputs.push_back(c);
      quantized = quantized || a >= 0 || c >= 0;
    }
    for (const auto& o : n.outputs) {
      const int a = activation_index(o);
      if (a < 0) continue;
      l.output_quants.push_back(a);
      // Owns it only when no compute node reads it (see the header comment).
      if (acts_[static_cast<std::size_t>(a)].consumers.empty()) quantized = true;
    }
    if (!quantized) continue;
    layer_of_node_[i] = static_cast<int>(layers_.size());
    layer_by_name_[l.name] = static_cast<int>(layers_.size());
    layers_.push_back(std::move(l));
  }
}

int QdqGraph::activation_index(const std::string& tensor) const {
  auto it = act_by_tensor_.find(tensor);
  return it == act_by_tensor_.end() ? -1 : it->second;
}
int QdqGraph::activation_of_dq(const std::string& dq) const {
  auto it = act_by_dq_.find(dq);
  return it == act_by_dq_.end() ? -1 : it->second;
}
int QdqGraph::constant_of_dq(const std::string& dq) const {
  auto it = const_by_dq_.find(dq);
  return it == const_by_dq_.end() ? -1 : it->second;
}
int QdqGraph::layer_index(const std::string& name) const {
  auto it = layer_by_name_.find(name);
  return it == layer_by_name_.end() ? -1 : it->second;
}
int QdqGraph::owner_of_activation(int act) const {
  const ActivationQuant& a = acts_.at(static_cast<std::size_t>(act));
  if (!a.consumers.empty()) return -1;  // owned by each consumer (see header)
  return a.producer ? layer_of_node_[*a.producer] : -1;
}

Model keep_float(const QdqGraph& g, const Model& fp32, const std::set<int>& layers) {
  Model m = g.model();
  Graph& gr = m.graph;
  std::map<std::string, std::string> relu_of;  // X -> Relu(X) tensor
  std::map<std::size_t, std::vector<Node>> insert_before;
  for (int li : layers) {
    if (li < 0 || li >= static_cast<int>(g.layers().size()))
      fail(ErrorKind::kRuntime, "keep_float: layer index {} out of range (model has {} layers)", li, g.layers().size());
    const Layer& l = g.layers()[static_cast<std::size_t>(li)];
    Node& n = gr.nodes[l.node];
    for (std::size_t k = 0; k < n.inputs.size(); ++k) {
      if (l.act_inputs[k] >= 0) {
        const ActivationQuant& a = g.activations()[static_cast<std::size_t>(l.act_inputs[k])];
        if (a.clamps_at_zero()) {
          auto it = relu_of.find(a.tensor);
          if (it == relu_of.end()) {
            Node r;
            r.op_type = "Relu";
            r.name = a.tensor + "__fp32_relu";
            r.inputs = {a.tensor};
            r.outputs = {a.tensor + "__fp32_relu"};
            it = relu_of.emplace(a.tensor, r.outputs[0]).first;
            // Place right after X's Q node (X exists there) so the graph stays sorted.
            insert_before[a.q_node + 1].push_back(std::move(r));
          }
          n.inputs[k] = it->second;
        } else {
          n.inputs[k] = a.tensor;
        }
      } else if (l.const_inputs[k] >= 0) {
        const ConstantQuant& c = g.constants()[static_cast<std::size_t>(l.const_inputs[k])];
        auto it = fp32.graph.initializers.find(c.fp32_name);
        if (c.fp32_name.empty() || it == fp32.graph.initializers.end())
          fail(ErrorKind::kInput, "{}: constant '{}' (read by layer '{}') has no float initializer '{}' in {}",
               model_where(g.model()), c.dq_tensor, l.name, c.fp32_name, model_where(fp32));
        if (it->second.shape() != c.shape)
          fail(ErrorKind::kInput, "{}: constant '{}' has shape {} but {}'s '{}' has {}", model_where(g.model()),
               c.dq_tensor, shape_str(c.shape), model_where(fp32), c.fp32_name, shape_str(it->second.shape()));
        const std::string name = c.fp32_name + "__fp32";
        gr.initializers[name] = it->second;
        n.inputs[k] = name;
      }
    }
    // Owned output quantization that only feeds graph outputs.
    for (int ai : l.output_quants) {
      if (g.owner_of_activation(ai) != li) continue;
      const ActivationQuant& a = g.activations()[static_cast<std::size_t>(ai)];
      for (auto& o : gr.outputs)
        if (std::find(a.dq_tensors.begin(), a.dq_tensors.end(), o) != a.dq_tensors.end()) {
          if (gr.value_info.count(o)) gr.value_info[a.tensor] = gr.value_info[o];
          o = a.tensor;
        }
    }
  }
  if (!insert_before.empty()) {
    std::vector<Node> nodes;
    for (std::size_t i = 0; i <= gr.nodes.size(); ++i) {
      if (auto it = insert_before.find(i); it != insert_before.end())
        for (auto& r : it->second) nodes.push_back(std::move(r));
      if (i < gr.nodes.size()) nodes.push_back(std::move(gr.nodes[i]));
    }
    gr.nodes = std::move(nodes);
  }
  return m;
}

Model only_quantized(const QdqGraph& g, const Model& fp32, int layer) {
  std::set<int> others;
  for (int i = 0; i < static_cast<int>(g.layers().size()); ++i)
    if (i != layer) others.insert(i);
  if (layer < 0 || layer >= static_cast<int>(g.layers().size()))
    fail(ErrorKind::kRuntime, "only_quantized: layer index {} out of range (model has {} layers)", layer,
         g.layers().size());
  return keep_float(g, fp32, others);
}

Model prune_to(const Model& m, const std::vector<std::string>& tensors) {
  const Graph& g = m.graph;
  std::set<std::string> need(tensors.begin(), tensors.end());
  std::vector<bool> keep(g.nodes.size(), false);
  for (std::size_t i = g.nodes.size(); i-- > 0;) {
    const Node& n = g.nodes[i];
    bool used = false;
    for (const auto& o : n.outputs) used = used || need.count(o);
    if (!used) continue;
    keep[i] = true;
    for (const auto& in : n.inputs)
      if (!in.empty()) need.insert(in);
  }
  Model out = m;
  Graph& og = out.graph;
  og.nodes.clear();
  for (std::size_t i = 0; i < g.nodes.size(); ++i)
    if (keep[i]) og.nodes.push_back(g.nodes[i]);
  og.initializers.clear();
  for (const auto& [name, t] : g.initializers)
    if (need.count(name)) og.initializers[name] = t;
  og.outputs = tensors;
  for (const auto& t : tensors)
    if (!need.count(t) || (!g.producer(t) && std::find(g.inputs.begin(), g.inputs.end(), t) == g.inputs.end()))
      fail(ErrorKind::kInput, "{}: prune_to: no tensor named '{}'", model_where(m), t);
  return out;
}

LocalModel build_local_model(const QdqGraph& g, const std::map<std::string, Shape>& fp32_shapes) {
  const Model& src = g.model();
  const Graph& sg = src.graph;
  LocalModel lm;
  Model& m = lm.model;
  m.ir_version = src.ir_version;
  m.opset = src.opset;
  m.producer_name = "qpipe-analysis-local";
  m.path = src.path.empty() ? "<local model>" : src.path + " (local model)";
  Graph& gr = m.graph;
  gr.name = sg.name + "_local";
  gr.initializers = sg.initializers;
  // Constant DQ nodes are copied as they are (folded by the Session).
  for (const auto& c : g.constants()) gr.nodes.push_back(sg.nodes[c.dq_node]);

  std::set<std::string> fed;
  auto feed = [&](const std::string& name) {
    const std::string in = "fp32::" + name;
    if (fed.insert(name).second) {
      lm.feeds.push_back(name);
      gr.inputs.push_back(in);
      ValueInfo vi;
      vi.dtype = DType::kFloat32;
      vi.shape = fp32_shapes.at(name);
      vi.has_shape = true;
      gr.value_info[in] = vi;
    }
    return in;
  };
  auto add_qdq = [&](const ActivationQuant& a, const std::string& in, const std::string& prefix) {
    const Node& q = sg.nodes[a.q_node];
    const Node& dq = sg.nodes[a.dq_nodes[0]];
    Node nq = q, ndq = dq;
    nq.name = prefix + q.name;
    nq.inputs[0] = in;
    nq.outputs = {prefix + a.q_tensor};
    ndq.name = prefix + dq.name;
    ndq.inputs[0] = nq.outputs[0];
    ndq.outputs = {prefix + a.dq_tensors[0]};
    gr.nodes.push_back(std::move(nq));
    gr.nodes.push_back(std::move(ndq));
    return prefix + a.dq_tensors[0];
  };
  std::set<std::string> input_qdq_done;
  for (const auto& a : g.activations()) {
    if (!fp32_shapes.count(a.tensor)) {
      lm.skipped[a.tensor] = fmt::format("the FP32 model has no tensor '{}'", a.tensor);
      continue;
    }
    const std::string prefix = fmt::format("local::{}::", a.tensor);
    if (!a.producer) {
      lm.output[a.tensor] = add_qdq(a, feed(a.tensor), prefix);
      gr.outputs.push_back(lm.output[a.tensor]);
      continue;
    }
    const Node& p = sg.nodes[*a.producer];
    Node np = p;
    np.name = prefix + p.name;
    std::string missing;
    std::vector<std::pair<const ActivationQuant*, std::string>> input_qdq;
    for (auto& in : np.inputs) {
      if (in.empty() || sg.is_constant(in) || g.constant_of_dq(in) >= 0) continue;
      const int ai = g.activation_of_dq(in);
      const std::string fp = ai >= 0 ? g.activations()[static_cast<std::size_t>(ai)].tensor : in;
      if (!fp32_shapes.count(fp)) {
        missing = fp;
        break;
      }
      if (ai >= 0) {
        const ActivationQuant& y = g.activations()[static_cast<std::size_t>(ai)];
        in = add_qdq(y, feed(fp), prefix + "in::");
      } else {
        in = feed(fp);
      }
    }
    if (!missing.empty()) {
      lm.skipped[a.tensor] = fmt::format("the FP32 model has no tensor '{}' (an input of {})", missing,
                                         p.where(*a.producer));
      // Drop the Q/DQ nodes added for this producer's other inputs.
      while (!gr.nodes.empty() && gr.nodes.back().name.rfind(prefix, 0) == 0) gr.nodes.pop_back();
      continue;
    }
    for (auto& o : np.outputs) o = prefix + o;
    const std::string out = prefix + a.tensor;
    gr.nodes.push_back(std::move(np));
    lm.output[a.tensor] = add_qdq(a, out, prefix + "out::");
    gr.outputs.push_back(lm.output[a.tensor]);
  }
  return lm;
}

}  // namespace qpipe::analysis
