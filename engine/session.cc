#include "engine/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <unordered_map>

#include "engine/error.h"
#include "engine/kernel.h"
#include "engine/integer/exact.h"
#include "engine/integer/ort_avx2.h"
#include "engine/kernels/common.h"
#include "engine/kernels/fast/fused.h"
#include "engine/kernels/ort_order_conv.h"
#include "engine/op_registry.h"

namespace qpipe {
namespace {

struct Step {
  std::size_t node = 0;
  std::unique_ptr<OpKernel> kernel;
  std::vector<int> in, out;  // value ids (-1 for an omitted optional input)
  bool view = false;
  std::vector<int> release;  // values whose last use is this step
};

// Buffers of one run: one Tensor per slot, reused across runs (resize keeps
// the storage when it is large enough and not shared), so the hot loop
// neither allocates nor zero-fills.
struct Workspace {
  std::vector<Tensor> slots;
};

struct Plan {
  std::vector<ValueDesc> descs;  // per value id
  std::vector<Tensor> constants; // per value id: initializers and folded values
  std::vector<Step> steps;
  std::vector<int> computed;     // value ids computed by steps or folding, in order
  // Buffer plan: the slot of each value id (-1: caller-owned input, constant,
  // or a kept value that gets its own storage), and each slot's size.
  std::vector<int> slot;
  std::vector<std::size_t> slot_bytes;
  // Workspaces not in use (run() is const and may run concurrently).
  mutable std::mutex pool_mu;
  mutable std::vector<std::unique_ptr<Workspace>> pool;

  std::unique_ptr<Workspace> acquire() const {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        auto ws = std::move(pool.back());
        pool.pop_back();
        return ws;
      }
    }
    auto ws = std::make_unique<Workspace>();
    for (std::size_t b : slot_bytes) ws->slots.emplace_back(DType::kUInt8, Shape{static_cast<int64_t>(b)});
    return ws;
  }
  void release(std::unique_ptr<Workspace> ws) const {
    std::lock_guard<std::mutex> lock(pool_mu);
    pool.push_back(std::move(ws));
  }
};

Tensor widen(const Tensor& t) {
  if (t.dtype() != DType::kFloat32) return t;
  Tensor out(DType::kFloat64, t.shape());
  const float* s = t.data<float>();
  double* d = out.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = s[i];
  return out;
}

}  // namespace

struct Session::Impl {
  Model model;
  SessionOptions options;
  std::vector<std::size_t> order;
  std::unordered_map<std::string, int> ids;
  std::vector<std::string> names;
  std::vector<Tensor> initializers;  // per id (empty when not an initializer)
  std::vector<int> input_ids, output_ids;
  mutable std::mutex mu;
  // Plans per (input shapes, fetched tensors): fetched intermediates are never
  // fused away, so the fetch list is part of the key.
  using PlanKey = std::pair<std::vector<Shape>, std::vector<int>>;
  mutable std::map<PlanKey, std::shared_ptr<const Plan>> plans;

  int id_of(const std::string& name) {
    auto [it, inserted] = ids.emplace(name, static_cast<int>(names.size()));
    if (inserted) names.push_back(name);
    return it->second;
  }

  std::shared_ptr<const Plan> build_plan(const std::vector<Shape>& input_shapes, const std::vector<int>& fetch) const;
  std::shared_ptr<const Plan> plan_for(const std::vector<Shape>& input_shapes, std::vector<int> fetch) const {
    std::sort(fetch.begin(), fetch.end());
    fetch.erase(std::unique(fetch.begin(), fetch.end()), fetch.end());
    PlanKey key{input_shapes, fetch};
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(key);
    if (it != plans.end()) return it->second;
    auto p = build_plan(input_shapes, fetch);
    plans.emplace(std::move(key), p);
    return p;
  }
  void fuse(Plan& plan, const std::set<int>& keep) const;
  void rewrite_ort_avx2(Plan& plan, const std::set<int>& keep) const;
  void rewrite_exact(Plan& plan, const std::set<int>& keep) const;
  void plan_buffers(Plan& plan, const std::set<int>& keep) const;
};

std::shared_ptr<const Plan> Session::Impl::build_plan(const std::vector<Shape>& input_shapes,
                                                      const std::vector<int>& fetch) const {
  auto plan = std::make_shared<Plan>();
  const std::size_t nv = names.size();
  plan->descs.resize(nv);
  plan->constants.resize(nv);
  std::vector<bool> known(nv, false);
  for (std::size_t v = 0; v < nv; ++v) {
    if (initializers[v].empty()) continue;
    plan->constants[v] = initializers[v];
    plan->descs[v] = {initializers[v].dtype(), initializers[v].shape(), &plan->constants[v]};
    known[v] = true;
  }
  for (std::size_t i = 0; i < input_ids.size(); ++i) {
    const auto& vi = model.graph.value_info.at(names[static_cast<std::size_t>(input_ids[i])]);
    DType dt = vi.dtype;
    if (options.float64 && dt == DType::kFloat32) dt = DType::kFloat64;
    plan->descs[static_cast<std::size_t>(input_ids[i])] = {dt, input_shapes[i], nullptr};
    known[static_cast<std::size_t>(input_ids[i])] = true;
  }
  PrepareContext ctx{model.path, options.exec_mode, model.opset};
  // ort-avx2 models all of ONNX Runtime's arithmetic: the float32 convs it
  // leaves unfused run in MLAS's order too.
  const bool ort_conv_order = !options.float64 && (options.conv_order == "ort" || options.exec_mode == "ort-avx2");
  const auto& registry = OpRegistry::instance();
  std::vector<std::string> problems;
  for (std::size_t ni : order) {
    const Node& node = model.graph.nodes[ni];
    PrepareFn fn = registry.find(node.op_type);
    if (!node.domain.empty() && node.domain != "ai.onnx") fn = nullptr;
    if (!fn) {
      problems.push_back(fmt::format("{}: op {}{} is not supported", node.where(ni),
                                     node.domain.empty() ? "" : node.domain + ".", node.op_type));
      continue;
    }
    std::vector<ValueDesc> in;
    std::vector<int> in_ids;
    bool ready = true, all_const = true;
    for (const auto& name : node.inputs) {
      if (name.empty()) {
        in.push_back({});
        in_ids.push_back(-1);
        continue;
      }
      const int id = ids.at(name);
      if (!known[static_cast<std::size_t>(id)]) ready = false;
      in.push_back(plan->descs[static_cast<std::size_t>(id)]);
      in_ids.push_back(id);
      if (!plan->descs[static_cast<std::size_t>(id)].constant) all_const = false;
    }
    if (!ready) continue;  // an upstream node was refused; its problem is already listed
    Prepared prepared;
    try {
      if (ort_conv_order && node.op_type == "Conv")
        prepared = kernels::prepare_conv_ort_order(node, in, options.ort_intra_op_threads, options.force_portable);
      else if (ort_conv_order && node.op_type == "MatMul")
        prepared = kernels::prepare_matmul_ort_order(node, in);
      else
        prepared = fn(node, in, ctx);
    } catch (const PtqError& e) {
      if (e.kind() != ErrorKind::kUnsupported && e.kind() != ErrorKind::kInput) throw;
      problems.push_back(fmt::format("{}: {}", node.where(ni), e.what()));
      continue;
    }
    // Trailing empty output names are omitted optional outputs (ONNX).
    std::size_t used_outputs = node.outputs.size();
    while (used_outputs > 0 && node.outputs[used_outputs - 1].empty()) --used_outputs;
    bool empty_inside = false;
    for (std::size_t k = 0; k < used_outputs; ++k) empty_inside = empty_inside || node.outputs[k].empty();
    if (prepared.outputs.size() != used_outputs || empty_inside) {
      problems.push_back(fmt::format("{}: produces {} outputs, qpipe supports {}", node.where(ni), used_outputs,
                                     prepared.outputs.size()));
      continue;
    }
    std::vector<int> out_ids;
    for (std::size_t k = 0; k < used_outputs; ++k) {
      const int id = ids.at(node.outputs[k]);
      out_ids.push_back(id);
      plan->descs[static_cast<std::size_t>(id)] = prepared.outputs[k];
      known[static_cast<std::size_t>(id)] = true;
    }
    if (all_const) {
      // Fold now: the value is the same for every batch.
      std::vector<const Tensor*> ip;
      for (int id : in_ids) ip.push_back(id < 0 ? nullptr : &plan->constants[static_cast<std::size_t>(id)]);
      std::vector<Tensor*> op;
      for (std::size_t k = 0; k < out_ids.size(); ++k) {
        auto& slot = plan->constants[static_cast<std::size_t>(out_ids[k])];
        slot = Tensor(prepared.outputs[k].dtype, prepared.outputs[k].shape);
        op.push_back(&slot);
      }
      prepared.kernel->eval(ip, op);
      for (int id : out_ids) {
        plan->descs[static_cast<std::size_t>(id)].constant = &plan->constants[static_cast<std::size_t>(id)];
        plan->computed.push_back(id);
      }
      continue;
    }
    Step step;
    step.node = ni;
    step.view = prepared.kernel->is_view();
    step.kernel = std::move(prepared.kernel);
    step.in = in_ids;
    step.out = out_ids;
    for (int id : out_ids) plan->computed.push_back(id);
    plan->steps.push_back(std::move(step));
  }
  if (!problems.empty()) {
    std::string supported;
    for (const auto& op : registry.supported_ops()) supported += (supported.empty() ? "" : " ") + op;
    fail(ErrorKind::kUnsupported, "{}: {} problem(s) prevent running this model:\n  - {}\nsupported ops: {}",
         model.path.empty() ? model.graph.name : model.path, problems.size(), fmt::join(problems, "\n  - "), supported);
  }
  std::set<int> keep(output_ids.begin(), output_ids.end());
  keep.insert(fetch.begin(), fetch.end());
  if (!options.float64 && options.exec_mode == "ort-avx2") rewrite_ort_avx2(*plan, keep);
  if (!options.float64 && options.exec_mode == "exact") rewrite_exact(*plan, keep);
  if (!options.float64 && !ort_conv_order) fuse(*plan, keep);  // fuse rebuilds every Conv
  plan_buffers(*plan, keep);
  return plan;
}


namespace {

// Expands a constant broadcastable to [C] along axis 1 of a tensor of shape
// `out` (every other axis 1) to C values; false when it varies elsewhere.
bool per_channel(const Tensor& t, const Shape& out, std::vector<float>* values) {
  if (t.dtype() != DType::kFloat32 || t.rank() > out.size()) return false;
  const int64_t C = out.size() > 1 ? out[1] : 1;
  Shape cs(out.size() - t.rank(), 1);
  cs.insert(cs.end(), t.shape().begin(), t.shape().end());
  for (std::size_t d = 0; d < cs.size(); ++d)
    if (cs[d] != 1 && !(d == 1 && cs[d] == C)) return false;
  const float* v = t.data<float>();
  values->resize(static_cast<std::size_t>(C));
  for (int64_t c = 0; c < C; ++c) (*values)[static_cast<std::size_t>(c)] = t.numel() == 1 ? v[0] : v[c];
  return true;
}

// Scale and zero point of a QuantizeLinear/DequantizeLinear, expanded to C
// channels (per tensor, or per axis along axis 1).
bool qdq_params(const Node& n, const std::vector<Tensor>& consts, const std::vector<int>& in, DType qtype,
                const Shape& shape, std::vector<float>* scale, std::vector<float>* zp) {
  if (in.size() < 2 || in[1] < 0 || consts[static_cast<std::size_t>(in[1])].empty()) return false;
  const Tensor& st = consts[static_cast<std::size_t>(in[1])];
  if (st.dtype() != DType::kFloat32 || st.rank() > 1) return false;
  const int64_t C = shape.size() > 1 ? shape[1] : 1;
  int64_t axis = n.attr_int("axis", 1);
  if (axis < 0) axis += static_cast<int64_t>(shape.size());
  if (st.numel() != 1 && !(axis == 1 && st.numel() == C)) return false;
  std::vector<double> zv(static_cast<std::size_t>(st.numel()), 0.0);
  if (in.size() > 2 && in[2] >= 0) {
    const Tensor& zt = consts[static_cast<std::size_t>(in[2])];
    if (zt.empty() || zt.dtype() != qtype || zt.numel() != st.numel()) return false;
    zv = to_double(zt);
  } else if (qtype != DType::kUInt8) {
    return false;
  }
  scale->resize(static_cast<std::size_t>(C));
  zp->resize(static_cast<std::size_t>(C));
  const float* sv = st.data<float>();
  for (int64_t c = 0; c < C; ++c) {
    const int64_t i = st.numel() == 1 ? 0 : c;
    (*scale)[static_cast<std::size_t>(c)] = sv[i];
    (*zp)[static_cast<std::size_t>(c)] = static_cast<float>(zv[static_cast<std::size_t>(i)]);
  }
  return true;
}

}  // namespace

// Fusion pass (float32 only). For each step in order, follows the chain of
// single-consumer successors that are per-element ops (Mul/Add by a
// per-channel constant, Relu, residual Add of a same-shape tensor,
// QuantizeLinear->DequantizeLinear round trips with equal parameters) and
// replaces it by one step: the Conv with that epilogue, or the head followed
// by one epilogue step. Tensors in `keep` (graph outputs and fetched taps) end
// a chain, so they are computed exactly as unfused. The fused step runs at the
// position of the chain's last op, where every input it reads exists. Every
// float32 Conv is rebuilt here so SessionOptions::force_portable applies.
void Session::Impl::fuse(Plan& plan, const std::set<int>& keep) const {
  const std::size_t nsteps = plan.steps.size();
  std::vector<std::vector<std::size_t>> consumers(plan.descs.size());
  for (std::size_t si = 0; si < nsteps; ++si)
    for (int id : plan.steps[si].in)
      if (id >= 0) consumers[static_cast<std::size_t>(id)].push_back(si);
  auto node_of = [&](std::size_t si) -> const Node& { return model.graph.nodes[plan.steps[si].node]; };
  auto desc = [&](int id) -> const ValueDesc& { return plan.descs[static_cast<std::size_t>(id)]; };
  auto single_consumer = [&](int id) -> long {
    if (keep.count(id)) return -1;
    const auto& c = consumers[static_cast<std::size_t>(id)];
    if (c.size() != 1) return -1;  // also rejects a node reading the value twice
    return static_cast<long>(c[0]);
  };

  std::vector<bool> claimed(nsteps, false);
  struct Replacement {
    std::size_t at;  // position (original step index) of the chain's last op
    Step step;
  };
  std::vector<Replacement> replacements;
  std::vector<bool> drop(nsteps, false);
  const PrepareContext ctx{model.path, options.exec_mode, model.opset};

  for (std::size_t hi = 0; hi < nsteps; ++hi) {
    if (claimed[hi]) continue;
    Step& head = plan.steps[hi];
    const Node& hn = node_of(hi);
    if (head.out.size() != 1 || desc(head.out[0]).dtype != DType::kFloat32) continue;
    const bool is_conv = hn.op_type == "Conv";
    const Shape shape = desc(head.out[0]).shape;
    fast::Epilogue ep;
    std::vector<int> extras;
    std::vector<std::size_t> members;
    int v = head.out[0];
    while (options.fuse && extras.size() < 8) {
      const long ci = single_consumer(v);
      if (ci < 0 || claimed[static_cast<std::size_t>(ci)]) break;
      const std::size_t si = static_cast<std::size_t>(ci);
      const Step& st = plan.steps[si];
      const Node& n = node_of(si);
      if (st.out.size() != 1 || st.in.empty() || st.in[0] < 0) break;
      fast::EpilogueOp op;
      std::vector<std::size_t> used{si};
      int next = st.out[0];
      if (n.op_type == "Relu") {
        op.kind = fast::EpilogueOp::Kind::kRelu;
      } else if ((n.op_type == "Mul" || n.op_type == "Add") && st.in.size() == 2) {
        const int other = st.in[0] == v ? st.in[1] : st.in[0];
        if (other < 0) break;
        const ValueDesc& od = desc(other);
        if (od.constant) {
          if (!per_channel(*od.constant, shape, &op.a)) break;
          op.kind = n.op_type == "Mul" ? fast::EpilogueOp::Kind::kMulConst : fast::EpilogueOp::Kind::kAddConst;
        } else if (n.op_type == "Add" && od.dtype == DType::kFloat32 && od.shape == shape && other != v) {
          op.kind = fast::EpilogueOp::Kind::kAddTensor;
          op.extra = static_cast<int>(extras.size());
        } else {
          break;
        }
      } else if (n.op_type == "QuantizeLinear" && st.in[0] == v) {
        const int q = st.out[0];
        const DType qt = desc(q).dtype;
        if (qt != DType::kInt8 && qt != DType::kUInt8) break;
        const long di = single_consumer(q);
        if (di < 0 || claimed[static_cast<std::size_t>(di)]) break;
        const std::size_t dsi = static_cast<std::size_t>(di);
        const Step& ds = plan.steps[dsi];
        const Node& dn = node_of(dsi);
        if (dn.op_type != "DequantizeLinear" || ds.out.size() != 1 || ds.in[0] != q) break;
        std::vector<float> qs, qz, ds_, dz;
        if (!qdq_params(n, plan.constants, st.in, qt, shape, &qs, &qz)) break;
        if (!qdq_params(dn, plan.constants, ds.in, qt, shape, &ds_, &dz)) break;
        if (qs != ds_ || qz != dz) break;
        op.kind = fast::EpilogueOp::Kind::kQdq;
        op.a = qs;
        op.z = qz;
        op.lo = qt == DType::kInt8 ? -128.f : 0.f;
        op.hi = qt == DType::kInt8 ? 127.f : 255.f;
        used.push_back(dsi);
        next = ds.out[0];
      } else {
        break;
      }
      if (desc(next).dtype != DType::kFloat32 || desc(next).shape != shape) break;
      if (op.kind == fast::EpilogueOp::Kind::kAddTensor) extras.push_back(st.in[0] == v ? st.in[1] : st.in[0]);
      ep.ops.push_back(std::move(op));
      members.insert(members.end(), used.begin(), used.end());
      v = next;
    }
    if (!is_conv && members.empty()) continue;
    ep.num_extra = static_cast<int>(extras.size());
    for (std::size_t m : members) {
      claimed[m] = true;
      drop[m] = true;
    }
    const std::size_t at = members.empty() ? hi : *std::max_element(members.begin(), members.end());
    Step fused;
    fused.node = head.node;
    if (is_conv) {
      std::vector<ValueDesc> in;
      for (int id : head.in) in.push_back(id < 0 ? ValueDesc{} : desc(id));
      Prepared p = kernels::prepare_conv_fused(hn, in, ctx, std::move(ep), options.force_portable);
      fused.kernel = std::move(p.kernel);
      fused.in = head.in;
      fused.in.resize(3, -1);
      drop[hi] = true;
    } else {
      fused.kernel = kernels::make_epilogue_kernel(std::move(ep), shape, options.force_portable);
      fused.in = {head.out[0]};
    }
    fused.in.insert(fused.in.end(), extras.begin(), extras.end());
    fused.out = {v};
    replacements.push_back({at, std::move(fused)});
  }
  std::vector<Step> steps;
  std::sort(replacements.begin(), replacements.end(), [](const Replacement& a, const Replacement& b) { return a.at < b.at; });
  std::size_t r = 0;
  for (std::size_t si = 0; si < nsteps; ++si) {
    if (!drop[si]) steps.push_back(std::move(plan.steps[si]));
    for (; r < replacements.size() && replacements[r].at == si; ++r) steps.push_back(std::move(replacements[r].step));
  }
  plan.steps = std::move(steps);
}


// exec_mode "ort-avx2": replaces the QDQ groups ONNX Runtime 1.30 fuses on an
// AVX2 machine without VNNI by integer kernels (engine/integer/ort_avx2.h),
// following ../shared/reference/ort_fused_int8_numerics.md:
//  - an int8 QuantizeLinear is rewritten to uint8 only when its value reaches
//    exactly one consumer (through its DequantizeLinear nodes);
//  - DQ->Conv->Q, DQ->MatMul->Q, DQ->AveragePool->Q (global) and
//    DQ,DQ->Add->Q fuse only when every activation involved is uint8, and
//    weights are int8 initializers (biases int32);
//  - everything else keeps reference float32 semantics.
// Fused tensors in `keep` (fetched taps) block the fusion, so taps see the
// reference values of the unfused graph.
void Session::Impl::rewrite_ort_avx2(Plan& plan, const std::set<int>& keep) const {
  const Graph& g = model.graph;
  const std::size_t nsteps = plan.steps.size();
  std::vector<std::vector<std::size_t>> consumers(plan.descs.size());
  std::vector<long> producer(plan.descs.size(), -1);
  for (std::size_t si = 0; si < nsteps; ++si) {
    for (int id : plan.steps[si].in)
      if (id >= 0) consumers[static_cast<std::size_t>(id)].push_back(si);
    for (int id : plan.steps[si].out) producer[static_cast<std::size_t>(id)] = static_cast<long>(si);
  }
  auto op_of = [&](long si) -> const std::string& { return g.nodes[plan.steps[static_cast<std::size_t>(si)].node].op_type; };
  auto node_of = [&](long si) -> const Node& { return g.nodes[plan.steps[static_cast<std::size_t>(si)].node]; };
  auto constant = [&](int id) -> const Tensor* {
    if (id < 0) return nullptr;
    const Tensor& t = plan.constants[static_cast<std::size_t>(id)];
    return t.empty() ? nullptr : &t;
  };
  // Scale and zero point (per tensor) of a Q or DQ step.
  auto qparams = [&](long si, float* scale, int32_t* zp) {
    const Step& st = plan.steps[static_cast<std::size_t>(si)];
    const Tensor* s = st.in.size() > 1 ? constant(st.in[1]) : nullptr;
    const Tensor* z = st.in.size() > 2 ? constant(st.in[2]) : nullptr;
    if (!s || s->numel() != 1 || s->dtype() != DType::kFloat32) return false;
    *scale = s->data<float>()[0];
    *zp = z ? static_cast<int32_t>(to_double(*z)[0]) : 0;
    if (z && z->numel() != 1) return false;
    return true;
  };
  // Total consumers of a Q's value behind its DequantizeLinear nodes.
  auto reach = [&](int q) {
    std::size_t n = 0;
    for (std::size_t c : consumers[static_cast<std::size_t>(q)]) {
      if (op_of(static_cast<long>(c)) != "DequantizeLinear") return std::size_t{99};
      n += consumers[static_cast<std::size_t>(plan.steps[c].out[0])].size();
      if (keep.count(plan.steps[c].out[0])) n += 1;
    }
    return n;
  };
  auto is_u8_q = [&](int q) {
    if (q < 0 || plan.descs[static_cast<std::size_t>(q)].dtype != DType::kInt8 || keep.count(q)) return false;
    const long p = producer[static_cast<std::size_t>(q)];
    return p >= 0 && op_of(p) == "QuantizeLinear" && reach(q) == 1;
  };
  // The int8 code tensor behind a float input produced by DQ(Q(...)); -1 if none.
  auto code_of = [&](int x) -> int {
    const long d = producer[static_cast<std::size_t>(x)];
    if (d < 0 || op_of(d) != "DequantizeLinear" || keep.count(x)) return -1;
    const int q = plan.steps[static_cast<std::size_t>(d)].in[0];
    return is_u8_q(q) ? q : -1;
  };
  // The output Q of a float value with a single consumer; -1 if none.
  auto out_q = [&](int v) -> long {
    if (keep.count(v) || consumers[static_cast<std::size_t>(v)].size() != 1) return -1;
    const long c = static_cast<long>(consumers[static_cast<std::size_t>(v)][0]);
    if (op_of(c) != "QuantizeLinear" || !is_u8_q(plan.steps[static_cast<std::size_t>(c)].out[0])) return -1;
    return c;
  };
  // An int8/int32 initializer behind a folded DequantizeLinear, with its scales.
  auto quantized_init = [&](const std::string& name, std::vector<float>* scales) -> const Tensor* {
    auto pn = g.producer(name);
    if (!pn || g.nodes[*pn].op_type != "DequantizeLinear") return nullptr;
    const Node& dq = g.nodes[*pn];
    auto it = g.initializers.find(dq.inputs[0]);
    auto st = g.initializers.find(dq.inputs.size() > 1 ? dq.inputs[1] : "");
    if (it == g.initializers.end() || st == g.initializers.end()) return nullptr;
    if (dq.inputs.size() > 2) {
      auto zt = g.initializers.find(dq.inputs[2]);
      if (zt == g.initializers.end()) return nullptr;
      for (double z : to_double(zt->second))
        if (z != 0) return nullptr;  // symmetric weights and biases only
    }
    for (double v : to_double(st->second)) scales->push_back(static_cast<float>(v));
    return &it->second;
  };

  struct Rewrite {
    std::size_t at;
    std::vector<std::size_t> drop;
    Step step;
  };
  std::vector<Rewrite> rewrites;
  for (std::size_t si = 0; si < nsteps; ++si) {
    const Step& st = plan.steps[si];
    const Node& n = node_of(static_cast<long>(si));
    if (st.out.size() != 1 || st.in.empty() || st.in[0] < 0) continue;
    const long qs = out_q(st.out[0]);
    if (qs < 0) continue;
    float sy = 0;
    int32_t zy = 0;
    if (!qparams(qs, &sy, &zy)) continue;
    const int yq = plan.steps[static_cast<std::size_t>(qs)].out[0];
    Step step;
    step.node = st.node;
    step.out = {yq};
    if (n.op_type == "Conv" || n.op_type == "MatMul") {
      const int xq = code_of(st.in[0]);
      if (xq < 0 || st.in.size() < 2) continue;
      float sx = 0;
      int32_t zx = 0;
      if (!qparams(producer[static_cast<std::size_t>(st.in[0])], &sx, &zx)) continue;
      std::vector<float> sw, sb;
      const Tensor* w = quantized_init(n.inputs[1], &sw);
      if (!w || w->dtype() != DType::kInt8) continue;
      const Tensor* b = nullptr;
      if (n.op_type == "Conv" && n.inputs.size() > 2 && !n.inputs[2].empty()) {
        b = quantized_init(n.inputs[2], &sb);
        if (!b || b->dtype() != DType::kInt32) continue;
      }
      integer::QLinearConvParams q;
      const Shape& xs = plan.descs[static_cast<std::size_t>(st.in[0])].shape;
      const Shape& ys = plan.descs[static_cast<std::size_t>(st.out[0])].shape;
      if (n.op_type == "Conv") {
        if (xs.size() != 4 || w->rank() != 4) continue;
        const kernels::Geometry2D geo = kernels::conv_geometry(n, xs, w->dim(2), w->dim(3));
        q.p = {xs[0], xs[1], xs[2], xs[3], w->dim(0), w->dim(2), w->dim(3), geo.sh, geo.sw, geo.dh, geo.dw,
               geo.pad_top, geo.pad_left, geo.out_h, geo.out_w};
      } else {
        if (w->rank() != 2 || xs.size() != 2) continue;
        q.p = {xs[0], w->dim(0), 1, 1, w->dim(1), 1, 1, 1, 1, 1, 1, 0, 0, 1, 1};
      }
      const int64_t M = q.p.m;
      if (sw.size() != 1 && static_cast<int64_t>(sw.size()) != M) continue;
      q.w.assign(w->data<int8_t>(), w->data<int8_t>() + w->numel());
      q.bias.assign(static_cast<std::size_t>(M), 0);
      if (b) q.bias.assign(b->data<int32_t>(), b->data<int32_t>() + M);
      q.zp_x = zx + 128;
      q.zp_y = zy + 128;
      for (int64_t m = 0; m < M; ++m) {
        const float a = sx * sw[sw.size() == 1 ? 0 : static_cast<std::size_t>(m)];
        q.multiplier.push_back(a / sy);
      }
      (void)ys;
      step.kernel = n.op_type == "Conv" ? integer::make_qlinear_conv(std::move(q)) : integer::make_qlinear_matmul(std::move(q));
      step.in = {xq};
    } else if ((n.op_type == "AveragePool" || n.op_type == "GlobalAveragePool")) {
      const int xq = code_of(st.in[0]);
      if (xq < 0) continue;
      const Shape& xs = plan.descs[static_cast<std::size_t>(st.in[0])].shape;
      if (xs.size() != 4) continue;
      if (n.op_type == "AveragePool") {
        const auto k = n.attr_ints("kernel_shape");
        const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
        const bool global = k.size() == 2 && k[0] == xs[2] && k[1] == xs[3] &&
                            std::all_of(pads.begin(), pads.end(), [](int64_t v) { return v == 0; }) &&
                            n.attr_string("auto_pad", "NOTSET") == "NOTSET";
        if (!global) continue;
      }
      float sx = 0;
      int32_t zx = 0;
      if (!qparams(producer[static_cast<std::size_t>(st.in[0])], &sx, &zx)) continue;
      step.kernel = integer::make_qlinear_global_avgpool(xs[2] * xs[3], zx + 128, zy + 128, sx, sy);
      step.in = {xq};
    } else if (n.op_type == "Add" && st.in.size() == 2) {
      const int aq = code_of(st.in[0]), bq = code_of(st.in[1]);
      if (aq < 0 || bq < 0) continue;
      if (plan.descs[static_cast<std::size_t>(st.in[0])].shape != plan.descs[static_cast<std::size_t>(st.in[1])].shape) continue;
      float sa = 0, sb = 0;
      int32_t za = 0, zb = 0;
      if (!qparams(producer[static_cast<std::size_t>(st.in[0])], &sa, &za) ||
          !qparams(producer[static_cast<std::size_t>(st.in[1])], &sb, &zb))
        continue;
      step.kernel = integer::make_qlinear_add(za + 128, sa, zb + 128, sb, zy + 128, sy);
      step.in = {aq, bq};
    } else if (n.op_type == "Softmax") {
      const int xq = code_of(st.in[0]);
      if (xq < 0) continue;
      const Shape& xs = plan.descs[static_cast<std::size_t>(st.in[0])].shape;
      int64_t axis = n.attr_int("axis", model.opset >= 13 ? -1 : 1);
      if (axis < 0) axis += static_cast<int64_t>(xs.size());
      if (model.opset < 13 || axis != static_cast<int64_t>(xs.size()) - 1) continue;
      float sx = 0;
      int32_t zx = 0;
      if (!qparams(producer[static_cast<std::size_t>(st.in[0])], &sx, &zx)) continue;
      step.kernel = integer::make_qlinear_softmax(xs.back(), sx, sy, zy + 128);
      step.in = {xq};
    } else {
      continue;
    }
    rewrites.push_back({static_cast<std::size_t>(qs), {si, static_cast<std::size_t>(qs)}, std::move(step)});
  }
  std::vector<bool> drop(nsteps, false);
  for (const auto& r : rewrites)
    for (std::size_t d : r.drop) drop[d] = true;
  std::vector<Step> steps;
  std::size_t r = 0;
  std::sort(rewrites.begin(), rewrites.end(), [](const Rewrite& a, const Rewrite& b) { return a.at < b.at; });
  for (std::size_t si = 0; si < nsteps; ++si) {
    if (!drop[si]) steps.push_back(std::move(plan.steps[si]));
    for (; r < rewrites.size() && rewrites[r].at == si; ++r) steps.push_back(std::move(rewrites[r].step));
  }
  // DequantizeLinear steps whose outputs nobody reads any more are dropped.
  std::vector<std::size_t> uses(plan.descs.size(), 0);
  for (const Step& s : steps)
    for (int id : s.in)
      if (id >= 0) ++uses[static_cast<std::size_t>(id)];
  std::vector<Step> live;
  for (auto& s : steps) {
    const bool dead = g.nodes[s.node].op_type == "DequantizeLinear" && s.out.size() == 1 &&
                      uses[static_cast<std::size_t>(s.out[0])] == 0 && !keep.count(s.out[0]);
    if (!dead) live.push_back(std::move(s));
  }
  plan.steps = std::move(live);
}

// exec_mode "exact": the QDQ groups engine/integer/exact.h runs on int8/uint8
// codes (plan_exact_rewrites decides which) replace their DQ -> op -> Q steps;
// DequantizeLinear steps nobody reads any more are dropped.
void Session::Impl::rewrite_exact(Plan& plan, const std::set<int>& keep) const {
  integer::ExactPlanView view;
  view.model = &model;
  view.descs = &plan.descs;
  view.constants = &plan.constants;
  view.keep = &keep;
  view.names = names;
  view.isa = integer::exact_best_isa(options.force_portable);
  view.fuse = options.fuse;
  for (const Step& s : plan.steps) view.steps.push_back({s.node, s.in, s.out});
  std::vector<integer::ExactRewrite> rewrites = integer::plan_exact_rewrites(view);
  const std::size_t nsteps = plan.steps.size();
  std::vector<bool> drop(nsteps, false);
  for (const auto& r : rewrites)
    for (std::size_t d : r.drop) drop[d] = true;
  std::sort(rewrites.begin(), rewrites.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
  std::vector<Step> steps;
  for (std::size_t si = 0, r = 0; si < nsteps; ++si) {
    if (!drop[si]) steps.push_back(std::move(plan.steps[si]));
    for (; r < rewrites.size() && rewrites[r].at == si; ++r) {
      Step step;
      step.node = rewrites[r].node;
      step.view = rewrites[r].kernel->is_view();
      step.kernel = std::move(rewrites[r].kernel);
      step.in = std::move(rewrites[r].in);
      step.out = std::move(rewrites[r].out);
      steps.push_back(std::move(step));
    }
  }
  std::vector<std::size_t> uses(plan.descs.size(), 0);
  for (const Step& s : steps)
    for (int id : s.in)
      if (id >= 0) ++uses[static_cast<std::size_t>(id)];
  plan.steps.clear();
  for (auto& s : steps) {
    const bool dead = model.graph.nodes[s.node].op_type == "DequantizeLinear" && s.out.size() == 1 &&
                      uses[static_cast<std::size_t>(s.out[0])] == 0 && !keep.count(s.out[0]);
    if (!dead) plan.steps.push_back(std::move(s));
  }
}

// Liveness and buffer slots: every value computed by a step gets a slot that
// is reused once the value (and every view of it) is dead; values that are
// kept (returned to the caller) get fresh storage each run instead.
void Session::Impl::plan_buffers(Plan& plan, const std::set<int>& keep) const {
  const std::size_t nv = plan.descs.size();
  std::vector<int> last_use(nv, -1);
  for (std::size_t si = 0; si < plan.steps.size(); ++si)
    for (int id : plan.steps[si].in)
      if (id >= 0) last_use[static_cast<std::size_t>(id)] = static_cast<int>(si);
  plan.slot.assign(nv, -1);
  std::vector<int> refs;           // live values per slot
  std::vector<int> free_slots;
  std::vector<int> root(nv, -1);   // the value whose storage a view aliases
  auto bytes_of = [&](int id) {
    const ValueDesc& d = plan.descs[static_cast<std::size_t>(id)];
    return static_cast<std::size_t>(shape_numel(d.shape)) * dtype_size(d.dtype);
  };
  auto release = [&](int id) {
    const int s = plan.slot[static_cast<std::size_t>(id)];
    if (s >= 0 && --refs[static_cast<std::size_t>(s)] == 0) free_slots.push_back(s);
  };
  for (std::size_t si = 0; si < plan.steps.size(); ++si) {
    Step& step = plan.steps[si];
    step.release.clear();
    for (int id : step.out) {
      const auto u = static_cast<std::size_t>(id);
      if (step.view) {
        const int src = step.in[0];
        plan.slot[u] = plan.slot[static_cast<std::size_t>(src)];
        if (plan.slot[u] >= 0) ++refs[static_cast<std::size_t>(plan.slot[u])];
        continue;
      }
      if (keep.count(id)) continue;
      const std::size_t need = bytes_of(id);
      int best = -1;
      for (std::size_t k = 0; k < free_slots.size(); ++k) {
        const int s = free_slots[k];
        if (best < 0) { best = static_cast<int>(k); continue; }
        const std::size_t cb = plan.slot_bytes[static_cast<std::size_t>(free_slots[static_cast<std::size_t>(best)])];
        const std::size_t cs = plan.slot_bytes[static_cast<std::size_t>(s)];
        // Prefer the smallest slot that fits, else the largest (it grows least).
        const bool fits_s = cs >= need, fits_b = cb >= need;
        if ((fits_s && (!fits_b || cs < cb)) || (!fits_s && !fits_b && cs > cb)) best = static_cast<int>(k);
      }
      int s;
      if (best >= 0) {
        s = free_slots[static_cast<std::size_t>(best)];
        free_slots.erase(free_slots.begin() + best);
        plan.slot_bytes[static_cast<std::size_t>(s)] = std::max(plan.slot_bytes[static_cast<std::size_t>(s)], need);
      } else {
        s = static_cast<int>(plan.slot_bytes.size());
        plan.slot_bytes.push_back(need);
        refs.push_back(0);
      }
      plan.slot[u] = s;
      refs[static_cast<std::size_t>(s)] = 1;
    }
    // Values whose last reader is this step, and outputs nobody reads.
    for (int id : step.in)
      if (id >= 0 && last_use[static_cast<std::size_t>(id)] == static_cast<int>(si) && !keep.count(id) &&
          !plan.descs[static_cast<std::size_t>(id)].constant &&
          std::find(step.release.begin(), step.release.end(), id) == step.release.end())
        step.release.push_back(id);
    for (int id : step.out)
      if (last_use[static_cast<std::size_t>(id)] < 0 && !keep.count(id)) step.release.push_back(id);
    for (int id : step.release) release(id);
  }
  (void)root;
}

Session::Session(Model model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  auto& im = *impl_;
  im.model = std::move(model);
  im.options = options;
  if (options.exec_mode != "reference" && options.exec_mode != "ort-avx2" && options.exec_mode != "exact")
    fail(ErrorKind::kUsage, "{}: unknown exec_mode '{}' (supported: reference, ort-avx2, exact)", im.model.path,
         options.exec_mode);
  if (options.conv_order != "qpipe" && options.conv_order != "ort")
    fail(ErrorKind::kUsage, "{}: unknown conv_order '{}' (supported: qpipe, ort)", im.model.path, options.conv_order);
  if (options.ort_intra_op_threads < 1)
    fail(ErrorKind::kUsage, "{}: ort_intra_op_threads must be at least 1, got {}", im.model.path,
         options.ort_intra_op_threads);
  const Graph& g = im.model.graph;
  im.order = g.topological_order();
  for (const auto& [name, _] : g.initializers) im.id_of(name);
  for (const auto& name : g.inputs) im.input_ids.push_back(im.id_of(name));
  for (const auto& n : g.nodes) {
    for (const auto& i : n.inputs)
      if (!i.empty()) im.id_of(i);
    for (const auto& o : n.outputs)
      if (!o.empty()) im.id_of(o);
  }
  for (const auto& name : g.outputs) {
    if (!im.ids.count(name))
      fail(ErrorKind::kInput, "{}: graph output '{}' is not produced by any node", im.model.path, name);
    im.output_ids.push_back(im.ids.at(name));
  }
  im.initializers.resize(im.names.size());
  for (const auto& [name, t] : g.initializers)
    im.initializers[static_cast<std::size_t>(im.ids.at(name))] = options.float64 ? widen(t) : t;
  // Validate with a batch of one now, so unsupported models fail before any data is read.
  std::vector<Shape> shapes;
  for (const auto& name : g.inputs) {
    auto it = g.value_info.find(name);
    if (it == g.value_info.end() || !it->second.has_shape)
      fail(ErrorKind::kUnsupported, "{}: graph input '{}' has no declared shape", im.model.path, name);
    Shape s = it->second.shape;
    for (auto& d : s)
      if (d < 0) d = 1;
    shapes.push_back(s);
  }
  im.plan_for(shapes, im.output_ids);
}

Session::~Session() = default;

const Model& Session::model() const { return impl_->model; }

const std::string& Session::input_name() const { return impl_->model.graph.inputs.at(0); }

std::vector<std::string> Session::computed_tensors() const {
  std::shared_ptr<const Plan> plan;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    plan = impl_->plans.begin()->second;
  }
  std::vector<std::string> out;
  for (int id : plan->computed) out.push_back(impl_->names[static_cast<std::size_t>(id)]);
  return out;
}

std::vector<Tensor> Session::run(const Tensor& input) const {
  return run({{input_name(), input}}, impl_->model.graph.outputs);
}

std::vector<Tensor> Session::run(const std::map<std::string, Tensor>& feeds, const std::vector<std::string>& fetch) const {
  const auto& im = *impl_;
  const Graph& g = im.model.graph;
  std::vector<Shape> shapes;
  std::vector<Tensor> inputs;
  for (const auto& name : g.inputs) {
    auto it = feeds.find(name);
    if (it == feeds.end()) fail(ErrorKind::kInput, "{}: no value fed for graph input '{}'", im.model.path, name);
    const auto& vi = g.value_info.at(name);
    const Tensor& t = it->second;
    if (t.dtype() != vi.dtype)
      fail(ErrorKind::kInput, "{}: input '{}' expects {}, got {}", im.model.path, name, dtype_name(vi.dtype), dtype_name(t.dtype()));
    bool ok = t.rank() == vi.shape.size();
    for (std::size_t i = 0; ok && i < vi.shape.size(); ++i) ok = vi.shape[i] < 0 || vi.shape[i] == t.shape()[i];
    if (!ok)
      fail(ErrorKind::kInput, "{}: input '{}' expects shape {}, got {}", im.model.path, name, shape_str(vi.shape),
           shape_str(t.shape()));
    shapes.push_back(t.shape());
    inputs.push_back(im.options.float64 ? widen(t) : t);
  }
  for (const auto& [name, _] : feeds)
    if (std::find(g.inputs.begin(), g.inputs.end(), name) == g.inputs.end())
      fail(ErrorKind::kInput, "{}: '{}' is not a graph input", im.model.path, name);
  std::vector<int> fetch_ids;
  for (const auto& name : fetch) {
    auto it = im.ids.find(name);
    if (it == im.ids.end()) fail(ErrorKind::kInput, "{}: no tensor named '{}' in the graph", im.model.path, name);
    fetch_ids.push_back(it->second);
  }
  auto plan = im.plan_for(shapes, fetch_ids);
  std::unique_ptr<Workspace> ws = plan->acquire();
  std::vector<Tensor> values = plan->constants;
  for (std::size_t i = 0; i < im.input_ids.size(); ++i) values[static_cast<std::size_t>(im.input_ids[i])] = inputs[i];
  std::vector<const Tensor*> ip;
  std::vector<Tensor*> op;
  for (const Step& step : plan->steps) {
    ip.clear();
    op.clear();
    for (int id : step.in) ip.push_back(id < 0 ? nullptr : &values[static_cast<std::size_t>(id)]);
    if (step.view) {
      const auto& d = plan->descs[static_cast<std::size_t>(step.out[0])];
      values[static_cast<std::size_t>(step.out[0])] = ip[0]->reshaped(d.shape);
    } else {
      for (int id : step.out) {
        const auto u = static_cast<std::size_t>(id);
        const auto& d = plan->descs[u];
        const int s = plan->slot[u];
        if (s >= 0) {
          Tensor& buf = ws->slots[static_cast<std::size_t>(s)];
          buf.resize(d.dtype, d.shape);  // keeps the storage: no allocation, no zero fill
          values[u] = buf;
        } else {
          values[u] = Tensor(d.dtype, d.shape);
        }
        op.push_back(&values[u]);
      }
      step.kernel->eval(ip, op);
    }
    for (int id : step.release) values[static_cast<std::size_t>(id)] = Tensor();
  }
  std::vector<Tensor> out;
  for (int id : fetch_ids) {
    if (values[static_cast<std::size_t>(id)].empty())
      fail(ErrorKind::kInput, "{}: tensor '{}' was not computed", im.model.path, im.names[static_cast<std::size_t>(id)]);
    out.push_back(values[static_cast<std::size_t>(id)]);
  }
  values.clear();
  plan->release(std::move(ws));
  return out;
}

}  // namespace qpipe
