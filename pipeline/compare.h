#pragma once
// `qpipe compare BASELINE.json CURRENT.json`: the nightly regression check.
// Reads the "metrics" of two report.json files (schema 1) and prints a
// Markdown diff per stage: overall accuracy, per-class accuracy, per-tensor
// SQNR, other metrics. A regression is
//   - an overall accuracy drop larger than `tolerance_pp` percentage points,
//   - a per-class accuracy drop larger than `class_tolerance_pp` (if set),
//   - an SQNR drop larger than `sqnr_tolerance_db` dB (if set),
//   - a stage or metric the baseline has and the current report lacks.
// Stages are matched by id, metrics by name.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace qpipe {

struct CompareOptions {
  double tolerance_pp = 0.5;
  double class_tolerance_pp = -1;  // < 0: per-class drops are shown, not judged
  double sqnr_tolerance_db = -1;   // < 0: SQNR drops are shown, not judged
};

struct CompareResult {
  std::string markdown;
  std::vector<std::string> regressions;  // one line each
  bool regression() const { return !regressions.empty(); }
};

// Throws PtqError(kInput) when a document is not a qpipe report (names `what`).
void check_report_document(const nlohmann::json& doc, const std::string& what);

CompareResult compare_reports(const nlohmann::json& baseline, const nlohmann::json& current, const CompareOptions& options,
                              const std::string& baseline_name = "baseline", const std::string& current_name = "current");

}  // namespace qpipe
