#include "pipeline/gates.h"

#include <cmath>
#include <map>

#include "pipeline/text_util.h"

namespace qpipe {
using nlohmann::json;

std::string json_scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  return canonical_json(v);
}

namespace {

std::string seg_text(const MetricSeg& s) {
  switch (s.select) {
    case MetricSeg::Select::kNone: return s.key;
    case MetricSeg::Select::kIndex: return fmt::format("{}[{}]", s.key, s.index);
    case MetricSeg::Select::kAll: return s.key + "[*]";
    case MetricSeg::Select::kMatch: return fmt::format("{}[{}={}]", s.key, s.match_field, s.match_value);
  }
  return s.key;
}

std::string scalar_str(const json& v) { return v.is_string() ? v.get<std::string>() : canonical_json(v); }

// Resolves a metric path; [*] fans out. Each result: (label path, value or error).
struct Found {
  std::string path;
  const json* value = nullptr;
  std::string error;
};

void walk(const json& node, const std::vector<MetricSeg>& segs, std::size_t k, const std::string& path,
          std::vector<Found>& out) {
  if (k == segs.size()) {
    out.push_back(Found{path, &node, ""});
    return;
  }
  const MetricSeg& s = segs[k];
  std::string here = path.empty() ? s.key : path + "." + s.key;
  if (!node.is_object() || !node.contains(s.key)) {
    out.push_back(Found{here, nullptr, fmt::format("no key '{}' at '{}'", s.key, path.empty() ? "(top)" : path)});
    return;
  }
  const json& v = node[s.key];
  if (s.select == MetricSeg::Select::kNone) return walk(v, segs, k + 1, here, out);
  if (!v.is_array()) {
    out.push_back(Found{here, nullptr, fmt::format("'{}' is not a list", here)});
    return;
  }
  if (s.select == MetricSeg::Select::kIndex) {
    if (s.index >= v.size()) {
      out.push_back(Found{here, nullptr, fmt::format("'{}' has {} elements, no [{}]", here, v.size(), s.index)});
      return;
    }
    return walk(v[s.index], segs, k + 1, fmt::format("{}[{}]", here, s.index), out);
  }
  if (s.select == MetricSeg::Select::kMatch) {
    for (const auto& e : v) {
      if (e.is_object() && e.contains(s.match_field) && scalar_str(e[s.match_field]) == s.match_value) {
        return walk(e, segs, k + 1, fmt::format("{}[{}={}]", here, s.match_field, s.match_value), out);
      }
    }
    out.push_back(Found{here, nullptr, fmt::format("no element of '{}' has {}={}", here, s.match_field, s.match_value)});
    return;
  }
  for (std::size_t i = 0; i < v.size(); ++i) {
    const json& e = v[i];
    std::string label = fmt::format("{}[{}]", here, i);
    for (const char* f : {"class_name", "name", "tensor"}) {
      if (e.is_object() && e.contains(f) && e[f].is_string()) {
        label = fmt::format("{}[{}={}]", here, f, e[f].get<std::string>());
        break;
      }
    }
    walk(e, segs, k + 1, label, out);
  }
}

bool compare(const json& a, const std::string& op, const json& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    if (std::isnan(x)) return false;
    if (op == ">=") return x >= y;
    if (op == "<=") return x <= y;
    if (op == ">") return x > y;
    if (op == "<") return x < y;
    if (op == "==") return x == y;
    if (op == "!=") return x != y;
    return false;
  }
  if (op == "==") return a == b;
  if (op == "!=") return a != b;
  return false;
}

}  // namespace

std::vector<GateResult> evaluate_gates(const Spec& spec, const std::vector<StageRecord>& records) {
  std::map<std::string, const StageRecord*> by_id;
  for (const auto& r : records) by_id[r.id] = &r;
  std::map<std::string, json> docs;  // artifact path -> parsed
  auto load = [&](const std::string& stage, const std::string& port, std::string& err) -> const json* {
    auto it = by_id.find(stage);
    if (it == by_id.end()) {
      err = fmt::format("stage '{}' is not part of the run", stage);
      return nullptr;
    }
    const StageRecord& r = *it->second;
    if (r.status != StageStatus::kOk) {
      err = fmt::format("not measured: stage '{}' {}{}", stage, status_name(r.status), r.message.empty() ? "" : " (" + r.message + ")");
      return nullptr;
    }
    auto o = r.outputs.find(port);
    if (o == r.outputs.end()) {
      err = fmt::format("not measured: stage '{}' wrote no output '{}'", stage, port);
      return nullptr;
    }
    std::string p = o->second.path.string();
    auto d = docs.find(p);
    if (d == docs.end()) {
      try {
        d = docs.emplace(p, read_json_file(p)).first;
      } catch (const std::exception& e) {
        err = std::string("not measured: ") + e.what();
        return nullptr;
      }
    }
    return &d->second;
  };

  std::string path_text;
  std::vector<GateResult> out;
  for (const auto& g : spec.gates) {
    path_text.clear();
    for (const auto& s : g.path) path_text += (path_text.empty() ? "" : ".") + seg_text(s);
    std::vector<Found> base_found;
    std::string base_err;
    if (!g.drop_vs.empty()) {
      if (const json* bd = load(g.drop_vs, g.port, base_err)) walk(*bd, g.path, 0, "", base_found);
    }
    for (const auto& stage : g.stages) {
      GateResult proto;
      proto.gate = g.name;
      proto.stage = stage;
      proto.op = g.op;
      proto.required = g.value;
      std::string err;
      const json* doc = load(stage, g.port, err);
      if (!doc) {
        GateResult r = proto;
        r.metric = stage + "." + path_text;
        r.note = err;
        out.push_back(r);
        continue;
      }
      std::vector<Found> found;
      walk(*doc, g.path, 0, "", found);
      for (const auto& f : found) {
        GateResult r = proto;
        r.metric = stage + "." + f.path;
        if (!f.value) {
          r.note = "not measured: " + f.error;
          out.push_back(r);
          continue;
        }
        json measured = *f.value;
        if (!g.drop_vs.empty()) {
          r.metric = fmt::format("drop of {} vs {} (pp)", r.metric, g.drop_vs);
          const json* bv = nullptr;
          for (const auto& b : base_found) {
            if (b.path == f.path) bv = b.value;
          }
          if (!bv) {
            r.note = base_err.empty() ? fmt::format("not measured: baseline '{}' has no '{}'", g.drop_vs, f.path) : base_err;
            out.push_back(r);
            continue;
          }
          if (!measured.is_number() || !bv->is_number()) {
            r.note = "not measured: drop_vs needs numbers";
            out.push_back(r);
            continue;
          }
          // Rounded to 1e-9 pp so that e.g. (0.8719 - 0.8675) * 100 prints as 0.44.
          double drop = (bv->get<double>() - measured.get<double>()) * 100.0;
          measured = std::round(drop * 1e9) / 1e9;
        }
        r.measured = measured;
        bool ordering = g.op != "==" && g.op != "!=";
        if (ordering && !measured.is_number()) {
          r.note = fmt::format("not measured: '{}' is {}, not a number", f.path, measured.type_name());
          out.push_back(r);
          continue;
        }
        r.passed = compare(measured, g.op, g.value);
        out.push_back(r);
      }
    }
  }
  return out;
}

std::string describe_gate_result(const GateResult& r) {
  std::string m = r.measured.is_null() ? "not measured" : json_scalar_text(r.measured);
  std::string s = fmt::format("gate '{}': {} = {}, required {} {} ({})", r.gate, r.metric, m, r.op,
                              json_scalar_text(r.required), r.passed ? "PASS" : "FAIL");
  if (!r.note.empty()) s += ": " + r.note;
  return s;
}

}  // namespace qpipe
