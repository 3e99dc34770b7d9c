#include "pipeline/compare.h"

#include <cmath>
#include <map>
#include <set>

#include "engine/error.h"
#include "pipeline/report.h"
#include "pipeline/text_util.h"

namespace qpipe {
using nlohmann::json;

void check_report_document(const json& doc, const std::string& what) {
  if (!doc.is_object() || !doc.contains("schema_version") || !doc.contains("metrics") || !doc["metrics"].is_object()) {
    fail(ErrorKind::kInput, "{}: not a qpipe report.json (expected an object with 'schema_version' and 'metrics')", what);
  }
  if (doc["schema_version"] != json("1")) {
    fail(ErrorKind::kInput, "{}: report schema_version {} is not supported (expected \"1\")", what,
         canonical_json(doc["schema_version"]));
  }
}

namespace {

enum class Group { kOverall, kClass, kSqnr, kOther };

Group group_of(const std::string& name) {
  if (name == "accuracy") return Group::kOverall;
  if (name.rfind("class/", 0) == 0) return Group::kClass;
  if (name.rfind("sqnr_db/", 0) == 0) return Group::kSqnr;
  return Group::kOther;
}

std::string fmt_value(Group g, double v) {
  if (g == Group::kOverall || g == Group::kClass) return percent(v);
  if (g == Group::kSqnr) return fmt::format("{:.2f} dB", v);
  return fmt::format("{}", v);
}

std::string fmt_delta(Group g, double d) {
  if (g == Group::kOverall || g == Group::kClass) return fmt::format("{:+.2f} pp", d * 100.0);
  if (g == Group::kSqnr) return fmt::format("{:+.2f} dB", d);
  return fmt::format("{:+g}", d);
}

}  // namespace

CompareResult compare_reports(const json& base, const json& cur, const CompareOptions& opt, const std::string& base_name,
                              const std::string& cur_name) {
  CompareResult res;
  const json& bm = base["metrics"];
  const json& cm = cur["metrics"];
  struct Line {
    std::string stage, metric, b, c, d, status;
  };
  std::map<Group, std::vector<Line>> lines;
  std::set<std::string> stages;
  for (const auto& [k, v] : bm.items()) stages.insert(k);
  for (const auto& [k, v] : cm.items()) stages.insert(k);
  for (const auto& stage : stages) {
    bool in_b = bm.contains(stage), in_c = cm.contains(stage);
    if (in_b && !in_c) {
      res.regressions.push_back(fmt::format("stage '{}' has no metrics in {} (missing or failed)", stage, cur_name));
      lines[Group::kOverall].push_back({stage, "(all)", "present", "missing", "", "**REGRESSION**"});
      continue;
    }
    if (!in_b) {
      lines[Group::kOverall].push_back({stage, "(all)", "-", "new", "", "new"});
      continue;
    }
    std::set<std::string> names;
    for (const auto& [k, v] : bm[stage].items()) names.insert(k);
    for (const auto& [k, v] : cm[stage].items()) names.insert(k);
    for (const auto& name : names) {
      Group g = group_of(name);
      const json* b = bm[stage].contains(name) ? &bm[stage][name] : nullptr;
      const json* c = cm[stage].contains(name) ? &cm[stage][name] : nullptr;
      if (b && !c) {
        if (g != Group::kOther) res.regressions.push_back(fmt::format("{}: metric '{}' missing in {}", stage, name, cur_name));
        lines[g].push_back({stage, name, b->is_number() ? fmt_value(g, b->get<double>()) : json_scalar_text(*b), "missing", "",
                            g != Group::kOther ? "**REGRESSION**" : "changed"});
        continue;
      }
      if (!b) {
        lines[g].push_back({stage, name, "-", c->is_number() ? fmt_value(g, c->get<double>()) : json_scalar_text(*c), "", "new"});
        continue;
      }
      if (!b->is_number() || !c->is_number()) continue;
      double bv = b->get<double>(), cv = c->get<double>();
      double d = cv - bv;
      std::string status = "ok";
      double limit = -1;
      double drop = 0;
      if (g == Group::kOverall) limit = opt.tolerance_pp, drop = -d * 100.0;
      if (g == Group::kClass) limit = opt.class_tolerance_pp, drop = -d * 100.0;
      if (g == Group::kSqnr) limit = opt.sqnr_tolerance_db, drop = -d;
      // 1e-9 slack: 0.8719 - 0.8669 must count as exactly 0.5 pp.
      if (limit >= 0 && drop > limit + 1e-9) {
        status = "**REGRESSION**";
        res.regressions.push_back(fmt::format("{}: {} {} -> {} ({}; tolerance {} {})", stage, name, fmt_value(g, bv),
                                              fmt_value(g, cv), fmt_delta(g, d), limit, g == Group::kSqnr ? "dB" : "pp"));
      } else if (d > 0) {
        status = g == Group::kOther ? "changed" : "improved";
      } else if (d < 0) {
        status = g == Group::kOther ? "changed" : (limit >= 0 ? "within tolerance" : "lower (not judged)");
      }
      if (g == Group::kOther && d == 0) continue;  // only changes of other metrics
      lines[g].push_back({stage, name, fmt_value(g, bv), fmt_value(g, cv), fmt_delta(g, d), status});
    }
  }

  std::string md = fmt::format("# qpipe compare\n\n- Baseline: `{}` (experiment {}, status {})\n- Current: `{}` (experiment {}, status {})\n"
                               "- Tolerance: overall {} pp; per class {}; SQNR {}\n\n",
                               base_name, base.value("experiment", "?"), base.value("status", "?"), cur_name,
                               cur.value("experiment", "?"), cur.value("status", "?"), opt.tolerance_pp,
                               opt.class_tolerance_pp >= 0 ? fmt::format("{} pp", opt.class_tolerance_pp) : "not judged",
                               opt.sqnr_tolerance_db >= 0 ? fmt::format("{} dB", opt.sqnr_tolerance_db) : "not judged");
  const std::pair<Group, const char*> titles[] = {{Group::kOverall, "Overall accuracy"},
                                                  {Group::kClass, "Per-class accuracy"},
                                                  {Group::kSqnr, "Per-tensor SQNR"},
                                                  {Group::kOther, "Other metrics (changed only)"}};
  for (const auto& [g, title] : titles) {
    auto it = lines.find(g);
    if (it == lines.end() || it->second.empty()) continue;
    md += fmt::format("## {}\n\n| Stage | Metric | Baseline | Current | Δ | Status |\n|---|---|---:|---:|---:|---|\n", title);
    for (const auto& l : it->second) {
      md += fmt::format("| `{}` | {} | {} | {} | {} | {} |\n", l.stage, l.metric, l.b, l.c, l.d, l.status);
    }
    md += "\n";
  }
  if (res.regressions.empty()) {
    md += "**No regression beyond tolerance.**\n";
  } else {
    md += fmt::format("**{} regression{}:**\n\n", res.regressions.size(), res.regressions.size() == 1 ? "" : "s");
    for (const auto& r : res.regressions) md += "- " + r + "\n";
  }
  res.markdown = md;
  return res;
}

}  // namespace qpipe
