// Fixed-range histogram (numpy.histogram semantics) and the common part of
// the histogram calibrators. See histogram.h.

#include "quant/calibrators/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"

namespace qpipe {

namespace {
inline float canonical_zero(float v) { return v + 0.0f; }
}  // namespace

// ---- Histogram ---------------------------------------------------------------

Histogram::Histogram(float lo, float hi, int num_bins) {
  if (!std::isfinite(lo) || !std::isfinite(hi) || lo > hi)
    fail(ErrorKind::kRuntime, "histogram: range [{}, {}] is invalid; expected finite bounds with lo <= hi", lo, hi);
  if (num_bins < 1) fail(ErrorKind::kRuntime, "histogram: num_bins {} is invalid; expected >= 1", num_bins);
  if (lo == hi) {  // numpy widens an empty range
    lo = lo - 0.5f;
    hi = hi + 0.5f;
  }
  const float width = hi - lo;
  if (!std::isfinite(width))
    fail(ErrorKind::kRuntime, "histogram: the width of range [{}, {}] overflows float32", lo, hi);
  lo_ = lo;
  hi_ = hi;
  width_ = width;
  edges_.resize(static_cast<std::size_t>(num_bins) + 1);
  // numpy 2 linspace in float32: y = arange(N+1) · step + lo, last = hi.
  const float step = width / static_cast<float>(num_bins);
  for (int i = 0; i < num_bins; ++i) {
    float y;
    if (step == 0.0f) {  // numpy's denormal special case: y = i / N · width
      y = static_cast<float>(i) / static_cast<float>(num_bins);
      y = y * width;
    } else {
      y = static_cast<float>(i) * step;
    }
    edges_[i] = y + lo;
  }
  edges_[num_bins] = hi;
  counts_.assign(static_cast<std::size_t>(num_bins), 0);
}

int Histogram::bin_of(float x) const {
  if (!(x >= lo_ && x <= hi_)) return -1;
  const int n = num_bins();
  // numpy's first guess, in float32, then exact correction against the edges.
  const float f = ((x - lo_) / width_) * static_cast<float>(n);
  int i = f >= static_cast<float>(n) ? n - 1 : static_cast<int>(f);
  if (i < 0) i = 0;
  while (i > 0 && x < edges_[i]) --i;
  while (i < n - 1 && x >= edges_[i + 1]) ++i;
  return i;
}

template <bool kAbs>
void Histogram::add_impl(std::span<const float> values) {
  const int n = num_bins();
  if (n == 0) fail(ErrorKind::kRuntime, "histogram: add() on a histogram without a range");
  const float lo = lo_, hi = hi_, width = width_, nf = static_cast<float>(n);
  const float* edges = edges_.data();
  int64_t* counts = counts_.data();
  int64_t binned = 0, outside = 0;
  for (float v : values) {
    if constexpr (kAbs) v = std::fabs(v);
    if (!(v >= lo && v <= hi)) {
      outside += v == v;  // NaN is skipped silently
      continue;
    }
    const float f = ((v - lo) / width) * nf;
    int i = f >= nf ? n - 1 : static_cast<int>(f);
    while (i > 0 && v < edges[i]) --i;
    while (i < n - 1 && v >= edges[i + 1]) ++i;
    ++counts[i];
    ++binned;
  }
  total_ += binned;
  out_of_range_ += outside;
}

void Histogram::add(std::span<const float> values) { add_impl<false>(values); }
void Histogram::add_abs(std::span<const float> values) { add_impl<true>(values); }

void Histogram::merge(const Histogram& other) {
  if (other.edges_ != edges_)
    fail(ErrorKind::kRuntime,
         "histogram: cannot merge a histogram over [{}, {}] with {} bins into one over [{}, {}] with {} bins; "
         "expected identical bin edges",
         other.lo_, other.hi_, other.num_bins(), lo_, hi_, num_bins());
  for (std::size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  out_of_range_ += other.out_of_range_;
}

// ---- HistogramCalibrator ------------------------------------------------------

HistogramCalibrator::HistogramCalibrator(CalibratorConfig config) : Calibrator(std::move(config)) {}

void HistogramCalibrator::set_range(float min, float max) {
  const char* name = calibration_method_name(config_.method);
  if (!std::isfinite(min) || !std::isfinite(max) || min > max)
    fail(ErrorKind::kRuntime,
         "{} calibrator: set_range({}, {}) is invalid; expected the finite data min <= max of a MinMax pass", name,
         min, max);
  if (count_ > 0 || nan_count_ > 0)
    fail(ErrorKind::kRuntime, "{} calibrator: set_range() after observe(); fix the range before the second pass",
         name);
  const auto [lo, hi] = histogram_bounds(min, max);
  histogram_.emplace(lo, hi, config_.effective_num_bins());
  range_min_ = min;
  range_max_ = max;
}

void HistogramCalibrator::observe(std::span<const float> values) {
  const char* name = calibration_method_name(config_.method);
  if (!histogram_)
    fail(ErrorKind::kRuntime,
         "{} calibrator: observe() before set_range(); histogram methods need a MinMax pass over the same data "
         "first (needs_range_pass())",
         name);
  if (values.empty()) return;
  float mn = std::numeric_limits<float>::infinity();
  float mx = -std::numeric_limits<float>::infinity();
  int64_t nan = 0;
  for (float v : values) {
    nan += v != v;
    mn = v < mn ? v : mn;
    mx = v > mx ? v : mx;
  }
  const int64_t n = static_cast<int64_t>(values.size()) - nan;
  if (n > 0) {
    // Values outside the range fixed by the first pass mean the two passes
    // saw different data; refuse before touching the histogram.
    const Histogram& h = *histogram_;
    const bool outside = bins_abs_values() ? std::max(std::fabs(mn), std::fabs(mx)) > h.hi()
                                           : (mn < h.lo() || mx > h.hi());
    if (outside)
      fail(ErrorKind::kRuntime,
           "{} calibrator: this batch spans [{}, {}], outside the range [{}, {}] fixed by set_range(); both "
           "calibration passes must observe the same data",
           name, mn, mx, range_min_, range_max_);
  }
  nan_count_ += nan;
  if (n == 0) return;
  if (bins_abs_values()) histogram_->add_abs(values);
  else histogram_->add(values);
  if (count_ == 0) {
    data_min_ = canonical_zero(mn);
    data_max_ = canonical_zero(mx);
  } else {
    data_min_ = canonical_zero(std::min(mn, data_min_));
    data_max_ = canonical_zero(std::max(mx, data_max_));
  }
  count_ += n;
}

void HistogramCalibrator::merge(const Calibrator& other) {
  check_mergeable(other);
  const auto& o = static_cast<const HistogramCalibrator&>(other);
  const char* name = calibration_method_name(config_.method);
  if (!o.histogram_) {
    if (o.count_ == 0 && o.nan_count_ == 0) return;  // an untouched clone without range
    fail(ErrorKind::kRuntime, "{} calibrator: merging a calibrator without a histogram range", name);
  }
  if (!histogram_) {
    if (count_ > 0)
      fail(ErrorKind::kRuntime, "{} calibrator: merge into a calibrator without a histogram range", name);
    histogram_.emplace(o.histogram_->lo(), o.histogram_->hi(), o.histogram_->num_bins());
    range_min_ = o.range_min_;
    range_max_ = o.range_max_;
  }
  if (o.range_min_ != range_min_ || o.range_max_ != range_max_)
    fail(ErrorKind::kRuntime,
         "{} calibrator: cannot merge histograms fixed to different ranges [{}, {}] and [{}, {}]; give every "
         "clone the same set_range()",
         name, o.range_min_, o.range_max_, range_min_, range_max_);
  histogram_->merge(*o.histogram_);
  nan_count_ += o.nan_count_;
  if (o.count_ == 0) return;
  if (count_ == 0) {
    data_min_ = o.data_min_;
    data_max_ = o.data_max_;
  } else {
    data_min_ = std::min(data_min_, o.data_min_);
    data_max_ = std::max(data_max_, o.data_max_);
  }
  count_ += o.count_;
}

void HistogramCalibrator::require_data(const char* method) const {
  if (!histogram_)
    fail(ErrorKind::kRuntime, "{} calibrator: range() before set_range() and observe(); run the MinMax pass first",
         method);
  if (count_ == 0)
    fail(ErrorKind::kRuntime,
         "{} calibrator: range() called before any value was observed ({} NaN values skipped); expected at least "
         "one batch with a non-NaN value",
         method, nan_count_);
}

void HistogramCalibrator::copy_layout_to(HistogramCalibrator& fresh) const {
  if (histogram_) fresh.set_range(range_min_, range_max_);
}

nlohmann::json HistogramCalibrator::describe() const {
  nlohmann::json j = Calibrator::describe();
  if (histogram_) {
    j["histogram"] = {{"lo", static_cast<double>(histogram_->lo())},
                      {"hi", static_cast<double>(histogram_->hi())},
                      {"num_bins", histogram_->num_bins()},
                      {"total", histogram_->total()}};
  }
  if (count_ > 0) {
    j["data_min"] = static_cast<double>(data_min_);
    j["data_max"] = static_cast<double>(data_max_);
    j["absmax"] = static_cast<double>(std::max(std::fabs(data_min_), std::fabs(data_max_)));
  }
  return j;
}

}  // namespace qpipe
