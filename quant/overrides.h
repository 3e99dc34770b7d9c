#pragma once
// Quantization-parameter overrides: replace the scale / zero point the rewrite
// would compute for chosen tensors — to reproduce a published model exactly,
// or for what-if experiments (multiply one tensor's scale by k, move a zero
// point, re-evaluate).
//
// qpipe's format (JSON; keys are tensor names of the FP32 model — for a
// folded Relu/Clip the activation's output name, for weights, biases and
// Mul/Add constants the initializer name):
//
//   {
//     "format": "qpipe-overrides/1",
//     "tensors": {
//       "conv2d":        {"scale": 0.0457, "zero_point": -15},
//       "conv2d/kernel": {"scale": [0.01, 0.02, ...], "zero_point": [0, 0, ...]},   // per channel
//       "activation_3":  {"scale_factor": 2.0},                 // ×2 on the computed (or given) scale
//       "batch_normalization_4": {"zero_point_shift": -3}       // added to the zero point, then clamped
//     }
//   }
// "scale" and "zero_point" must come together; either may be a number or a
// list (one value per channel; a list of one value is per tensor).
// "scale_factor" (> 0, default 1) and "zero_point_shift" (default 0) apply
// after the base parameters are chosen, so they combine with calibration or
// with a given scale.
//
// The study's format (../shared/reference/ort_int8_quant_params.json: ORT's
// Q/DQ operations with tf2onnx tensor names) is read together with a name map
// (../shared/reference/ort_tensor_name_map.json, {"map": {study name → FP32
// model name}}): every QuantizeLinear gives the parameters of its input
// tensor; every DequantizeLinear whose input is a "<name>_quantized"
// initializer gives those of the constant <name>. Names missing from the map
// are an error.

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qpipe {

struct TensorOverride {
  std::vector<float> scale;         // empty: keep computed
  std::vector<int32_t> zero_point;  // same length as scale
  double scale_factor = 1.0;
  int32_t zero_point_shift = 0;

  bool has_params() const { return !scale.empty(); }
};

struct TensorOverrides {
  std::map<std::string, TensorOverride> tensors;
  std::string source;  // file(s) it came from, for messages and reports

  const TensorOverride* find(const std::string& name) const {
    auto it = tensors.find(name);
    return it == tensors.end() ? nullptr : &it->second;
  }
  nlohmann::json to_json() const;  // qpipe's format
};

// qpipe's format from parsed JSON; `where` names the origin.
TensorOverrides parse_overrides(const nlohmann::json& j, std::string_view where);
// The study's params file + name map, both parsed.
TensorOverrides parse_ort_quant_params(const nlohmann::json& params, const nlohmann::json& name_map,
                                       std::string_view where);

// Reads a file: qpipe's format, or — when `name_map_path` is given — the
// study's format. Missing/garbled files are PtqError(kInput) naming the file.
TensorOverrides load_overrides(const std::string& path, const std::string& name_map_path = "");

}  // namespace qpipe
