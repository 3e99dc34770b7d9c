#pragma once
// The configuration of one post-training quantization run: target types,
// symmetric flags, per-channel weights, calibration method and parameters,
// what to keep in FP32, and bias correction. Defaults reproduce ONNX
// Runtime's quantize_static in QDQ format (int8 activations asymmetric, int8
// weights symmetric per tensor, MinMax, Relu/Clip folded into the producer's
// QuantizeLinear).
//
// JSON form (every key optional; unknown keys are a kSpec error naming the
// key and the place, so a typo never silently falls back to a default):
//
//   {
//     "activation_type": "int8" | "uint8",
//     "weight_type": "int8" | "uint8",
//     "activation_symmetric": false,
//     "weight_symmetric": null | true | false,   // null: int8 → true, uint8 → false (ORT)
//     "per_channel": false,                      // Conv axis 0, MatMul/Gemm B axis 1
//     "reduce_range": false,                     // weights only (7-bit ranges), as ORT
//     "calibration": {"method": "minmax" | "percentile" | "entropy" | "mse",
//                     "percentile": 99.999, "num_bins": 0, "num_quantized_bins": 128,
//                     "symmetric": null | true | false,
//                     "conv_order": "ort" | "qpipe",     // summation order of the FP32 convs
//                     "ort_threads": 2},                 // ORT intra-op threads modelled by "ort"
//     "exclude_nodes": ["node name", ...],       // kept FP32
//     "exclude_op_types": ["Softmax", ...],      // kept FP32
//     "fold_activations": true,                  // fold Relu/Clip into the producer's Q (ORT)
//     "bias_correction": false                   // empirical, per Conv output channel
//   }
// YAML specs are converted to nlohmann::json by the pipeline before parsing.

#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "quant/calibrators/calibrator.h"
#include "quant/qparams.h"

namespace qpipe {

struct QuantConfig {
  QType activation_type = QType::kInt8;
  QType weight_type = QType::kInt8;
  bool activation_symmetric = false;
  std::optional<bool> weight_symmetric;  // unset → ORT default for weight_type
  bool per_channel = false;
  bool reduce_range = false;
  CalibratorConfig calibration;  // its qtype/reduce_range are synced to the fields above
  std::vector<std::string> exclude_nodes;
  std::vector<std::string> exclude_op_types;
  bool fold_activations = true;
  bool bias_correction = false;
  // How calibration computes the FP32 activations: "ort" in ONNX Runtime's
  // MLAS summation order for `calibration_ort_threads` intra-op threads, one
  // image per run, as quantize_static does (engine/kernels/ort_order_conv.h);
  // "qpipe" with the engine's own (faster, fused) kernels. The two differ in
  // the last bits of activations, so in the last ulp of some scales.
  std::string calibration_conv_order = "ort";
  int calibration_ort_threads = 2;

  // ORT: int8 weights symmetric, uint8 weights asymmetric.
  bool effective_weight_symmetric() const {
    return weight_symmetric.value_or(weight_type == QType::kInt8);
  }
  // The calibrator configuration with qtype/reduce_range taken from this
  // config (activations are never reduce_range, as ORT).
  CalibratorConfig effective_calibration() const;
  bool is_excluded(const std::string& node_name, const std::string& op_type) const;

  // kSpec errors naming the field.
  void validate() const;
  // Canonical JSON (effective values, sorted keys when dumped).
  nlohmann::json to_json() const;
  // `where` names the origin for messages (e.g. "spec.yaml › exp1 › quantize").
  static QuantConfig from_json(const nlohmann::json& j, std::string_view where = "quantization config");
};

// Op types ORT's QDQ quantizer handles for this op set (anything else stays
// FP32 and is left untouched).
const std::set<std::string>& quantizable_op_types();

}  // namespace qpipe
