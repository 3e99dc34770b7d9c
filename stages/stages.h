#pragma once
// Production stage types, one per file in stages/; each file defines one
// make_<name>_stage() and stages/registry.cc lists them all.

#include <nlohmann/json.hpp>

#include "engine/io/cifar10.h"
#include "pipeline/stage_registry.h"

namespace qpipe::stages {

StageType make_dataset_stage();
StageType make_load_model_stage();
StageType make_evaluate_stage();
StageType make_quantize_stage();
StageType make_sqnr_stage();
StageType make_residual_stage();
StageType make_sensitivity_stage();
StageType make_distributions_stage();
StageType make_overflow_stage();
StageType make_sqnr_compare_stage();

// Opens the dataset a `dataset` artifact describes (stages/dataset.cc).
Cifar10Dataset open_dataset_artifact(const nlohmann::json& doc);

}  // namespace qpipe::stages
