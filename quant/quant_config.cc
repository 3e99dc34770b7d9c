// QuantConfig: validation and JSON conversion.

#include "quant/quant_config.h"

#include <algorithm>

#include "engine/error.h"

namespace qpipe {

namespace {

using json = nlohmann::json;

void check_keys(const json& j, std::initializer_list<const char*> allowed, std::string_view where) {
  if (!j.is_object()) fail(ErrorKind::kSpec, "{}: expected a JSON/YAML mapping, got {}", where, j.type_name());
  for (const auto& [k, v] : j.items()) {
    bool ok = std::any_of(allowed.begin(), allowed.end(), [&](const char* a) { return k == a; });
    if (!ok) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      fail(ErrorKind::kSpec, "{}: unknown key '{}'; expected one of: {}", where, k, list);
    }
  }
}

bool get_bool(const json& j, const char* key, bool dflt, std::string_view where) {
  if (!j.contains(key)) return dflt;
  if (!j[key].is_boolean()) fail(ErrorKind::kSpec, "{}: '{}' must be true or false, got {}", where, key, j[key].dump());
  return j[key].get<bool>();
}

std::optional<bool> get_opt_bool(const json& j, const char* key, std::string_view where) {
  if (!j.contains(key) || j[key].is_null()) return std::nullopt;
  if (!j[key].is_boolean())
    fail(ErrorKind::kSpec, "{}: '{}' must be true, false or null, got {}", where, key, j[key].dump());
  return j[key].get<bool>();
}

std::string get_string(const json& j, const char* key, std::string dflt, std::string_view where) {
  if (!j.contains(key)) return dflt;
  if (!j[key].is_string()) fail(ErrorKind::kSpec, "{}: '{}' must be a string, got {}", where, key, j[key].dump());
  return j[key].get<std::string>();
}

std::vector<std::string> get_strings(const json& j, const char* key, std::string_view where) {
  std::vector<std::string> out;
  if (!j.contains(key) || j[key].is_null()) return out;
  const json& a = j[key];
  if (a.is_string()) return {a.get<std::string>()};
  if (!a.is_array()) fail(ErrorKind::kSpec, "{}: '{}' must be a list of strings, got {}", where, key, a.dump());
  for (const auto& e : a) {
    if (!e.is_string()) fail(ErrorKind::kSpec, "{}: '{}' must hold strings only, found {}", where, key, e.dump());
    out.push_back(e.get<std::string>());
  }
  return out;
}

QType act_or_weight_type(const std::string& s, const char* key, std::string_view where) {
  if (s != "int8" && s != "uint8")
    fail(ErrorKind::kSpec, "{}: '{}' is '{}'; expected int8 or uint8", where, key, s);
  return parse_qtype(s);
}

}  // namespace

const std::set<std::string>& quantizable_op_types() {
  static const std::set<std::string> ops = {"Conv",    "MatMul",  "Gemm",        "Add",         "Mul",
                                            "Relu",    "Clip",    "AveragePool", "MaxPool",     "Reshape",
                                            "Flatten", "Transpose", "Squeeze",   "Unsqueeze",   "Softmax",
                                            "GlobalAveragePool"};
  return ops;
}

CalibratorConfig QuantConfig::effective_calibration() const {
  CalibratorConfig c = calibration;
  c.qtype = activation_type;
  c.reduce_range = false;
  // MSE prices the error with the same choose_qparams the rewrite will use.
  if (!c.symmetric && c.method == CalibrationMethod::kMse) c.symmetric = activation_symmetric;
  return c;
}

bool QuantConfig::is_excluded(const std::string& node_name, const std::string& op_type) const {
  return std::find(exclude_nodes.begin(), exclude_nodes.end(), node_name) != exclude_nodes.end() ||
         std::find(exclude_op_types.begin(), exclude_op_types.end(), op_type) != exclude_op_types.end();
}

void QuantConfig::validate() const {
  if (activation_type == QType::kInt32)
    fail(ErrorKind::kSpec, "quantization config: activation_type int32 is not supported; expected int8 or uint8");
  if (weight_type == QType::kInt32)
    fail(ErrorKind::kSpec, "quantization config: weight_type int32 is not supported; expected int8 or uint8");
  effective_calibration().validate();
  if (calibration_conv_order != "ort" && calibration_conv_order != "qpipe")
    fail(ErrorKind::kSpec, "quantization config: calibration conv_order '{}'; expected ort or qpipe",
         calibration_conv_order);
  if (calibration_ort_threads < 1)
    fail(ErrorKind::kSpec, "quantization config: calibration ort_threads must be at least 1, got {}",
         calibration_ort_threads);
  for (const auto& n : exclude_nodes)
    if (n.empty()) fail(ErrorKind::kSpec, "quantization config: exclude_nodes holds an empty name");
}

nlohmann::json QuantConfig::to_json() const {
  json j;
  j["activation_type"] = qtype_name(activation_type);
  j["weight_type"] = qtype_name(weight_type);
  j["activation_symmetric"] = activation_symmetric;
  j["weight_symmetric"] = effective_weight_symmetric();
  j["per_channel"] = per_channel;
  j["reduce_range"] = reduce_range;
  const CalibratorConfig c = effective_calibration();
  json cal;
  cal["method"] = calibration_method_name(c.method);
  if (c.method == CalibrationMethod::kPercentile) cal["percentile"] = c.percentile;
  if (c.method != CalibrationMethod::kMinMax) cal["num_bins"] = c.effective_num_bins();
  if (c.method == CalibrationMethod::kEntropy) cal["num_quantized_bins"] = c.num_quantized_bins;
  cal["symmetric"] = c.effective_symmetric();
  cal["conv_order"] = calibration_conv_order;
  if (calibration_conv_order == "ort") cal["ort_threads"] = calibration_ort_threads;
  j["calibration"] = cal;
  std::vector<std::string> nodes = exclude_nodes, ops = exclude_op_types;
  std::sort(nodes.begin(), nodes.end());
  std::sort(ops.begin(), ops.end());
  j["exclude_nodes"] = nodes;
  j["exclude_op_types"] = ops;
  j["fold_activations"] = fold_activations;
  j["bias_correction"] = bias_correction;
  return j;
}

QuantConfig QuantConfig::from_json(const nlohmann::json& j, std::string_view where) {
  check_keys(j,
             {"activation_type", "weight_type", "activation_symmetric", "weight_symmetric", "per_channel",
              "reduce_range", "calibration", "exclude_nodes", "exclude_op_types", "fold_activations",
              "bias_correction"},
             where);
  QuantConfig c;
  c.activation_type = act_or_weight_type(get_string(j, "activation_type", "int8", where), "activation_type", where);
  c.weight_type = act_or_weight_type(get_string(j, "weight_type", "int8", where), "weight_type", where);
  c.activation_symmetric = get_bool(j, "activation_symmetric", false, where);
  c.weight_symmetric = get_opt_bool(j, "weight_symmetric", where);
  c.per_channel = get_bool(j, "per_channel", false, where);
  c.reduce_range = get_bool(j, "reduce_range", false, where);
  c.exclude_nodes = get_strings(j, "exclude_nodes", where);
  c.exclude_op_types = get_strings(j, "exclude_op_types", where);
  c.fold_activations = get_bool(j, "fold_activations", true, where);
  c.bias_correction = get_bool(j, "bias_correction", false, where);
  if (j.contains("calibration")) {
    const json& cj = j["calibration"];
    const std::string cw = std::string(where) + " › calibration";
    if (cj.is_string()) {
      c.calibration.method = parse_calibration_method(cj.get<std::string>());
    } else {
      check_keys(cj, {"method", "percentile", "num_bins", "num_quantized_bins", "symmetric", "conv_order", "ort_threads"},
                 cw);
      c.calibration.method = parse_calibration_method(get_string(cj, "method", "minmax", cw));
      if (cj.contains("percentile")) {
        if (!cj["percentile"].is_number())
          fail(ErrorKind::kSpec, "{}: 'percentile' must be a number, got {}", cw, cj["percentile"].dump());
        c.calibration.percentile = cj["percentile"].get<double>();
      }
      for (const char* k : {"num_bins", "num_quantized_bins"}) {
        if (!cj.contains(k)) continue;
        if (!cj[k].is_number_integer())
          fail(ErrorKind::kSpec, "{}: '{}' must be an integer, got {}", cw, k, cj[k].dump());
        (std::string(k) == "num_bins" ? c.calibration.num_bins : c.calibration.num_quantized_bins) = cj[k].get<int>();
      }
      c.calibration.symmetric = get_opt_bool(cj, "symmetric", cw);
      c.calibration_conv_order = get_string(cj, "conv_order", c.calibration_conv_order, cw);
      if (c.calibration_conv_order != "ort" && c.calibration_conv_order != "qpipe")
        fail(ErrorKind::kSpec, "{}: 'conv_order' is '{}'; expected ort or qpipe", cw, c.calibration_conv_order);
      if (cj.contains("ort_threads")) {
        if (!cj["ort_threads"].is_number_integer() || cj["ort_threads"].get<int64_t>() < 1 ||
            cj["ort_threads"].get<int64_t>() > 1024)
          fail(ErrorKind::kSpec, "{}: 'ort_threads' must be an integer in [1, 1024], got {}", cw,
               cj["ort_threads"].dump());
        c.calibration_ort_threads = cj["ort_threads"].get<int>();
      }
    }
  }
  c.validate();
  return c;
}

}  // namespace qpipe
