#include "pipeline/report.h"

#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <fstream>
#include <set>

#include "pipeline/atomic_file.h"
#include "pipeline/text_util.h"
#include "qpipe/version.h"

namespace qpipe {
namespace fs = std::filesystem;
using nlohmann::json;

std::string percent(double fraction) { return fmt::format("{:.2f}%", fraction * 100.0); }

std::string utc_timestamp(std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string make_run_id(const std::string& spec_sha256, std::chrono::system_clock::time_point t) {
  std::time_t tt = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return std::string(buf) + "-" + spec_sha256.substr(0, 6);
}

json environment_info() {
  json env = json::object();
  std::string cpu = "unknown";
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      auto c = line.find(':');
      if (c != std::string::npos) {
        cpu = line.substr(c + 1);
        cpu.erase(0, cpu.find_first_not_of(" \t"));
      }
      break;
    }
  }
  env["cpu"] = cpu;
  struct utsname u{};
  env["os"] = ::uname(&u) == 0 ? fmt::format("{} {} {}", u.sysname, u.release, u.machine) : "unknown";
  env["qpipe_version"] = kVersion;
  env["git_commit"] = kGitCommit;
  return env;
}

namespace {

// Markdown table cell: no pipes or newlines.
std::string cell(std::string s) {
  for (auto& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  std::string out;
  for (char c : s) {
    if (c == '|') out += "\\|";
    else out += c;
  }
  return out;
}

std::string eval_column_label(const ReportItem& it) {
  const json& d = it.data;
  if (d.contains("label") && d["label"].is_string() && !d["label"].get<std::string>().empty()) return d["label"].get<std::string>();
  return it.stage_id;
}

double num(const json& j, const char* a, const char* b = nullptr, double fallback = NAN) {
  const json* x = &j;
  if (!x->is_object() || !x->contains(a)) return fallback;
  x = &(*x)[a];
  if (b) {
    if (!x->is_object() || !x->contains(b)) return fallback;
    x = &(*x)[b];
  }
  return x->is_number() ? x->get<double>() : fallback;
}

std::string str(const json& j, const char* k, const std::string& fallback = "") {
  return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : fallback;
}

// Rows of a milestone/per_class section: config rows (ids or {stage, ...}) or all items.
struct Row {
  const ReportItem* item;
  json config;  // the row's config object (may be empty)
};

std::vector<Row> select_rows(const SectionInput& in) {
  std::vector<Row> rows;
  auto matches = [](const ReportItem& it, const std::string& id) {
    if (it.stage_id == id) return true;
    auto b = it.stage_id.find('[');
    return b != std::string::npos && it.stage_id.substr(0, b) == id;
  };
  if (in.config.contains("rows")) {
    for (const auto& r : in.config["rows"]) {
      std::string id = r.is_string() ? r.get<std::string>() : str(r, "stage");
      for (const auto& it : in.items) {
        if (matches(it, id)) rows.push_back(Row{&it, r.is_object() ? r : json::object()});
      }
    }
  } else {
    for (const auto& it : in.items) rows.push_back(Row{&it, json::object()});
  }
  return rows;
}

std::size_t pick_baseline(const SectionInput& in, const std::vector<Row>& rows) {
  if (in.config.contains("baseline") && in.config["baseline"].is_string()) {
    std::string id = in.config["baseline"].get<std::string>();
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].item->stage_id == id) return i;
    }
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (rows[i].item->stage_id.rfind(id + "[", 0) == 0) return i;
    }
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows[i].config.value("baseline", false)) return i;
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::string dt = str(rows[i].item->data, "dtype");
    if (dt == "float32" || dt == "fp32") return i;
  }
  return 0;
}

std::optional<RenderedSection> render_milestone(const SectionInput& in) {
  std::vector<Row> rows = select_rows(in);
  if (rows.empty()) return std::nullopt;
  std::size_t b = pick_baseline(in, rows);
  const json& base = rows[b].item->data;
  double base_acc = num(base, "overall", "accuracy");
  double base_size = num(base, "model_size_bytes");
  bool any_published = false, any_note = false;
  for (const auto& r : rows) {
    any_published = any_published || r.config.contains("published");
    any_note = any_note || r.config.contains("note");
  }
  RenderedSection s;
  s.kind = "milestone";
  s.title = in.config.value("title", "Milestone table");
  s.data = {{"baseline", rows[b].item->stage_id}, {"rows", json::array()}};
  std::string md = "| Framework | Data type | Accuracy | Δ vs baseline (pp) | Model size (KB) | Size reduction |";
  std::string sep = "|---|---|---:|---:|---:|---:|";
  if (any_published) md += " Published |", sep += "---:|";
  if (any_note) md += " Note |", sep += "---|";
  md += "\n" + sep + "\n";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const ReportItem& it = *rows[i].item;
    const json& d = it.data;
    json row = {{"stage", it.stage_id}, {"baseline", i == b}};
    std::string framework = rows[i].config.contains("label") ? str(rows[i].config, "label") : str(d, "framework", eval_column_label(it));
    std::string dtype = str(d, "dtype", "?");
    double acc = num(d, "overall", "accuracy");
    double size = num(d, "model_size_bytes");
    row["framework"] = framework;
    row["dtype"] = dtype;
    row["label"] = eval_column_label(it);
    row["accuracy"] = std::isnan(acc) ? json() : json(acc);
    row["correct"] = d.contains("overall") ? d["overall"].value("correct", json()) : json();
    row["total"] = d.contains("overall") ? d["overall"].value("total", json()) : json();
    std::string delta = "baseline", size_kb = "?", reduction = "-";
    if (i != b && !std::isnan(acc) && !std::isnan(base_acc)) {
      double pp = std::round((acc - base_acc) * 100.0 * 1e9) / 1e9;
      row["delta_pp"] = pp;
      delta = fmt::format("{:+.2f}", pp);
    }
    if (!std::isnan(size)) {
      row["model_size_bytes"] = static_cast<int64_t>(size);
      size_kb = fmt::format("{:.0f}", size / 1024.0);
      if (i != b && !std::isnan(base_size) && base_size > 0) {
        double red = std::round((1.0 - size / base_size) * 1e9) / 1e9;
        row["size_reduction"] = red;
        reduction = fmt::format("{:.1f}% ({:.2f}x smaller)", red * 100.0, base_size / size);
      }
    }
    md += fmt::format("| {} | {} | {} | {} | {} | {} |", cell(framework), cell(dtype), std::isnan(acc) ? "?" : percent(acc),
                      delta, size_kb, reduction);
    if (any_published) {
      const json& p = rows[i].config.contains("published") ? rows[i].config["published"] : json();
      row["published"] = p;
      md += " " + (p.is_number() ? percent(p.get<double>()) : p.is_null() ? std::string("-") : cell(json_scalar_text(p))) + " |";
    }
    if (any_note) {
      row["note"] = rows[i].config.value("note", json());
      md += " " + cell(str(rows[i].config, "note")) + " |";
    }
    md += "\n";
    s.data["rows"].push_back(row);
  }
  md += fmt::format("\nBaseline: `{}`. Accuracy over {} images; model size is the ONNX file size.\n", rows[b].item->stage_id,
                    base.contains("overall") ? json_scalar_text(base["overall"].value("total", json("?"))) : "?");
  s.markdown = md;
  return s;
}

std::optional<RenderedSection> render_per_class(const SectionInput& in) {
  std::vector<Row> rows = select_rows(in);
  if (rows.empty()) return std::nullopt;
  std::size_t b = pick_baseline(in, rows);
  std::vector<std::string> classes;
  std::vector<std::map<std::string, double>> acc(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const json& d = rows[i].item->data;
    if (!d.contains("per_class") || !d["per_class"].is_array()) continue;
    for (std::size_t c = 0; c < d["per_class"].size(); ++c) {
      const json& e = d["per_class"][c];
      std::string name = str(e, "class_name", std::to_string(c));
      if (std::find(classes.begin(), classes.end(), name) == classes.end()) classes.push_back(name);
      double a = num(e, "accuracy");
      if (!std::isnan(a)) acc[i][name] = a;
    }
  }
  if (classes.empty()) return std::nullopt;
  RenderedSection s;
  s.kind = "per_class";
  s.title = in.config.value("title", "Per-class accuracy");
  json cols = json::array();
  std::string md = "| Class |", sep = "|---|";
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::string label = rows[i].config.contains("label") ? str(rows[i].config, "label") : eval_column_label(*rows[i].item);
    std::string dt = str(rows[i].item->data, "dtype");
    md += " " + cell(label) + (dt.empty() ? "" : " (" + cell(dt) + ")") + " |";
    sep += "---:|";
    cols.push_back({{"stage", rows[i].item->stage_id}, {"label", label}, {"dtype", dt}, {"baseline", i == b}});
  }
  md += "\n" + sep + "\n";
  json table = json::array();
  for (const auto& c : classes) {
    md += "| " + cell(c) + " |";
    json line = {{"class_name", c}, {"accuracy", json::array()}};
    for (std::size_t i = 0; i < rows.size(); ++i) {
      auto it = acc[i].find(c);
      if (it == acc[i].end()) {
        md += " - |";
        line["accuracy"].push_back(nullptr);
        continue;
      }
      std::string v = percent(it->second);
      auto bt = acc[b].find(c);
      if (i != b && bt != acc[b].end()) v += fmt::format(" ({:+.2f})", (it->second - bt->second) * 100.0);
      md += " " + v + " |";
      line["accuracy"].push_back(it->second);
    }
    md += "\n";
    table.push_back(line);
  }
  md += fmt::format("\nIn parentheses: the difference to `{}` in percentage points.\n", rows[b].item->stage_id);
  s.markdown = md;
  s.data = {{"columns", cols}, {"classes", table}, {"baseline", rows[b].item->stage_id}};
  return s;
}

std::string status_line(const std::string& status) {
  if (status == "passed") return "PASSED";
  if (status == "gates_failed") return "FAILED (gates)";
  if (status == "failed") return "FAILED (stage errors)";
  if (status == "interrupted") return "INTERRUPTED";
  return status;
}

}  // namespace

void register_framework_sections(StageRegistry& registry) {
  registry.add_section_kind(SectionKind{
      "milestone", "eval",
      "the study's table over eval results: framework, data type, accuracy, delta vs baseline (pp), model size, size "
      "reduction; rows: stage ids or {stage, label, note, published, baseline}",
      {"baseline", "rows"}, render_milestone});
  registry.add_section_kind(SectionKind{"per_class", "eval",
                                        "per-class accuracy of every eval result side by side, with the difference to the baseline",
                                        {"baseline", "rows"}, render_per_class});
}

BuiltReport build_report(const ReportInputs& in) {
  const Spec& spec = in.spec;
  BuiltReport out;
  json& r = out.report;
  r["schema_version"] = kReportSchemaVersion;
  r["experiment"] = spec.experiment;
  r["description"] = spec.description;
  r["title"] = spec.report.title.empty() ? spec.experiment : spec.report.title;
  r["status"] = in.status;
  r["exit_code"] = in.exit_code;

  // The resolved spec.
  json resolved = {{"experiment", spec.experiment},
                   {"description", spec.description},
                   {"settings", {{"threads", spec.settings.threads}, {"batch_size", spec.settings.batch_size}}}};
  json rstages = json::object();
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& s = spec.stages[i];
    json st = {{"type", s.type}, {"params", s.params}};
    if (!s.desc.empty()) st["desc"] = s.desc;
    if (!s.matrix.empty()) {
      json m = json::object();
      for (const auto& [a, v] : s.matrix) m[a] = v;
      st["matrix"] = m;
    }
    json ins = json::object();
    for (const auto& [port, list] : in.dag.nodes[i].inputs) {
      json refs = json::array();
      for (const auto& d : list) refs.push_back(spec.stages[d.producer].id + "." + d.port);
      ins[port] = refs;
    }
    if (!ins.empty()) st["inputs"] = ins;
    json needs = json::array();
    for (std::size_t d : in.dag.nodes[i].deps) needs.push_back(spec.stages[d].id);
    if (!needs.empty()) st["after"] = needs;
    rstages[s.id] = st;
  }
  resolved["stages"] = rstages;
  json rgates = json::array();
  for (const auto& g : spec.gates) {
    json gj = {{"name", g.name}, {"metric", g.metric}, {"op", g.op}, {"value", g.value}, {"stages", g.stages}};
    if (!g.drop_vs.empty()) gj["drop_vs"] = g.drop_vs;
    rgates.push_back(gj);
  }
  resolved["gates"] = rgates;
  json rsections = json::array();
  for (const auto& s : spec.report.sections) rsections.push_back(s.config);
  resolved["report"] = {{"title", spec.report.title}, {"sections", rsections}};
  json files = json::array();
  for (const auto& [p, sha] : spec.source_files) files.push_back({{"path", p}, {"sha256", sha}});
  r["spec"] = {{"sha256", spec.sha256}, {"files", files}, {"resolved", resolved}};

  // Stages, failures, metrics, report items.
  std::map<std::string, std::vector<ReportItem>> items_by_type;
  std::vector<ReportItem> fragments;
  json stages = json::array(), failures = json::array(), metrics = json::object();
  json input_files = json::object();
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& s = spec.stages[i];
    const StageRecord& rec = in.records[i];
    json st = {{"id", s.id}, {"type", s.type}, {"status", status_name(rec.status)}};
    if (!rec.key.empty()) st["cache_key"] = rec.key;
    if (!rec.message.empty()) st["message"] = rec.message;
    if (rec.status == StageStatus::kFailed) st["error_kind"] = error_kind_name(rec.error_kind);
    json outs = json::object();
    for (const auto& [port, a] : rec.outputs) {
      std::error_code ec;
      auto bytes = fs::is_regular_file(a.path, ec) ? fs::file_size(a.path, ec) : 0;
      outs[port] = {{"type", a.type}, {"path", in.cache.relative(a.path)}, {"sha256", a.sha256}, {"bytes", bytes}};
    }
    st["outputs"] = outs;
    if (rec.material.is_object() && rec.material.contains("inputs")) st["inputs"] = rec.material["inputs"];
    if (i < in.files.size() && !in.files[i].empty()) {
      st["files"] = in.files[i];
      for (const auto& [param, f] : in.files[i].items()) {
        if (f.contains("sha256") && f["sha256"].is_string()) input_files[f["path"].get<std::string>()] = f["sha256"];
      }
    }
    stages.push_back(st);
    if (rec.status == StageStatus::kFailed || rec.status == StageStatus::kSkipped || rec.status == StageStatus::kCancelled) {
      json f = {{"experiment", spec.experiment}, {"stage", s.id}, {"type", s.type}, {"status", status_name(rec.status)},
                {"message", rec.message}};
      if (rec.status == StageStatus::kFailed) f["error_kind"] = error_kind_name(rec.error_kind);
      failures.push_back(f);
    }
    if (rec.status != StageStatus::kOk) continue;
    json m = json::object();
    for (const auto& [port, a] : rec.outputs) {
      ReportItem it;
      it.stage_id = s.id;
      it.stage_type = s.type;
      it.port = port;
      it.artifact = a;
      it.matrix = s.matrix;
      it.stage_outputs = rec.outputs;
      const ArtifactType* at = in.registry.artifact_type(a.type);
      if (at && at->storage == Storage::kJson) {
        try {
          it.data = read_json_file(a.path.string());
        } catch (const PtqError&) {
          it.data = nullptr;
        }
        if (at->metrics) m.update(at->metrics(it.data));
        if (it.data.is_object() && it.data.contains("metrics") && it.data["metrics"].is_object()) {
          for (const auto& [k, v] : it.data["metrics"].items()) {
            if (v.is_number()) m[k] = v;
          }
        }
        if (it.data.is_object() && it.data.contains("report") && it.data["report"].is_object()) fragments.push_back(it);
      }
      items_by_type[a.type].push_back(it);
    }
    if (!m.empty()) metrics[s.id] = m;
  }
  r["stages"] = stages;
  r["failures"] = failures;
  r["metrics"] = metrics;

  bool gates_ok = true;
  json checks = json::array();
  for (const auto& g : in.gates) {
    gates_ok = gates_ok && g.passed;
    json c = {{"gate", g.gate}, {"stage", g.stage}, {"metric", g.metric}, {"op", g.op}, {"measured", g.measured},
              {"required", g.required}, {"result", g.passed ? "PASS" : "FAIL"}};
    if (!g.note.empty()) c["note"] = g.note;
    checks.push_back(c);
  }
  r["gates"] = {{"passed", gates_ok}, {"checks", checks}};
  json env = environment_info();
  env["input_files"] = input_files;
  r["environment"] = env;

  // run.json: what varies from run to run.
  json& run = out.run;
  run["schema_version"] = kReportSchemaVersion;
  run["run_id"] = in.run.run_id;
  run["started_utc"] = in.run.started_utc;
  run["finished_utc"] = in.run.finished_utc;
  run["wall_seconds"] = std::round(in.run.wall_seconds * 1000) / 1000;
  run["threads"] = in.run.threads;
  run["force"] = in.run.force;
  run["cache_dir"] = in.run.cache_dir;
  json rs = json::object();
  int hits = 0, ran = 0;
  for (const auto& rec : in.records) {
    json x = {{"wall_seconds", std::round(rec.wall_seconds * 1000) / 1000}, {"reason", rec.reason}};
    if (rec.status == StageStatus::kOk) {
      x["cache"] = rec.cache_hit ? "hit" : "miss";
      (rec.cache_hit ? hits : ran)++;
    }
    if (!rec.progress.unit.empty()) {
      x["progress"] = {{"done", rec.progress.done}, {"total", rec.progress.total}, {"unit", rec.progress.unit}};
      if (!rec.cache_hit && rec.wall_seconds > 0) {
        x["throughput_per_second"] = std::round(rec.progress.done / rec.wall_seconds * 10) / 10;
      }
    }
    rs[rec.id] = x;
  }
  run["stages"] = rs;

  // Sections.
  std::vector<SectionSpec> wanted = spec.report.sections;
  if (!spec.report.sections_given) {
    auto add = [&](const std::string& k) { wanted.push_back(SectionSpec{k, json{{"kind", k}}, {}}); };
    add("summary");
    for (const auto& k : in.registry.section_kinds()) {
      if (items_by_type.count(k.artifact_type)) add(k.name);
    }
    add("fragments");
    add("gates");
    add("failures");
    add("stages");
    add("environment");
  }
  std::string md = "# " + r["title"].get<std::string>() + "\n\n";
  if (!spec.description.empty()) md += spec.description + "\n\n";
  json sections = json::array();
  auto heading = [&](const SectionSpec& s, const std::string& def) { return s.config.value("title", def); };
  for (const auto& sec : wanted) {
    const std::string& k = sec.kind;
    if (k == "summary") {
      int ok_checks = 0;
      for (const auto& g : in.gates) ok_checks += g.passed;
      md += fmt::format("**Result: {}** — {} stages ({} ran, {} reused from the cache, {} failed/skipped); gate checks: {}/{} "
                        "passed.\n\n",
                        status_line(in.status), in.records.size(), ran, hits, failures.size(), ok_checks, in.gates.size());
      md += fmt::format("Run `{}`, {} UTC, {} thread{}, {:.1f} s. Spec sha256 `{}`.\n\n", in.run.run_id, in.run.started_utc,
                        in.run.threads, in.run.threads == 1 ? "" : "s", in.run.wall_seconds, spec.sha256.substr(0, 12));
    } else if (k == "text") {
      md += "## " + heading(sec, "Notes") + "\n\n" + sec.config.value("body", "") + "\n\n";
      sections.push_back({{"kind", "text"}, {"title", heading(sec, "Notes")}, {"data", {{"body", sec.config.value("body", "")}}}});
    } else if (k == "gates") {
      md += "## " + heading(sec, "Gates") + "\n\n";
      if (in.gates.empty()) {
        md += "No gates defined.\n\n";
        continue;
      }
      md += "| Gate | Metric | Measured | Op | Required | Result |\n|---|---|---:|:-:|---:|:-:|\n";
      for (const auto& g : in.gates) {
        std::string m = g.measured.is_null() ? "not measured" : json_scalar_text(g.measured);
        md += fmt::format("| {} | `{}` | {} | {} | {} | **{}** |\n", cell(g.gate), cell(g.metric), cell(m), cell(g.op),
                          cell(json_scalar_text(g.required)), g.passed ? "PASS" : "FAIL");
      }
      for (const auto& g : in.gates) {
        if (!g.note.empty()) md += fmt::format("\n- `{}`: {}", cell(g.metric), g.note);
      }
      md += "\n\n";
    } else if (k == "failures") {
      if (failures.empty()) continue;
      md += "## " + heading(sec, "Failures") + "\n\n";
      for (const auto& f : failures) {
        md += fmt::format("- `{}` ({}) **{}**{}: {}\n", f["stage"].get<std::string>(), f["type"].get<std::string>(),
                          f["status"].get<std::string>(), f.contains("error_kind") ? " [" + f["error_kind"].get<std::string>() + "]" : "",
                          f["message"].get<std::string>());
      }
      md += "\n";
    } else if (k == "stages") {
      md += "## " + heading(sec, "Stages") + "\n\n| Stage | Type | Status | Cache | Why | Wall time | Throughput |\n"
                                              "|---|---|---|---|---|---:|---:|\n";
      for (const auto& rec : in.records) {
        std::string tp = "-";
        if (!rec.progress.unit.empty() && !rec.cache_hit && rec.wall_seconds > 0) {
          tp = fmt::format("{:.0f} {}/s", rec.progress.done / rec.wall_seconds, rec.progress.unit);
        }
        std::string cache = rec.status == StageStatus::kOk ? (rec.cache_hit ? "hit" : "miss") : "-";
        std::string why = rec.status == StageStatus::kOk ? rec.reason : rec.message;
        md += fmt::format("| `{}` | {} | {} | {} | {} | {:.2f} s | {} |\n", cell(rec.id), cell(rec.type), status_name(rec.status),
                          cache, cell(why), rec.wall_seconds, tp);
      }
      md += "\n";
    } else if (k == "environment") {
      md += "## " + heading(sec, "Environment") + "\n\n";
      md += fmt::format("- CPU: {}\n- OS: {}\n- Threads: {}\n- qpipe {} (commit {})\n- Cache: `{}`\n", env["cpu"].get<std::string>(),
                        env["os"].get<std::string>(), in.run.threads, kVersion, kGitCommit, in.run.cache_dir);
      for (const auto& [p, sha] : input_files.items()) md += fmt::format("- Input `{}`: sha256 `{}`\n", p, sha.get<std::string>());
      for (const auto& [p, sha] : spec.source_files) md += fmt::format("- Spec file `{}`: sha256 `{}`\n", p, sha);
      md += "\n";
    } else if (k == "fragments") {
      std::set<std::string> only;
      if (sec.config.contains("stages")) {
        for (const auto& x : sec.config["stages"]) only.insert(x.get<std::string>());
      }
      for (const auto& it : fragments) {
        std::string base = it.stage_id.substr(0, it.stage_id.find('['));
        if (!only.empty() && !only.count(it.stage_id) && !only.count(base)) continue;
        const json& rep = it.data["report"];
        std::string title = str(rep, "title", it.stage_id);
        md += "## " + title + "\n\n" + str(rep, "markdown") + "\n\n";
        json figs = json::array();
        if (rep.contains("figures") && rep["figures"].is_array()) {
          for (const auto& f : rep["figures"]) {
            if (!f.is_string()) continue;
            auto o = it.stage_outputs.find(f.get<std::string>());
            if (o == it.stage_outputs.end()) continue;
            std::string name = safe_file_name(it.stage_id + "-" + o->first) + o->second.path.extension().string();
            out.figures.push_back(Figure{o->second.path, name, title});
            md += fmt::format("![{}](figures/{})\n\n", cell(title), name);
            figs.push_back("figures/" + name);
          }
        }
        sections.push_back({{"kind", "fragment"}, {"stage", it.stage_id}, {"title", title}, {"data", rep}, {"figures", figs}});
      }
    } else if (const SectionKind* sk = in.registry.section_kind(k)) {
      static const std::vector<ReportItem> kNone;
      auto found = items_by_type.find(sk->artifact_type);
      const auto& items = found == items_by_type.end() ? kNone : found->second;
      std::optional<RenderedSection> rs_;
      try {
        rs_ = sk->render(SectionInput{sec.config, items});
      } catch (const std::exception& e) {
        md += fmt::format("## {}\n\n(section '{}' failed to render: {})\n\n", heading(sec, k), k, e.what());
        continue;
      }
      if (!rs_) continue;
      std::string title = sec.config.value("title", rs_->title);
      md += "## " + title + "\n\n" + rs_->markdown + "\n";
      for (auto& f : rs_->figures) out.figures.push_back(f);
      sections.push_back({{"kind", k}, {"title", title}, {"data", rs_->data}});
    }
  }
  r["sections"] = sections;
  out.markdown = md;
  return out;
}

namespace {

void clean_stale_report_tmp(const fs::path& exp_dir) {
  std::error_code ec;
  for (fs::directory_iterator it(exp_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.rfind(".tmp-", 0) != 0) continue;
    long pid = std::strtol(n.c_str() + 5, nullptr, 10);
    if (pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      fs::remove_all(it->path(), ec);
      ec.clear();
    }
  }
}

}  // namespace

fs::path write_report(const BuiltReport& report, const fs::path& reports_dir, const std::string& experiment,
                      const std::string& run_id, bool update_latest) {
  fs::path exp_dir = reports_dir / experiment;
  std::error_code ec;
  fs::create_directories(exp_dir, ec);
  if (ec) fail(ErrorKind::kRuntime, "cannot create report folder {}: {}", exp_dir.string(), ec.message());
  clean_stale_report_tmp(exp_dir);
  fs::path staging = exp_dir / (".tmp-" + unique_suffix());
  fs::create_directories(staging, ec);
  try {
    write_file_atomic(staging / "report.json", pretty_json(report.report));
    write_file_atomic(staging / "run.json", pretty_json(report.run));
    write_file_atomic(staging / "report.md", report.markdown);
    for (const auto& f : report.figures) {
      write_file_atomic(staging / "figures" / f.name, read_file(f.source));
    }
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fsync_directory(staging);
  std::string id = run_id;
  fs::path final_dir;
  for (int n = 1;; ++n) {
    final_dir = exp_dir / id;
    if (::rename(staging.c_str(), final_dir.c_str()) == 0) break;
    if ((errno != EEXIST && errno != ENOTEMPTY) || n > 100) {
      int err = errno;
      fs::remove_all(staging, ec);
      fail(ErrorKind::kRuntime, "cannot move the report into {}: {}", final_dir.string(), std::strerror(err));
    }
    id = fmt::format("{}-{}", run_id, n + 1);
  }
  fsync_directory(exp_dir);
  if (update_latest) {
    fs::path latest = exp_dir / "latest";
    if (fs::is_directory(latest, ec) && !fs::is_symlink(latest, ec)) {
      // A real folder named latest is not ours to replace.
    } else if (!replace_symlink_atomic(latest, id)) {
      write_file_atomic(latest, id + "\n");
    }
  }
  return final_dir;
}

}  // namespace qpipe
