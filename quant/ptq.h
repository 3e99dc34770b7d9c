#pragma once
// One post-training quantization run end to end, for the CLI (`qpipe
// quantize`) and pipeline stages:
//
//   plan_qdq → calibrate the planned activations on the FP32 model (skipping
//   tensors whose parameters an override fixes) → build_qdq (+ overrides) →
//   optional empirical bias correction → QDQ model + every parameter chosen.
//
// The calibration images are the caller's (see load_calibration_images in
// quant/calibrate.h for the study's CIFAR-10 recipe).

#include <nlohmann/json.hpp>

#include "engine/graph.h"
#include "quant/bias_correction.h"
#include "quant/calibrate.h"
#include "quant/overrides.h"
#include "quant/qdq_rewrite.h"
#include "quant/quant_config.h"

namespace qpipe {

struct PtqOptions {
  QuantConfig config;
  int64_t batch = 50;                         // images per session run (calibration, bias correction)
  const TensorOverrides* overrides = nullptr;  // optional
};

struct PtqResult {
  QdqPlan plan;
  QdqResult qdq;                 // the quantized model and its parameters
  CalibrationResult calibration;  // tensors actually calibrated
  BiasCorrectionReport bias_correction;

  // {"config", "calibration", "params", "bias_correction"} (sorted keys when dumped).
  nlohmann::json to_json(const QuantConfig& config) const;
};

// Needs images (float32 [N, ...]) unless every calibrated tensor is
// overridden and bias correction is off (then `images` may be empty).
PtqResult run_ptq(const Model& fp32, const Tensor& images, const PtqOptions& options);

}  // namespace qpipe
