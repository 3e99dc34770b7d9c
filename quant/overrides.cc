// Quantization-parameter overrides: qpipe's JSON format and the study's ORT
// params file + name map.

#include "quant/overrides.h"

#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/error.h"

namespace qpipe {

namespace {

using json = nlohmann::json;

json read_json_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kInput, "{}: cannot open {} (expected a JSON file)", path, what);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return json::parse(ss.str());
  } catch (const json::parse_error& e) {
    fail(ErrorKind::kInput, "{}: {} is not valid JSON: {}", path, what, e.what());
  }
}

std::vector<float> floats_of(const json& v, std::string_view where, const std::string& key) {
  std::vector<float> out;
  auto one = [&](const json& e) {
    if (!e.is_number()) fail(ErrorKind::kInput, "{}: '{}' must be a number or a list of numbers, got {}", where, key, e.dump());
    const double d = e.get<double>();
    if (!std::isfinite(d) || !(d > 0.0))
      fail(ErrorKind::kInput, "{}: '{}' value {} is invalid; expected a finite number > 0", where, key, e.dump());
    out.push_back(static_cast<float>(d));
  };
  if (v.is_array()) {
    if (v.empty()) fail(ErrorKind::kInput, "{}: '{}' is an empty list", where, key);
    for (const auto& e : v) one(e);
  } else {
    one(v);
  }
  return out;
}

std::vector<int32_t> ints_of(const json& v, std::string_view where, const std::string& key) {
  std::vector<int32_t> out;
  auto one = [&](const json& e) {
    if (!e.is_number_integer())
      fail(ErrorKind::kInput, "{}: '{}' must be an integer or a list of integers, got {}", where, key, e.dump());
    const int64_t i = e.get<int64_t>();
    if (i < std::numeric_limits<int32_t>::min() || i > std::numeric_limits<int32_t>::max())
      fail(ErrorKind::kInput, "{}: '{}' value {} does not fit int32", where, key, i);
    out.push_back(static_cast<int32_t>(i));
  };
  if (v.is_array()) {
    if (v.empty()) fail(ErrorKind::kInput, "{}: '{}' is an empty list", where, key);
    for (const auto& e : v) one(e);
  } else {
    one(v);
  }
  return out;
}

TensorOverride parse_one(const std::string& name, const json& v, std::string_view where) {
  const std::string w = fmt::format("{} › tensors › '{}'", where, name);
  if (!v.is_object()) fail(ErrorKind::kInput, "{}: expected an object with scale/zero_point, got {}", w, v.dump());
  TensorOverride o;
  for (const auto& [k, e] : v.items()) {
    if (k == "scale") {
      o.scale = floats_of(e, w, k);
    } else if (k == "zero_point") {
      o.zero_point = ints_of(e, w, k);
    } else if (k == "scale_factor") {
      if (!e.is_number() || !std::isfinite(e.get<double>()) || !(e.get<double>() > 0.0))
        fail(ErrorKind::kInput, "{}: 'scale_factor' must be a finite number > 0, got {}", w, e.dump());
      o.scale_factor = e.get<double>();
    } else if (k == "zero_point_shift") {
      o.zero_point_shift = ints_of(e, w, k).at(0);
      if (e.is_array()) fail(ErrorKind::kInput, "{}: 'zero_point_shift' must be one integer", w);
    } else {
      fail(ErrorKind::kInput, "{}: unknown key '{}'; expected scale, zero_point, scale_factor, zero_point_shift", w, k);
    }
  }
  if (o.scale.empty() != o.zero_point.empty())
    fail(ErrorKind::kInput, "{}: 'scale' and 'zero_point' must be given together", w);
  if (o.scale.size() != o.zero_point.size())
    fail(ErrorKind::kInput, "{}: 'scale' has {} values but 'zero_point' has {}", w, o.scale.size(),
         o.zero_point.size());
  return o;
}

// A scale/zero point entry of the study's file: a number or a list of one.
template <typename T>
std::vector<T> study_values(const json& v, std::string_view where, const std::string& key) {
  if constexpr (std::is_same_v<T, float>) return floats_of(v, where, key);
  else return ints_of(v, where, key);
}

}  // namespace

nlohmann::json TensorOverrides::to_json() const {
  json t = json::object();
  for (const auto& [name, o] : tensors) {
    json e = json::object();
    if (o.has_params()) {
      if (o.scale.size() == 1) {
        e["scale"] = o.scale[0];
        e["zero_point"] = o.zero_point[0];
      } else {
        e["scale"] = o.scale;
        e["zero_point"] = o.zero_point;
      }
    }
    if (o.scale_factor != 1.0) e["scale_factor"] = o.scale_factor;
    if (o.zero_point_shift != 0) e["zero_point_shift"] = o.zero_point_shift;
    t[name] = e;
  }
  return json{{"format", "qpipe-overrides/1"}, {"tensors", t}};
}

TensorOverrides parse_overrides(const nlohmann::json& j, std::string_view where) {
  if (!j.is_object()) fail(ErrorKind::kInput, "{}: expected a JSON object, got {}", where, j.type_name());
  for (const auto& [k, v] : j.items())
    if (k != "format" && k != "tensors" && k != "about")
      fail(ErrorKind::kInput, "{}: unknown key '{}'; expected format, tensors (and optional about)", where, k);
  if (j.contains("format") && j["format"] != "qpipe-overrides/1")
    fail(ErrorKind::kInput, "{}: format is {}; expected \"qpipe-overrides/1\"", where, j["format"].dump());
  if (!j.contains("tensors") || !j["tensors"].is_object())
    fail(ErrorKind::kInput, "{}: expected a 'tensors' object mapping tensor names to {{scale, zero_point}}", where);
  TensorOverrides out;
  out.source = std::string(where);
  for (const auto& [name, v] : j["tensors"].items()) out.tensors[name] = parse_one(name, v, where);
  return out;
}

TensorOverrides parse_ort_quant_params(const nlohmann::json& params, const nlohmann::json& name_map,
                                       std::string_view where) {
  if (!name_map.is_object() || !name_map.contains("map") || !name_map["map"].is_object())
    fail(ErrorKind::kInput, "{}: name map must be an object with a 'map' object (study name → model name)", where);
  if (!params.is_object() || !params.contains("operations") || !params["operations"].is_array())
    fail(ErrorKind::kInput, "{}: params file must be an object with an 'operations' list", where);
  const json& map = name_map["map"];
  TensorOverrides out;
  out.source = std::string(where);
  std::vector<std::string> unmapped;

  auto add = [&](const std::string& study_name, const json& op, std::size_t idx) {
    const std::string w = fmt::format("{} › operations[{}] ('{}')", where, idx, op.value("name", std::string("?")));
    const json& inputs = op["inputs"];
    if (!inputs.is_array() || inputs.size() < 3)
      fail(ErrorKind::kInput, "{}: expected 3 inputs (x, scale, zero_point)", w);
    const std::string scale_key = inputs[1].get<std::string>(), zp_key = inputs[2].get<std::string>();
    if (!op.contains("scales") || !op["scales"].contains(scale_key))
      fail(ErrorKind::kInput, "{}: 'scales' has no entry '{}'", w, scale_key);
    if (!op.contains("zero_points") || !op["zero_points"].contains(zp_key))
      fail(ErrorKind::kInput, "{}: 'zero_points' has no entry '{}'", w, zp_key);
    if (!map.contains(study_name)) {
      unmapped.push_back(study_name);
      return;
    }
    const std::string name = map[study_name].get<std::string>();
    TensorOverride o;
    o.scale = study_values<float>(op["scales"][scale_key], w, scale_key);
    o.zero_point = study_values<int32_t>(op["zero_points"][zp_key], w, zp_key);
    if (o.zero_point.size() == 1 && o.scale.size() > 1) o.zero_point.resize(o.scale.size(), o.zero_point[0]);
    if (o.scale.size() != o.zero_point.size())
      fail(ErrorKind::kInput, "{}: {} scales but {} zero points", w, o.scale.size(), o.zero_point.size());
    auto [it, inserted] = out.tensors.emplace(name, o);
    if (!inserted && (it->second.scale != o.scale || it->second.zero_point != o.zero_point))
      fail(ErrorKind::kInput, "{}: tensor '{}' ('{}') is given two different parameter sets", w, name, study_name);
  };

  const json& ops = params["operations"];
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const json& op = ops[i];
    const std::string type = op.value("op_type", std::string());
    if (!op.contains("inputs") || !op["inputs"].is_array() || op["inputs"].empty()) continue;
    const std::string x = op["inputs"][0].get<std::string>();
    if (type == "QuantizeLinear") {
      add(x, op, i);
    } else if (type == "DequantizeLinear") {
      static const std::string kSuffix = "_quantized";
      if (x.size() > kSuffix.size() && x.compare(x.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0)
        add(x.substr(0, x.size() - kSuffix.size()), op, i);
    }
  }
  if (!unmapped.empty()) {
    std::string list;
    for (const auto& u : unmapped) list += (list.empty() ? "'" : ", '") + u + "'";
    fail(ErrorKind::kInput, "{}: {} tensor name(s) are not in the name map: {}", where, unmapped.size(), list);
  }
  if (out.tensors.empty()) fail(ErrorKind::kInput, "{}: no QuantizeLinear/DequantizeLinear parameters found", where);
  return out;
}

TensorOverrides load_overrides(const std::string& path, const std::string& name_map_path) {
  json j = read_json_file(path, "the overrides file");
  if (name_map_path.empty()) {
    if (j.is_object() && j.contains("operations"))
      fail(ErrorKind::kInput,
           "{}: this is an ORT quantization-params file (it has 'operations'); give its name map too "
           "(--name-map, e.g. ../shared/reference/ort_tensor_name_map.json)",
           path);
    return parse_overrides(j, path);
  }
  json m = read_json_file(name_map_path, "the name map");
  return parse_ort_quant_params(j, m, path + " + " + name_map_path);
}

}  // namespace qpipe
