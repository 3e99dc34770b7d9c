#pragma once
// Run reports: reports/<experiment>/<run-id>/{report.json, report.md, run.json,
// figures/} and reports/<experiment>/latest (a symlink to the newest run
// folder, replaced atomically; a plain file holding the run id where symlinks
// are refused). The run folder is assembled in a hidden staging folder and
// renamed into place, so a killed run never leaves a partial report.
//
// report.json (schema in docs/report-schema.md) is a pure function of the
// spec, the inputs and the results: byte-identical for any thread count and
// whether stages ran or were reused. Everything that varies between runs —
// run id, timestamps, thread count, wall times, throughput, cache hit/miss
// and why — is in run.json beside it (and shown in report.md).
//
// Report sections: see report_section.h. The framework renders summary,
// gates, failures, stages, environment, text, fragments, and registers the
// `eval` renderers milestone (the study's table: framework, data type,
// accuracy, delta vs baseline in pp, model size, size reduction) and
// per_class (every model's per-class accuracy side by side).

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "pipeline/cache.h"
#include "pipeline/dag.h"
#include "pipeline/gates.h"
#include "pipeline/report_section.h"
#include "pipeline/scheduler.h"
#include "pipeline/spec.h"

namespace qpipe {

inline constexpr const char* kReportSchemaVersion = "1";

struct RunInfo {
  std::string run_id;
  std::string started_utc;
  std::string finished_utc;
  double wall_seconds = 0;
  int threads = 1;
  bool force = false;
  std::string cache_dir;
};

struct ReportInputs {
  const Spec& spec;
  const Dag& dag;
  const StageRegistry& registry;
  const std::vector<StageRecord>& records;
  const std::vector<GateResult>& gates;
  const std::vector<nlohmann::json>& files;  // hash_path_params()
  const Cache& cache;
  RunInfo run;
  std::string status;  // passed | gates_failed | failed | interrupted
  int exit_code = 0;
};

struct BuiltReport {
  nlohmann::json report;  // report.json
  nlohmann::json run;     // run.json
  std::string markdown;   // report.md
  std::vector<Figure> figures;
};

BuiltReport build_report(const ReportInputs& in);

// Writes the run folder atomically and points `latest` at it. Returns the folder.
std::filesystem::path write_report(const BuiltReport& report, const std::filesystem::path& reports_dir,
                                   const std::string& experiment, const std::string& run_id, bool update_latest);

// "20261122T160102Z-ab12cd": UTC time + the first 6 hex digits of the spec hash.
std::string make_run_id(const std::string& spec_sha256, std::chrono::system_clock::time_point t);
std::string utc_timestamp(std::chrono::system_clock::time_point t);  // ISO 8601, seconds

// CPU model (/proc/cpuinfo), OS, qpipe version and git commit.
nlohmann::json environment_info();

// Registers the milestone and per_class section kinds (called by StageRegistry()).
void register_framework_sections(StageRegistry& registry);

// Percent with two decimals ("87.19%"), for report tables.
std::string percent(double fraction);

}  // namespace qpipe
