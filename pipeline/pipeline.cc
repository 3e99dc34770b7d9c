#include "pipeline/pipeline.h"

#include <oneapi/tbb/info.h>

#include <cstdlib>
#include <set>

#include "pipeline/text_util.h"

namespace qpipe {
namespace fs = std::filesystem;
using nlohmann::json;

Experiment load_experiment(const fs::path& spec_file, const StageRegistry& registry) {
  Diagnostics diag;
  Experiment e;
  e.spec = load_spec(spec_file, registry, diag);
  if (!e.spec.stages.empty()) e.dag = build_dag(e.spec, registry, diag);
  diag.throw_if_any(ErrorKind::kSpec, spec_file.string());
  return e;
}

fs::path default_cache_dir(const Spec& spec) {
  if (const char* d = std::getenv("QPIPE_CACHE_DIR"); d && *d) return d;
  return spec.paths.repo_root / ".qpipe-cache";
}

fs::path default_reports_dir(const Spec& spec) { return spec.paths.repo_root / "reports"; }

int effective_threads(int requested, const Spec& spec) {
  if (requested > 0) return requested;
  if (spec.settings.threads > 0) return spec.settings.threads;
  return std::max(1, tbb::info::default_concurrency());
}

RunResult run_experiment(const Experiment& exp, const StageRegistry& registry, const RunOptions& options, Logger& log) {
  const Spec& spec = exp.spec;
  auto t_start = std::chrono::system_clock::now();
  auto steady_start = std::chrono::steady_clock::now();
  RunResult res;
  res.threads = effective_threads(options.threads, spec);
  Cache cache(options.cache_dir.empty() ? default_cache_dir(spec) : options.cache_dir);
  if (int n = cache.clean_stale(); n > 0) log.info(fmt::format("removed {} staging folder(s) left by an interrupted run", n));
  log.info(fmt::format("experiment '{}': {} stages, {} thread{}, cache {}", spec.experiment, spec.stages.size(), res.threads,
                       res.threads == 1 ? "" : "s", cache.dir().string()));
  std::vector<json> files = hash_path_params(spec, cache);

  SchedulerOptions so;
  so.threads = res.threads;
  so.force = options.force;
  so.batch_size = spec.settings.batch_size;
  so.cancel = options.cancel;
  so.events = &log;
  so.observers.push_back(&log);
  res.records = run_stages(spec, exp.dag, registry, cache, files, so);
  res.gates = evaluate_gates(spec, res.records);

  bool interrupted = options.cancel && options.cancel->load();
  std::vector<const StageRecord*> failed;
  for (const auto& r : res.records) {
    if (r.status == StageStatus::kFailed) failed.push_back(&r);
    if (r.status == StageStatus::kCancelled) interrupted = true;
  }
  bool gates_ok = true;
  for (const auto& g : res.gates) gates_ok = gates_ok && g.passed;
  if (interrupted) {
    res.status = "interrupted";
    res.exit_code = exit_code(ErrorKind::kInterrupted);
  } else if (!failed.empty()) {
    res.status = "failed";
    ErrorKind k = failed.front()->error_kind;
    bool same = true;
    for (const auto* f : failed) same = same && f->error_kind == k;
    bool input_like = k == ErrorKind::kInput || k == ErrorKind::kUnsupported || k == ErrorKind::kSpec;
    res.exit_code = exit_code(same && input_like ? k : ErrorKind::kRuntime);
  } else if (!gates_ok) {
    res.status = "gates_failed";
    res.exit_code = exit_code(ErrorKind::kGateFailed);
  } else {
    res.status = "passed";
    res.exit_code = 0;
  }

  auto t_end = std::chrono::system_clock::now();
  RunInfo info;
  info.run_id = make_run_id(spec.sha256, t_start);
  info.started_utc = utc_timestamp(t_start);
  info.finished_utc = utc_timestamp(t_end);
  info.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - steady_start).count();
  info.threads = res.threads;
  info.force = options.force;
  info.cache_dir = cache.dir().string();
  res.report = build_report(ReportInputs{spec, exp.dag, registry, res.records, res.gates, files, cache, info, res.status,
                                         res.exit_code});
  if (options.write_report) {
    fs::path reports = options.reports_dir.empty() ? default_reports_dir(spec) : options.reports_dir;
    res.report_dir = write_report(res.report, reports, spec.experiment, info.run_id, !interrupted);
  }
  return res;
}

std::string plan_experiment(const Experiment& exp, const StageRegistry& registry, const RunOptions& options, bool dot) {
  const Spec& spec = exp.spec;
  Cache cache(options.cache_dir.empty() ? default_cache_dir(spec) : options.cache_dir);
  std::vector<json> files = hash_path_params(spec, cache);
  std::vector<PlanEntry> plan = plan_stages(spec, exp.dag, registry, cache, files, options.force);
  if (dot) {
    std::vector<std::string> notes;
    std::vector<bool> reused;
    for (const auto& p : plan) {
      notes.push_back(p.reuse ? "reuse" : "run");
      reused.push_back(p.reuse);
    }
    return dag_to_dot(spec, exp.dag, &notes, &reused);
  }
  std::size_t w_id = 5, w_type = 4;
  for (const auto& s : spec.stages) {
    w_id = std::max(w_id, s.id.size());
    w_type = std::max(w_type, s.type.size());
  }
  int runs = 0;
  for (const auto& p : plan) runs += !p.reuse;
  std::string out = fmt::format("experiment '{}': {} stages, {} to run, {} reused (cache {})\n\n", spec.experiment,
                                spec.stages.size(), runs, spec.stages.size() - runs, cache.dir().string());
  for (std::size_t i : exp.dag.topo) {
    const StageSpec& s = spec.stages[i];
    out += fmt::format("  {:<{}}  {:<{}}  {:<5}  {}\n", s.id, w_id, s.type, w_type, plan[i].reuse ? "reuse" : "run",
                       plan[i].reason);
    std::string deps;
    for (const auto& [port, ins] : exp.dag.nodes[i].inputs) {
      for (const auto& in : ins) deps += fmt::format("{}{}={}.{}", deps.empty() ? "" : ", ", port, spec.stages[in.producer].id, in.port);
    }
    std::set<std::size_t> via_inputs;
    for (const auto& [port, ins] : exp.dag.nodes[i].inputs) {
      for (const auto& in : ins) via_inputs.insert(in.producer);
    }
    for (std::size_t d : exp.dag.nodes[i].deps) {
      if (!via_inputs.count(d)) deps += fmt::format("{}after {}", deps.empty() ? "" : ", ", spec.stages[d].id);
    }
    if (!deps.empty()) out += fmt::format("  {:<{}}  <- {}\n", "", w_id, deps);
  }
  return out;
}

}  // namespace qpipe
