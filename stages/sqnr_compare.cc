// Stage `sqnr_compare`: lines up the `sqnr` results of several QDQ models of
// the same FP32 model (e.g. the variants of a matrix stage: int8, uint8,
// per-channel int8) and reports, per tensor present in every input, each
// variant's accumulated SQNR and its gain in dB over a baseline variant, plus
// the layers that gained the most for each variant.
//
// Variants are named by the `label` field the sqnr stage writes into its
// result (its `label` param, default its stage id); artifacts carry no stage
// identity of their own.

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/error.h"
#include "pipeline/stage_context.h"
#include "pipeline/text_util.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

constexpr int kTopN = 5;

struct TensorEntry {
  std::string kind;  // "activation" or "constant"
  std::string op;
  std::optional<double> sqnr_db;  // nullopt: exact (infinite) or not measured
};

struct Variant {
  std::string label;
  std::string path;
  int64_t images = 0;
  std::optional<double> output_db;
  std::map<std::string, TensorEntry> tensors;  // by FP32 tensor name
  std::vector<std::string> order;              // tensor names in model order
};

std::optional<double> db_of(const nlohmann::json& stats) {
  if (!stats.is_object()) return std::nullopt;
  auto it = stats.find("sqnr_db");
  if (it == stats.end() || !it->is_number()) return std::nullopt;
  return it->get<double>();
}

Variant read_variant(const Artifact& a, size_t index) {
  nlohmann::json doc = read_json_file(a.path.string());
  const std::string where = a.path.string();
  if (!doc.is_object() || doc.value("schema", std::string()) != "sqnr") {
    fail(ErrorKind::kInput, "{}: input {} of port 'sqnr' is not an sqnr result (expected \"schema\": \"sqnr\")",
         where, index + 1);
  }
  Variant v;
  v.path = where;
  v.label = doc.value("label", std::string());
  if (v.label.empty()) v.label = fmt::format("input {}", index + 1);
  v.images = doc.value("images", int64_t{0});
  if (doc.contains("model_output") && doc["model_output"].is_object())
    v.output_db = db_of(doc["model_output"].value("stats", nlohmann::json()));
  for (const char* group : {"activations", "constants"}) {
    auto it = doc.find(group);
    if (it == doc.end()) continue;
    if (!it->is_array()) fail(ErrorKind::kInput, "{}: '{}' must be a list of tensors", where, group);
    for (const auto& t : *it) {
      if (!t.is_object() || !t.contains("name") || !t["name"].is_string())
        fail(ErrorKind::kInput, "{}: an entry of '{}' has no string 'name'", where, group);
      TensorEntry e;
      e.kind = std::string(group) == "activations" ? "activation" : "constant";
      e.op = t.value("op", std::string());
      e.sqnr_db = db_of(t.value("accumulated", nlohmann::json()));
      std::string name = t["name"].get<std::string>();
      if (v.tensors.emplace(name, e).second) v.order.push_back(name);
    }
  }
  return v;
}

nlohmann::json num_or_null(const std::optional<double>& d) { return d ? nlohmann::json(*d) : nlohmann::json(nullptr); }

std::optional<double> gain(const std::optional<double>& v, const std::optional<double>& base) {
  if (!v || !base) return std::nullopt;
  return *v - *base;
}

std::string fmt_db(const std::optional<double>& d) { return d ? fmt::format("{:.2f}", *d) : std::string("exact"); }

void run(StageContext& ctx) {
  const std::vector<Artifact>& arts = ctx.inputs("sqnr");
  if (arts.size() < 2) {
    fail(ErrorKind::kInput, "stage '{}' (sqnr_compare): needs at least 2 sqnr results on port 'sqnr', got {}",
         ctx.stage_id(), arts.size());
  }
  std::vector<Variant> vars;
  for (size_t i = 0; i < arts.size(); ++i) vars.push_back(read_variant(arts[i], i));
  {  // Labels must tell the variants apart.
    std::set<std::string> seen;
    for (auto& v : vars) {
      std::string base = v.label;
      for (int k = 2; !seen.insert(v.label).second; ++k) v.label = fmt::format("{} #{}", base, k);
    }
  }

  size_t bi = 0;
  const std::string wanted = ctx.param_or<std::string>("baseline", "");
  if (!wanted.empty()) {
    auto it = std::find_if(vars.begin(), vars.end(), [&](const Variant& v) { return v.label == wanted; });
    if (it == vars.end()) {
      std::vector<std::string> labels;
      for (const auto& v : vars) labels.push_back(v.label);
      fail(ErrorKind::kInput, "stage '{}' (sqnr_compare): param 'baseline' = '{}' names none of the inputs ({}){}",
           ctx.stage_id(), wanted, quoted_list(labels), did_you_mean(wanted, labels));
    }
    bi = static_cast<size_t>(it - vars.begin());
  }
  const Variant& base = vars[bi];

  // Tensors present in every variant, in the baseline's model order.
  std::vector<std::string> common;
  for (const auto& name : base.order) {
    bool all = std::all_of(vars.begin(), vars.end(), [&](const Variant& v) { return v.tensors.count(name) > 0; });
    if (all) common.push_back(name);
  }

  nlohmann::json doc;
  doc["schema"] = "sqnr_compare";
  doc["schema_version"] = 1;
  doc["baseline"] = base.label;
  doc["definition"] =
      "sqnr_db: accumulated SQNR of the tensor in each variant (null = exact); gain_db = variant - baseline (dB, "
      "positive = less quantization noise than the baseline)";
  doc["variants"] = nlohmann::json::array();
  for (const auto& v : vars) {
    doc["variants"].push_back({{"label", v.label},
                               {"images", v.images},
                               {"tensors", v.tensors.size()},
                               {"output_sqnr_db", num_or_null(v.output_db)},
                               {"output_gain_db", num_or_null(gain(v.output_db, base.output_db))}});
  }
  doc["tensors"] = nlohmann::json::array();
  nlohmann::json metrics = nlohmann::json::object();
  // Per variant: (gain, tensor) of every tensor with a finite gain.
  std::vector<std::vector<std::pair<double, std::string>>> gains(vars.size());
  for (const auto& name : common) {
    nlohmann::json t;
    t["name"] = name;
    t["kind"] = base.tensors.at(name).kind;
    t["op"] = base.tensors.at(name).op;
    nlohmann::json s = nlohmann::json::object(), g = nlohmann::json::object();
    const auto& b = base.tensors.at(name).sqnr_db;
    for (size_t i = 0; i < vars.size(); ++i) {
      const auto& d = vars[i].tensors.at(name).sqnr_db;
      s[vars[i].label] = num_or_null(d);
      auto gi = gain(d, b);
      g[vars[i].label] = num_or_null(gi);
      if (i != bi && gi) gains[i].push_back({*gi, name});
    }
    t["sqnr_db"] = s;
    t["gain_db"] = g;
    doc["tensors"].push_back(t);
  }
  doc["top_gains"] = nlohmann::json::object();
  doc["top_activation_gains"] = nlohmann::json::object();
  std::string md = fmt::format(
      "Accumulated SQNR of {} tensors present in all {} models, compared with **{}** (gain in dB; positive = less "
      "quantization noise).\n\n",
      common.size(), vars.size(), base.label);
  md += "| model | images | model output SQNR (dB) | gain vs baseline (dB) |\n|---|---:|---:|---:|\n";
  for (size_t i = 0; i < vars.size(); ++i) {
    md += fmt::format("| {}{} | {} | {} | {} |\n", vars[i].label, i == bi ? " (baseline)" : "", vars[i].images,
                      fmt_db(vars[i].output_db),
                      i == bi ? std::string("—") : fmt_db(gain(vars[i].output_db, base.output_db)));
  }
  md += "\n";
  for (size_t i = 0; i < vars.size(); ++i) {
    if (i == bi) continue;
    auto& gv = gains[i];
    // Largest gain first; ties by name so the order never depends on input order.
    std::sort(gv.begin(), gv.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    // The top tensors overall, and separately the top activations (the
    // weights' own SQNR dominates the overall list under per-channel).
    auto top_of = [&](const char* kind) {
      nlohmann::json top = nlohmann::json::array();
      for (const auto& [gd, name] : gv) {
        if (top.size() >= static_cast<size_t>(kTopN)) break;
        if (kind && base.tensors.at(name).kind != kind) continue;
        top.push_back({{"name", name},
                       {"kind", base.tensors.at(name).kind},
                       {"op", base.tensors.at(name).op},
                       {"gain_db", gd},
                       {"baseline_db", num_or_null(base.tensors.at(name).sqnr_db)},
                       {"sqnr_db", num_or_null(vars[i].tensors.at(name).sqnr_db)}});
      }
      return top;
    };
    nlohmann::json top = top_of(nullptr), top_act = top_of("activation");
    doc["top_gains"][vars[i].label] = top;
    doc["top_activation_gains"][vars[i].label] = top_act;
    if (auto og = gain(vars[i].output_db, base.output_db)) metrics["output_gain_db/" + vars[i].label] = *og;
    int improved = 0, worse = 0;
    for (const auto& entry : gv) {
      if (entry.first > 0.05) ++improved;
      if (entry.first < -0.05) ++worse;
    }
    md += fmt::format("**{}** vs {}: {} of {} tensors gain, {} lose (more than 0.05 dB).\n\n", vars[i].label,
                      base.label, improved, gv.size(), worse);
    auto list = [&](const nlohmann::json& entries, const std::string& what) {
      if (entries.empty() || entries[0]["gain_db"].get<double>() <= 0) {
        md += fmt::format("No {} gained.\n\n", what);
        return;
      }
      md += fmt::format("The {} that gained the most:\n\n", what);
      for (const auto& e : entries) {
        if (e["gain_db"].get<double>() <= 0) break;
        const std::string name = e["name"].get<std::string>();
        md += fmt::format("- `{}` ({}{}): {} → {} dB (**{:+.2f} dB**)\n", name, e["kind"].get<std::string>(),
                          e["op"].get<std::string>().empty() ? "" : ", " + e["op"].get<std::string>(),
                          fmt_db(base.tensors.at(name).sqnr_db), fmt_db(vars[i].tensors.at(name).sqnr_db),
                          e["gain_db"].get<double>());
      }
      md += "\n";
    };
    list(top, "tensors (weights, biases, activations)");
    list(top_act, "activations");
  }
  doc["metrics"] = metrics;
  doc["report"] = {{"title", fmt::format("SQNR comparison: which layers gained (baseline {})", base.label)},
                   {"markdown", md}};
  ctx.write_json("result", doc);
}

}  // namespace

StageType make_sqnr_compare_stage() {
  StageType t;
  t.name = "sqnr_compare";
  t.version = "2";
  t.description = "per-tensor accumulated SQNR of several QDQ models side by side, gain vs a baseline, top layers";
  t.params = {{"baseline", ParamKind::kString, false, nullptr,
               "label of the baseline sqnr result (the sqnr stage's label param, default its stage id); default the "
               "first input"}};
  t.inputs = {{"sqnr", "sqnr", false, true, "the results of several sqnr stages (e.g. every variant)"}};
  t.outputs = {{"result", "json", false, false, "per-tensor SQNR and gains, top layers, report fragment"}};
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
