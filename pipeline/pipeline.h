#pragma once
// The front door used by `qpipe run` / `qpipe plan` (and by tests):
// load + validate (spec and DAG errors reported together), hash the input
// files, plan or run on the scheduler, evaluate gates, write the report, and
// decide the exit code:
//   0 every stage succeeded and every gate holds
//   ErrorKind::kSpec (3)       the spec is invalid (nothing ran)
//   ErrorKind::kInput (4)      a file named by the spec is missing (nothing ran), or
//                              the failing stages all failed on bad input (corrupt model, ...)
//   ErrorKind::kUnsupported (5) likewise, for models qpipe cannot run
//   ErrorKind::kRuntime (8)    a stage failed
//   ErrorKind::kGateFailed (6) every stage succeeded but a gate check failed
//   130                        interrupted (SIGINT); finished stages stay cached

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/cache.h"
#include "pipeline/dag.h"
#include "pipeline/gates.h"
#include "pipeline/log.h"
#include "pipeline/report.h"
#include "pipeline/scheduler.h"
#include "pipeline/spec.h"

namespace qpipe {

struct Experiment {
  Spec spec;
  Dag dag;
};

// Loads the spec and builds the DAG; throws one PtqError(kSpec) listing every
// spec and graph problem.
Experiment load_experiment(const std::filesystem::path& spec_file, const StageRegistry& registry);

struct RunOptions {
  int threads = 0;  // 0: the spec's settings.threads, else all cores
  bool force = false;
  std::filesystem::path cache_dir;    // empty: $QPIPE_CACHE_DIR, else <repo>/.qpipe-cache
  std::filesystem::path reports_dir;  // empty: <repo>/reports
  bool write_report = true;
  const std::atomic<bool>* cancel = nullptr;
};

struct RunResult {
  int exit_code = 0;
  std::string status;  // passed | gates_failed | failed | interrupted
  std::filesystem::path report_dir;  // empty when no report was written
  BuiltReport report;
  std::vector<StageRecord> records;
  std::vector<GateResult> gates;
  int threads = 1;
};

std::filesystem::path default_cache_dir(const Spec& spec);
std::filesystem::path default_reports_dir(const Spec& spec);
int effective_threads(int requested, const Spec& spec);

// Runs a loaded experiment. Throws PtqError(kInput) when input files are
// missing; stage failures are results, not exceptions.
RunResult run_experiment(const Experiment& exp, const StageRegistry& registry, const RunOptions& options, Logger& log);

// The plan as text (one line per stage in topological order: id, type,
// run/reuse and why, inputs) or DOT.
std::string plan_experiment(const Experiment& exp, const StageRegistry& registry, const RunOptions& options, bool dot);

}  // namespace qpipe
