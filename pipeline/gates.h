#pragma once
// Gates: the CI checks of an experiment (spec key `gates`). Each gate applies
// to one or more stages (its metric's stage, or `for_each`), reads a value
// from the stage's JSON output by a path (overall.accuracy,
// per_class[class_name=dog].accuracy, per_class[*].accuracy — one check per
// element), optionally turns it into a drop in percentage points against a
// baseline stage (`drop_vs`), and compares it with the required value.
// A check on a stage that did not succeed, or whose output lacks the metric,
// fails with the reason. `qpipe run` exits with ErrorKind::kGateFailed when any
// check fails.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "pipeline/scheduler.h"
#include "pipeline/spec.h"

namespace qpipe {

struct GateResult {
  std::string gate;      // gate name
  std::string stage;     // stage id the check applies to
  std::string metric;    // e.g. "eval_q[act=int8].per_class[class_name=dog].accuracy"
  std::string op;
  nlohmann::json measured;  // null when not measured
  nlohmann::json required;
  bool passed = false;
  std::string note;      // why not measured; "drop vs <stage> in pp" etc.
};

std::vector<GateResult> evaluate_gates(const Spec& spec, const std::vector<StageRecord>& records);

// "gate 'x': eval.overall.accuracy = 0.8412, required >= 0.85 (FAIL)"
std::string describe_gate_result(const GateResult& r);

// Shortest round-trip text of a JSON number/scalar (as in report.json).
std::string json_scalar_text(const nlohmann::json& v);

}  // namespace qpipe
