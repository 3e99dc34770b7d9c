#include "quant/analysis/sqnr.h"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "engine/error.h"
#include "engine/session.h"
#include "pipeline/charts/svg.h"

namespace qpipe::analysis {
namespace {

std::span<const float> fspan(const Tensor& t) { return t.span<float>(); }

std::string op_label(const Graph& g, std::size_t ni) {
  const Node& n = g.nodes[ni];
  return fmt::format("{} {}", n.op_type, n.name.empty() ? n.outputs.at(0) : n.name);
}

}  // namespace

const TensorSqnr* SqnrResult::find(const std::string& name) const {
  for (const auto& t : activations)
    if (t.name == name) return &t;
  for (const auto& t : constants)
    if (t.name == name) return &t;
  return nullptr;
}

SqnrResult analyze_sqnr(const Model& fp32, const QdqGraph& qdq, const AnalysisData& data, const SqnrOptions& options) {
  if (options.batch < 1) fail(ErrorKind::kUsage, "sqnr: batch must be >= 1, got {}", options.batch);
  SqnrResult r;
  r.fp32_path = fp32.path;
  r.qdq_path = qdq.model().path;
  r.batch = options.batch;
  Session fs(fp32);
  Session qs(qdq.model());
  const auto shapes = tensor_shapes(fs);
  const Graph& qg = qdq.model().graph;

  // Constants: one comparison, no images needed.
  for (const auto& c : qdq.constants()) {
    TensorSqnr t;
    t.kind = "constant";
    t.qdq_tensor = c.dq_tensor;
    t.name = c.fp32_name.empty() ? c.dq_tensor : c.fp32_name;
    t.params = c.params.at(0);
    t.per_channel = c.params.size() > 1;
    if (!c.consumers.empty()) t.op = op_label(qg, c.consumers[0]);
    auto it = fp32.graph.initializers.find(c.fp32_name);
    if (it == fp32.graph.initializers.end() || it->second.dtype() != DType::kFloat32 ||
        it->second.shape() != c.shape) {
      t.local_note = fmt::format("no float32 initializer '{}' of shape {} in the FP32 model", c.fp32_name,
                                 shape_str(c.shape));
      r.constants.push_back(std::move(t));
      continue;
    }
    const Tensor& w = it->second;
    const Tensor& codes = qg.initializers.at(c.quantized_init);
    Tensor wq = c.axis < 0 ? dequantize_tensor(codes, c.params[0]) : dequantize_tensor(codes, c.params, c.axis);
    t.accumulated.add(fspan(w), fspan(wq));
    for_each_channel_run(fspan(w), w.shape(), c.axis, [&](std::span<const float> s, int64_t ch) {
      t.accumulated.add_clipping(s, c.params[static_cast<std::size_t>(ch)]);
    });
    t.local = t.accumulated;
    t.has_local = true;
    r.constants.push_back(std::move(t));
  }

  // Activations.
  std::vector<int> acts;  // indices into qdq.activations() that are compared
  for (int i = 0; i < static_cast<int>(qdq.activations().size()); ++i) {
    const auto& a = qdq.activations()[static_cast<std::size_t>(i)];
    TensorSqnr t;
    t.kind = "activation";
    t.name = a.tensor;
    t.qdq_tensor = a.dq_tensors.at(0);
    t.params = a.params;
    t.model_output = a.feeds_graph_output;
    t.op = a.producer ? op_label(qg, *a.producer) : "graph input";
    if (!shapes.count(a.tensor)) {
      t.local_note = fmt::format("the FP32 model has no tensor '{}'", a.tensor);
      r.activations.push_back(std::move(t));
      continue;
    }
    acts.push_back(static_cast<int>(r.activations.size()));
    r.activations.push_back(std::move(t));
  }
  std::optional<LocalModel> lm;
  std::optional<Session> ls;
  if (options.local) {
    lm = build_local_model(qdq, shapes);
    ls.emplace(lm->model);
    for (auto& t : r.activations) {
      if (lm->output.count(t.name)) t.has_local = true;
      else if (auto it = lm->skipped.find(t.name); it != lm->skipped.end() && t.local_note.empty())
        t.local_note = it->second;
    }
  }

  r.fp32_output = fp32.graph.outputs.at(0);
  r.qdq_output = qg.outputs.at(0);
  std::vector<std::string> ffetch, qfetch, lfetch;
  std::set<std::string> fset;
  auto add_f = [&](const std::string& n) {
    if (fset.insert(n).second) ffetch.push_back(n);
  };
  add_f(r.fp32_output);
  for (int i : acts) add_f(r.activations[static_cast<std::size_t>(i)].name);
  if (lm)
    for (const auto& f : lm->feeds) add_f(f);
  auto fidx = [&](const std::string& n) {
    return static_cast<std::size_t>(std::find(ffetch.begin(), ffetch.end(), n) - ffetch.begin());
  };
  qfetch.push_back(r.qdq_output);
  for (int i : acts) qfetch.push_back(r.activations[static_cast<std::size_t>(i)].qdq_tensor);
  std::vector<int> local_acts;
  if (lm)
    for (int i : acts)
      if (r.activations[static_cast<std::size_t>(i)].has_local) {
        local_acts.push_back(i);
        lfetch.push_back(lm->output.at(r.activations[static_cast<std::size_t>(i)].name));
      }

  for (int64_t first = 0; first < data.size; first += options.batch) {
    const int64_t count = std::min(options.batch, data.size - first);
    Cifar10Batch b = data.read(first, count);
    const std::string& fin = fs.input_name();
    std::vector<Tensor> fv = fs.run({{fin, b.images}}, ffetch);
    std::vector<Tensor> qv = qs.run({{qs.input_name(), b.images}}, qfetch);
    std::vector<Tensor> lv;
    if (ls && !lfetch.empty()) {
      std::map<std::string, Tensor> feeds;
      for (const auto& f : lm->feeds) feeds["fp32::" + f] = fv[fidx(f)];
      lv = ls->run(feeds, lfetch);
    }
    // Per-batch partials, one per compared tensor, each accumulated sequentially.
    const std::size_t na = acts.size(), nl = local_acts.size();
    std::vector<ErrorStats> acc(na), loc(nl);
    ErrorStats out;
    tbb::parallel_for(std::size_t(0), na + nl + 1, [&](std::size_t k) {
      if (k == na + nl) {
        out.add(fspan(fv[0]), fspan(qv[0]));
      } else if (k < na) {
        const auto& t = r.activations[static_cast<std::size_t>(acts[k])];
        const Tensor& x = fv[fidx(t.name)];
        acc[k].add(fspan(x), fspan(qv[k + 1]));
        acc[k].add_clipping(fspan(x), t.params);
      } else {
        const std::size_t j = k - na;
        const auto& t = r.activations[static_cast<std::size_t>(local_acts[j])];
        loc[j].add(fspan(fv[fidx(t.name)]), fspan(lv[j]));
      }
    });
    for (std::size_t k = 0; k < na; ++k) r.activations[static_cast<std::size_t>(acts[k])].accumulated.merge(acc[k]);
    for (std::size_t j = 0; j < nl; ++j) r.activations[static_cast<std::size_t>(local_acts[j])].local.merge(loc[j]);
    r.output.merge(out);
    r.images += count;
  }
  // Clipping of the local variant is the same property of the FP32 values.
  for (auto& t : r.activations) {
    t.local.clipped_low = t.accumulated.clipped_low;
    t.local.clipped_high = t.accumulated.clipped_high;
  }
  return r;
}

nlohmann::json sqnr_to_json(const SqnrResult& r) {
  nlohmann::json j;
  j["schema"] = "sqnr";
  j["schema_version"] = 1;
  j["fp32_model"] = r.fp32_path;
  j["qdq_model"] = r.qdq_path;
  j["images"] = r.images;
  j["batch"] = r.batch;
  j["definition"] = {
      {"sqnr_db", "10*log10(sum x^2 / sum (x - xhat)^2), x = FP32 model tensor, xhat = dequantized QDQ tensor; null when "
                  "exact (infinite)"},
      {"accumulated", "xhat from the whole QDQ model up to this tensor"},
      {"local", "xhat = DQ(Q(op(DQ(Q(FP32 inputs)), quantized constants))): the producing op alone"},
      {"clipped_fraction", "fraction of FP32 values whose unsaturated code lies outside [qmin, qmax]"}};
  auto entry = [](const TensorSqnr& t) {
    nlohmann::json e;
    e["name"] = t.name;
    e["kind"] = t.kind;
    e["qdq_tensor"] = t.qdq_tensor;
    e["op"] = t.op;
    e["scale"] = t.params.scale;
    e["zero_point"] = t.params.zero_point;
    e["qtype"] = qtype_name(t.params.type);
    e["per_channel"] = t.per_channel;
    e["model_output"] = t.model_output;
    e["accumulated"] = t.accumulated.count ? t.accumulated.to_json(true) : nlohmann::json(nullptr);
    e["local"] = t.has_local && t.local.count ? t.local.to_json(false) : nlohmann::json(nullptr);
    if (!t.local_note.empty()) e["note"] = t.local_note;
    return e;
  };
  j["activations"] = nlohmann::json::array();
  for (const auto& t : r.activations) j["activations"].push_back(entry(t));
  j["constants"] = nlohmann::json::array();
  for (const auto& t : r.constants) j["constants"].push_back(entry(t));
  j["model_output"] = {{"fp32_tensor", r.fp32_output}, {"qdq_tensor", r.qdq_output}, {"stats", r.output.to_json(false)}};
  return j;
}

std::string sqnr_markdown(const SqnrResult& r) {
  std::string o = fmt::format("SQNR over {} images (FP32 `{}` vs QDQ `{}`). Model output `{}`: {} dB, cosine {:.6f}.\n\n",
                              r.images, r.fp32_path, r.qdq_path, r.qdq_output, fmt_db(r.output.sqnr_db()),
                              r.output.cosine());
  o += "| tensor | op | scale | zp | accumulated dB | local dB | cosine | max abs err | clipped % |\n";
  o += "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& t : r.activations) {
    o += fmt::format("| {}{} | {} | {:.6g} | {} | {} | {} | {:.6f} | {:.4g} | {:.3f} |\n", t.name,
                     t.model_output ? " (output)" : "", t.op, t.params.scale, t.params.zero_point,
                     fmt_db(t.accumulated.sqnr_db()), t.has_local ? fmt_db(t.local.sqnr_db()) : "-",
                     t.accumulated.cosine(), t.accumulated.max_abs, 100.0 * t.accumulated.clipped_fraction());
  }
  o += "\n| constant | read by | scale | zp | SQNR dB | cosine | max abs err | clipped % |\n";
  o += "|---|---|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& t : r.constants)
    o += fmt::format("| {} | {} | {:.6g}{} | {} | {} | {:.6f} | {:.4g} | {:.3f} |\n", t.name, t.op, t.params.scale,
                     t.per_channel ? " (per ch.)" : "", t.params.zero_point, fmt_db(t.accumulated.sqnr_db()),
                     t.accumulated.cosine(), t.accumulated.max_abs, 100.0 * t.accumulated.clipped_fraction());
  return o;
}

std::string sqnr_chart_svg(const SqnrResult& r) {
  charts::BarChart c;
  c.title = "SQNR per quantized tensor";
  c.subtitle = fmt::format("{} images; accumulated = whole quantized model up to the tensor, local = that op alone",
                           r.images);
  c.value_label = "SQNR (dB), higher is better";
  charts::Series acc{"accumulated", {}, "#4e79a7"}, loc{"local", {}, "#f28e2b"};
  for (const auto& t : r.activations) {
    if (!t.accumulated.count) continue;
    c.categories.push_back(t.name);
    acc.values.push_back(t.accumulated.sqnr_db());
    loc.values.push_back(t.has_local ? t.local.sqnr_db() : std::nan(""));
  }
  c.series = {acc, loc};
  return charts::bar_chart_svg(c);
}

}  // namespace qpipe::analysis
