#include "engine/session.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <unordered_map>

#include "engine/error.h"
#include "engine/kernel.h"
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

struct Plan {
  std::vector<ValueDesc> descs;  // per value id
  std::vector<Tensor> constants; // per value id: initializers and folded values
  std::vector<Step> steps;
  std::vector<int> computed;     // value ids computed by steps or folding, in order
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
  mutable std::map<std::vector<Shape>, std::shared_ptr<const Plan>> plans;

  int id_of(const std::string& name) {
    auto [it, inserted] = ids.emplace(name, static_cast<int>(names.size()));
    if (inserted) names.push_back(name);
    return it->second;
  }

  std::shared_ptr<const Plan> build_plan(const std::vector<Shape>& input_shapes) const;
  std::shared_ptr<const Plan> plan_for(const std::vector<Shape>& input_shapes) const {
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(input_shapes);
    if (it != plans.end()) return it->second;
    auto p = build_plan(input_shapes);
    plans.emplace(input_shapes, p);
    return p;
  }
};

std::shared_ptr<const Plan> Session::Impl::build_plan(const std::vector<Shape>& input_shapes) const {
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
  const auto& registry = OpRegistry::instance();
  std::vector<std::string> problems;
  std::vector<int> last_use(nv, -1);
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
      prepared = fn(node, in, ctx);
    } catch (const PtqError& e) {
      if (e.kind() != ErrorKind::kUnsupported && e.kind() != ErrorKind::kInput) throw;
      problems.push_back(fmt::format("{}: {}", node.where(ni), e.what()));
      continue;
    }
    if (prepared.outputs.size() != node.outputs.size()) {
      problems.push_back(fmt::format("{}: produces {} outputs, qpipe supports {}", node.where(ni), node.outputs.size(),
                                     prepared.outputs.size()));
      continue;
    }
    std::vector<int> out_ids;
    for (std::size_t k = 0; k < node.outputs.size(); ++k) {
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
    for (int id : in_ids)
      if (id >= 0) last_use[static_cast<std::size_t>(id)] = static_cast<int>(plan->steps.size());
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
  for (std::size_t v = 0; v < nv; ++v) {
    const int s = last_use[v];
    if (s >= 0 && !keep.count(static_cast<int>(v)) && !plan->descs[v].constant)
      plan->steps[static_cast<std::size_t>(s)].release.push_back(static_cast<int>(v));
  }
  return plan;
}

Session::Session(Model model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  auto& im = *impl_;
  im.model = std::move(model);
  im.options = options;
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
  im.plan_for(shapes);
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
  auto plan = im.plan_for(shapes);
  std::vector<Tensor> values = plan->constants;
  for (std::size_t i = 0; i < im.input_ids.size(); ++i) values[static_cast<std::size_t>(im.input_ids[i])] = inputs[i];
  std::set<int> keep(fetch_ids.begin(), fetch_ids.end());
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
        const auto& d = plan->descs[static_cast<std::size_t>(id)];
        values[static_cast<std::size_t>(id)] = Tensor(d.dtype, d.shape);
        op.push_back(&values[static_cast<std::size_t>(id)]);
      }
      step.kernel->eval(ip, op);
    }
    for (int id : step.release)
      if (!keep.count(id)) values[static_cast<std::size_t>(id)] = Tensor();
  }
  std::vector<Tensor> out;
  for (int id : fetch_ids) {
    if (values[static_cast<std::size_t>(id)].empty())
      fail(ErrorKind::kInput, "{}: tensor '{}' was not computed", im.model.path, im.names[static_cast<std::size_t>(id)]);
    out.push_back(values[static_cast<std::size_t>(id)]);
  }
  return out;
}

}  // namespace qpipe
