// Calibrator configuration, the shared base-class behaviour, and the factory.

#include "quant/calibrators/calibrator.h"

#include <cmath>
#include <typeinfo>

#include "engine/error.h"

namespace qpipe {

namespace {
// Upper bounds on num_bins: percentile is linear in the bin count, entropy is
// quadratic and mse is linear per candidate (1024 candidates).
constexpr int kMaxBins = 1 << 22;
constexpr int kMaxSearchBins = 1 << 16;
}

const char* calibration_method_name(CalibrationMethod m) {
  switch (m) {
    case CalibrationMethod::kMinMax: return "minmax";
    case CalibrationMethod::kPercentile: return "percentile";
    case CalibrationMethod::kEntropy: return "entropy";
    case CalibrationMethod::kMse: return "mse";
  }
  return "?";
}

CalibrationMethod parse_calibration_method(std::string_view name) {
  for (CalibrationMethod m : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
                              CalibrationMethod::kMse})
    if (name == calibration_method_name(m)) return m;
  fail(ErrorKind::kSpec, "unknown calibration method '{}': expected one of minmax, percentile, entropy, mse", name);
}

int CalibratorConfig::effective_num_bins() const {
  if (num_bins > 0) return num_bins;
  switch (method) {
    case CalibrationMethod::kPercentile: return 2048;  // ORT create_calibrator default
    case CalibrationMethod::kEntropy: return 128;      // ORT create_calibrator default
    case CalibrationMethod::kMse: return 2048;
    case CalibrationMethod::kMinMax: return 0;
  }
  return 0;
}

bool CalibratorConfig::effective_symmetric() const {
  if (symmetric) return *symmetric;
  // ORT: CalibTensorRangeSymmetric defaults to True for percentile only.
  return method == CalibrationMethod::kPercentile;
}

void CalibratorConfig::validate() const {
  const char* name = calibration_method_name(method);
  if (method == CalibrationMethod::kPercentile && (!std::isfinite(percentile) || percentile < 0.0 || percentile > 100.0))
    fail(ErrorKind::kSpec, "calibration '{}': percentile {} is invalid; expected a number in [0, 100]", name,
         percentile);
  if (method != CalibrationMethod::kMinMax) {
    const int cap = method == CalibrationMethod::kPercentile ? kMaxBins : kMaxSearchBins;
    if (num_bins < 0 || num_bins > cap)
      fail(ErrorKind::kSpec, "calibration '{}': num_bins {} is invalid; expected 1..{} (or 0 for the default)", name,
           num_bins, cap);
  }
  if (method == CalibrationMethod::kEntropy) {
    if (num_quantized_bins < 1 || num_quantized_bins > kMaxBins)
      fail(ErrorKind::kSpec, "calibration 'entropy': num_quantized_bins {} is invalid; expected 1..{}",
           num_quantized_bins, kMaxBins);
    if (effective_num_bins() / 2 < num_quantized_bins / 2)
      fail(ErrorKind::kSpec,
           "calibration 'entropy': num_bins {} is too small for num_quantized_bins {}; expected num_bins >= "
           "num_quantized_bins",
           effective_num_bins(), num_quantized_bins);
  }
  if (method == CalibrationMethod::kMse && qtype == QType::kInt32)
    fail(ErrorKind::kSpec, "calibration 'mse': qtype int32 is not an activation type; expected int8 or uint8");
}

CalibratorConfig CalibratorConfig::range_pass_config() const {
  CalibratorConfig c;
  c.method = CalibrationMethod::kMinMax;
  c.symmetric = false;
  c.qtype = qtype;
  return c;
}

nlohmann::json CalibratorConfig::to_json() const {
  nlohmann::json j;
  j["method"] = calibration_method_name(method);
  j["symmetric"] = effective_symmetric();
  switch (method) {
    case CalibrationMethod::kMinMax: break;
    case CalibrationMethod::kPercentile:
      j["percentile"] = percentile;
      j["num_bins"] = effective_num_bins();
      break;
    case CalibrationMethod::kEntropy:
      j["num_bins"] = effective_num_bins();
      j["num_quantized_bins"] = num_quantized_bins;
      break;
    case CalibrationMethod::kMse:
      j["num_bins"] = effective_num_bins();
      j["qtype"] = qtype_name(qtype);
      j["reduce_range"] = reduce_range;
      break;
  }
  return j;
}

nlohmann::json Calibrator::describe() const {
  nlohmann::json j;
  j["method"] = calibration_method_name(config_.method);
  j["config"] = config_.to_json();
  j["count"] = count_;
  j["nan_count"] = nan_count_;
  if (count_ > 0 && has_range()) {
    const Range r = range();
    j["range"] = {{"min", static_cast<double>(r.min)}, {"max", static_cast<double>(r.max)}};
  }
  return j;
}

void Calibrator::set_range(float min, float max) {
  fail(ErrorKind::kRuntime,
       "{} calibrator: set_range({}, {}) called, but this method takes no range pass (needs_range_pass() is false)",
       calibration_method_name(config_.method), min, max);
}

void Calibrator::check_mergeable(const Calibrator& other) const {
  if (&other == this)
    fail(ErrorKind::kRuntime, "{} calibrator: cannot merge a calibrator into itself",
         calibration_method_name(config_.method));
  if (typeid(*this) != typeid(other) || config_.to_json() != other.config_.to_json())
    fail(ErrorKind::kRuntime,
         "cannot merge calibrator {} into calibrator {}: the configurations differ; merge only clones made with "
         "clone_empty()",
         other.config_.to_json().dump(), config_.to_json().dump());
}

std::unique_ptr<Calibrator> make_calibrator(const CalibratorConfig& config) {
  config.validate();
  switch (config.method) {
    case CalibrationMethod::kMinMax: return make_minmax_calibrator(config);
    case CalibrationMethod::kPercentile: return make_percentile_calibrator(config);
    case CalibrationMethod::kEntropy: return make_entropy_calibrator(config);
    case CalibrationMethod::kMse: return make_mse_calibrator(config);
  }
  fail(ErrorKind::kSpec, "unknown calibration method #{}", static_cast<int>(config.method));
}

std::unique_ptr<Calibrator> calibrate_batches(const CalibratorConfig& config,
                                              std::span<const std::span<const float>> batches) {
  auto cal = make_calibrator(config);
  if (cal->needs_range_pass()) {
    auto first = make_calibrator(config.range_pass_config());
    for (const auto& b : batches) first->observe(b);
    const Range r = first->range();
    cal->set_range(r.min, r.max);
  }
  for (const auto& b : batches) cal->observe(b);
  return cal;
}

}  // namespace qpipe
