// MinMax calibration, as ONNX Runtime's MinMaxCalibrater (see calibrator.h).

#include <cmath>
#include <limits>

#include "engine/error.h"
#include "quant/calibrators/calibrator.h"

namespace qpipe {

namespace {

// -0.0 and +0.0 compare equal, so which one a running min keeps would depend
// on the order of observation; store zeros as +0.0.
inline float canonical_zero(float v) { return v + 0.0f; }

class MinMaxCalibrator final : public Calibrator {
 public:
  explicit MinMaxCalibrator(const CalibratorConfig& config) : Calibrator(config) {}

  void observe(std::span<const float> values) override {
    float mn = std::numeric_limits<float>::infinity();
    float mx = -std::numeric_limits<float>::infinity();
    int64_t nan = 0;
    for (float v : values) {
      nan += v != v;
      mn = v < mn ? v : mn;  // NaN compares false and is skipped
      mx = v > mx ? v : mx;
    }
    const int64_t finite_or_inf = static_cast<int64_t>(values.size()) - nan;
    nan_count_ += nan;
    if (finite_or_inf == 0) return;
    count_ += finite_or_inf;
    min_ = canonical_zero(mn < min_ ? mn : min_);
    max_ = canonical_zero(mx > max_ ? mx : max_);
  }

  void merge(const Calibrator& other) override {
    check_mergeable(other);
    const auto& o = static_cast<const MinMaxCalibrator&>(other);
    nan_count_ += o.nan_count_;
    if (o.count_ == 0) return;
    count_ += o.count_;
    min_ = o.min_ < min_ ? o.min_ : min_;
    max_ = o.max_ > max_ ? o.max_ : max_;
  }

  Range range() const override {
    if (count_ == 0)
      fail(ErrorKind::kRuntime,
           "minmax calibrator: range() called before any value was observed ({} NaN values skipped); expected at "
           "least one batch with a non-NaN value",
           nan_count_);
    if (config_.effective_symmetric()) {
      const float m = std::max(std::fabs(min_), std::fabs(max_));
      return {canonical_zero(-m), m};
    }
    return {min_, max_};
  }

  nlohmann::json describe() const override {
    nlohmann::json j = Calibrator::describe();
    if (count_ > 0) {
      j["data_min"] = static_cast<double>(min_);
      j["data_max"] = static_cast<double>(max_);
      j["absmax"] = static_cast<double>(std::max(std::fabs(min_), std::fabs(max_)));
    }
    return j;
  }

  std::unique_ptr<Calibrator> clone_empty() const override { return std::make_unique<MinMaxCalibrator>(config_); }

 private:
  float min_ = std::numeric_limits<float>::infinity();
  float max_ = -std::numeric_limits<float>::infinity();
};

}  // namespace

std::unique_ptr<Calibrator> make_minmax_calibrator(const CalibratorConfig& config) {
  config.validate();
  return std::make_unique<MinMaxCalibrator>(config);
}

}  // namespace qpipe
