// Percentile calibration, as ONNX Runtime's HistogramCollector with method
// "percentile" (compute_percentile). See calibrator.h for the semantics.

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "quant/calibrators/histogram.h"

namespace qpipe {

namespace {

// numpy.searchsorted(cdf, v, side='left'): the first index with cdf[i] >= v,
// or cdf.size() if none.
std::size_t search_left(const std::vector<double>& cdf, double v) {
  return static_cast<std::size_t>(std::lower_bound(cdf.begin(), cdf.end(), v) - cdf.begin());
}

class PercentileCalibrator final : public HistogramCalibrator {
 public:
  explicit PercentileCalibrator(const CalibratorConfig& config) : HistogramCalibrator(config) {}

  Range range() const override {
    require_data("percentile");
    return percentile_range(*histogram_, config_.percentile, config_.effective_symmetric(), data_min_, data_max_);
  }

  std::unique_ptr<Calibrator> clone_empty() const override {
    auto fresh = std::make_unique<PercentileCalibrator>(config_);
    copy_layout_to(*fresh);
    return fresh;
  }

 protected:
  std::pair<float, float> histogram_bounds(float min, float max) const override {
    const float absmax = std::max(std::fabs(min), std::fabs(max));
    if (config_.effective_symmetric()) return {0.0f, absmax};
    return {-absmax, absmax};
  }
  bool bins_abs_values() const override { return config_.effective_symmetric(); }
};

}  // namespace

Range percentile_range(const Histogram& h, double percentile, bool symmetric, float data_min, float data_max) {
  if (!std::isfinite(percentile) || percentile < 0.0 || percentile > 100.0)
    fail(ErrorKind::kSpec, "percentile calibration: percentile {} is invalid; expected a number in [0, 100]",
         percentile);
  if (h.total() == 0) fail(ErrorKind::kRuntime, "percentile calibration: the histogram is empty");
  const auto counts = h.counts();
  const auto edges = h.edges();
  // cdf = cumsum(hist / total): elementwise float64 division, sequential sum.
  std::vector<double> cdf(counts.size());
  const double total = static_cast<double>(h.total());
  double acc = 0.0;
  for (std::size_t i = 0; i < counts.size(); ++i) {
    acc += static_cast<double>(counts[i]) / total;
    cdf[i] = acc;
  }
  Range r;
  if (symmetric) {
    const float t = edges[search_left(cdf, percentile / 100.0)];
    r = {-t, t};
  } else {
    const double cut = (100.0 - percentile) / 200.0;
    r = {edges[search_left(cdf, cut)], edges[search_left(cdf, 1.0 - cut)]};
  }
  if (r.min < data_min) r.min = data_min;
  if (r.max > data_max) r.max = data_max;
  r.min += 0.0f;  // -0.0 → +0.0
  return r;
}

std::unique_ptr<Calibrator> make_percentile_calibrator(const CalibratorConfig& config) {
  config.validate();
  return std::make_unique<PercentileCalibrator>(config);
}

}  // namespace qpipe
