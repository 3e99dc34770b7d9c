#include "quant/analysis/residual.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "pipeline/charts/svg.h"

namespace qpipe::analysis {

ResidualResult analyze_residual(const QdqGraph& g, const SqnrResult* sqnr, const ResidualOptions& options) {
  if (!(options.ratio_threshold >= 1.0))
    fail(ErrorKind::kSpec, "residual: ratio_threshold must be >= 1, got {}", options.ratio_threshold);
  ResidualResult r;
  r.threshold = options.ratio_threshold;
  const Graph& gr = g.model().graph;
  for (const Layer& l : g.layers()) {
    if (l.op_type != "Add" || l.act_inputs.size() != 2 || l.act_inputs[0] < 0 || l.act_inputs[1] < 0) continue;
    const Node& n = gr.nodes[l.node];
    const auto& qa = g.activations()[static_cast<std::size_t>(l.act_inputs[0])];
    const auto& qb = g.activations()[static_cast<std::size_t>(l.act_inputs[1])];
    ResidualAdd a;
    a.node = l.name;
    a.output = n.outputs.at(0);
    a.input_a = qa.tensor;
    a.input_b = qb.tensor;
    a.a = qa.params;
    a.b = qb.params;
    const int oi = g.activation_index(a.output);
    if (oi >= 0) {
      a.has_output_quant = true;
      a.out = g.activations()[static_cast<std::size_t>(oi)].params;
    }
    const double sa = a.a.scale, sb = a.b.scale;
    a.ratio = std::max(sa, sb) / std::min(sa, sb);
    a.flagged = a.ratio > options.ratio_threshold;
    a.common_scale = 2.0 * std::max(sa, sb);
    a.mult_a = quantize_multiplier(sa / a.common_scale);
    a.mult_b = quantize_multiplier(sb / a.common_scale);
    if (a.has_output_quant) a.mult_out = quantize_multiplier(a.common_scale / (double(1 << 20) * a.out.scale));
    if (sqnr) {
      if (const auto* t = sqnr->find(a.input_a)) a.sqnr_a_db = t->accumulated.sqnr_db();
      if (const auto* t = sqnr->find(a.input_b)) a.sqnr_b_db = t->accumulated.sqnr_db();
      if (const auto* t = sqnr->find(a.output)) {
        a.sqnr_out_db = t->accumulated.sqnr_db();
        if (t->has_local) a.local_sqnr_db = t->local.sqnr_db();
      }
      a.sqnr_lost_db = std::min(a.sqnr_a_db, a.sqnr_b_db) - a.sqnr_out_db;
    }
    r.flagged += a.flagged ? 1 : 0;
    r.min_ratio = std::isnan(r.min_ratio) ? a.ratio : std::min(r.min_ratio, a.ratio);
    r.max_ratio = std::isnan(r.max_ratio) ? a.ratio : std::max(r.max_ratio, a.ratio);
    r.adds.push_back(std::move(a));
  }
  return r;
}

nlohmann::json residual_to_json(const ResidualResult& r) {
  nlohmann::json j;
  j["schema"] = "residual";
  j["schema_version"] = 1;
  j["ratio_threshold"] = r.threshold;
  j["min_ratio"] = json_number(r.min_ratio);
  j["max_ratio"] = json_number(r.max_ratio);
  j["flagged"] = r.flagged;
  j["adds"] = nlohmann::json::array();
  auto qp = [](const QuantParams& p) { return nlohmann::json{{"scale", p.scale}, {"zero_point", p.zero_point}}; };
  auto qm = [](const QuantizedMultiplier& m) {
    return nlohmann::json{{"multiplier", m.multiplier}, {"shift", m.shift}, {"value", quantized_multiplier_value(m)}};
  };
  for (const auto& a : r.adds) {
    nlohmann::json e;
    e["node"] = a.node;
    e["output"] = a.output;
    e["input_a"] = {{"tensor", a.input_a}, {"scale", a.a.scale}, {"zero_point", a.a.zero_point}};
    e["input_b"] = {{"tensor", a.input_b}, {"scale", a.b.scale}, {"zero_point", a.b.zero_point}};
    e["output_quant"] = a.has_output_quant ? qp(a.out) : nlohmann::json(nullptr);
    e["ratio"] = a.ratio;
    e["flagged"] = a.flagged;
    e["integer_add"] = {{"common_scale", a.common_scale},
                        {"left_shift", 20},
                        {"input_a", qm(a.mult_a)},
                        {"input_b", qm(a.mult_b)},
                        {"output", a.has_output_quant ? qm(a.mult_out) : nlohmann::json(nullptr)}};
    e["sqnr"] = {{"input_a_accumulated_db", json_number(a.sqnr_a_db)},
                 {"input_b_accumulated_db", json_number(a.sqnr_b_db)},
                 {"output_accumulated_db", json_number(a.sqnr_out_db)},
                 {"local_db", json_number(a.local_sqnr_db)},
                 {"lost_db", json_number(a.sqnr_lost_db)}};
    j["adds"].push_back(e);
  }
  return j;
}

std::string residual_markdown(const ResidualResult& r) {
  std::string o;
  if (r.adds.empty()) return "No Add node joins two quantized activations.\n";
  o += fmt::format("{} residual Add(s); input scale ratios {:.2f}x to {:.2f}x; {} above the {:.2f}x threshold.\n\n",
                   r.adds.size(), r.min_ratio, r.max_ratio, r.flagged, r.threshold);
  o += "| Add | input a (scale, zp) | input b (scale, zp) | ratio | output (scale, zp) | SQNR in a / in b / out dB | "
       "local dB | lost dB |\n|---|---|---|---:|---|---|---:|---:|\n";
  for (const auto& a : r.adds)
    o += fmt::format("| {} → {} | {} ({:.6g}, {}) | {} ({:.6g}, {}) | {}{:.2f}x | {} | {} / {} / {} | {} | {} |\n",
                     a.node, a.output, a.input_a, a.a.scale, a.a.zero_point, a.input_b, a.b.scale, a.b.zero_point,
                     a.flagged ? "**" : "", a.ratio,
                     a.has_output_quant ? fmt::format("{:.6g}, {}", a.out.scale, a.out.zero_point) : "-",
                     fmt_db(a.sqnr_a_db), fmt_db(a.sqnr_b_db), fmt_db(a.sqnr_out_db), fmt_db(a.local_sqnr_db),
                     fmt_db(a.sqnr_lost_db));
  const auto lo = std::min_element(r.adds.begin(), r.adds.end(), [](auto& x, auto& y) { return x.ratio < y.ratio; });
  const auto hi = std::max_element(r.adds.begin(), r.adds.end(), [](auto& x, auto& y) { return x.ratio < y.ratio; });
  o += fmt::format("\nThe range {:.2f}x–{:.2f}x comes from `{}` ({} + {}) at the low end and `{}` ({} + {}) at the high end.\n",
                   lo->ratio, hi->ratio, lo->node, lo->input_a, lo->input_b, hi->node, hi->input_a, hi->input_b);
  return o;
}

std::string residual_chart_svg(const ResidualResult& r) {
  charts::BarChart c;
  c.title = "Residual Add: ratio of input scales (larger / smaller)";
  c.subtitle = fmt::format("flagged above {:.2f}x (dashed line)", r.threshold);
  c.value_label = "scale ratio";
  c.value_decimals = 2;
  charts::Series s{"ratio", {}, "#4e79a7"};
  for (const auto& a : r.adds) {
    c.categories.push_back(fmt::format("{}: {} + {}", a.node, a.input_a, a.input_b));
    s.values.push_back(a.ratio);
    c.highlight.push_back(a.flagged);
  }
  c.series = {s};
  c.reference_line = r.threshold;
  c.reference_label = fmt::format("threshold {:.2f}x", r.threshold);
  return charts::bar_chart_svg(c);
}

}  // namespace qpipe::analysis
