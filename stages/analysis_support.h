#pragma once
// Shared plumbing of the analysis stages (sqnr, residual, sensitivity,
// distributions, overflow): the FP32 / QDQ model pair and the images they
// are compared on, and the JSON "report" fragment every analysis contributes.

#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "engine/graph.h"
#include "pipeline/stage_context.h"
#include "pipeline/stage_registry.h"
#include "quant/analysis/common.h"
#include "quant/analysis/qdq_graph.h"

namespace qpipe::stages {

struct AnalysisInputs {
  Model fp32;
  std::unique_ptr<analysis::QdqGraph> qdq;
  Cifar10Dataset dataset;
  analysis::AnalysisData data;
  std::string qdq_label;  // what the report calls the QDQ model
};

// Reads the `fp32`, `qdq` and `data` inputs; `max_samples` (when declared and
// set) limits the images.
AnalysisInputs load_analysis_inputs(StageContext& ctx);

// The ports and params every analysis stage declares.
void declare_analysis_ports(StageType& t, const std::string& result_type, bool figure);

// Adds {"report": {title, markdown, figures}} to an analysis document.
void attach_report(nlohmann::json& doc, const std::string& title, const std::string& markdown, bool figure);

}  // namespace qpipe::stages
