#pragma once
// The fixed-range histogram shared by the percentile, entropy and mse
// calibrators, the base class of those calibrators, and the threshold
// algorithms that run on a finished histogram (exposed so tests and reports
// can call them directly). Semantics and deviations from ONNX Runtime are
// documented in calibrator.h.
//
// Binning follows numpy.histogram(values, bins=N, range=(lo, hi)) on float32
// data with numpy 2's float32 arithmetic:
//   step     = float32(float32(hi − lo) / N)
//   edges[i] = float32(float32(i · step) + lo),  edges[N] = hi
//   a value x in [lo, hi] falls in bin i with edges[i] ≤ x < edges[i+1]; the
//   last bin also takes x == hi. NaN is skipped; values outside [lo, hi] are
//   counted in out_of_range() and not binned. lo == hi is widened to
//   [lo − 0.5, hi + 0.5] as numpy does.
// Counts are int64, so merging histograms is exact and order-free.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "quant/calibrators/calibrator.h"

namespace qpipe {

class Histogram {
 public:
  Histogram() = default;
  // PtqError(kRuntime) for non-finite or inverted bounds, or num_bins < 1.
  Histogram(float lo, float hi, int num_bins);

  void add(std::span<const float> values);      // bins x
  void add_abs(std::span<const float> values);  // bins |x|
  // Adds other's counts; the edges must be identical (PtqError otherwise).
  void merge(const Histogram& other);

  bool empty_layout() const { return counts_.empty(); }
  int num_bins() const { return static_cast<int>(counts_.size()); }
  float lo() const { return lo_; }
  float hi() const { return hi_; }
  std::span<const float> edges() const { return edges_; }  // num_bins + 1 values
  std::span<const int64_t> counts() const { return counts_; }
  int64_t total() const { return total_; }
  int64_t out_of_range() const { return out_of_range_; }
  // Bin of x, or -1 for NaN and values outside [lo, hi].
  int bin_of(float x) const;

 private:
  template <bool kAbs>
  void add_impl(std::span<const float> values);

  float lo_ = 0.0f, hi_ = 0.0f, width_ = 0.0f;
  std::vector<float> edges_;
  std::vector<int64_t> counts_;
  int64_t total_ = 0;
  int64_t out_of_range_ = 0;
};

// ---- Threshold algorithms on a finished histogram ----------------------------
// data_min/data_max: the observed extremes (results are clipped to them).

// ORT compute_percentile. `symmetric` means `h` is a histogram of |x|.
Range percentile_range(const Histogram& h, double percentile, bool symmetric, float data_min, float data_max);

// ORT get_entropy_threshold. Requires h.num_bins() / 2 ≥ num_quantized_bins / 2.
struct EntropyCandidate {
  Range range;
  double kl = 0.0;
};
Range entropy_range(const Histogram& h, int num_quantized_bins, float data_min, float data_max,
                    std::vector<EntropyCandidate>* candidates = nullptr);

// Expected squared quantization error of the histogram's mass (uniform
// within each bin) under QuantizeLinear/DequantizeLinear with `p`, summed
// over all values (divide by h.total() for the mean).
double expected_quantization_sse(const Histogram& h, const QuantParams& p);

struct MseSearchResult {
  Range range;
  QuantParams params;
  double mse = 0.0;       // per value
  int evaluations = 0;
};
MseSearchResult mse_range(const Histogram& h, QType qtype, bool symmetric, bool reduce_range, float data_min,
                          float data_max);

// ---- Base of the histogram calibrators ----------------------------------------

class HistogramCalibrator : public Calibrator {
 public:
  explicit HistogramCalibrator(CalibratorConfig config);

  void observe(std::span<const float> values) override;
  void merge(const Calibrator& other) override;
  nlohmann::json describe() const override;
  bool needs_range_pass() const override { return true; }
  void set_range(float min, float max) override;
  bool has_range() const override { return histogram_.has_value(); }

  const Histogram* histogram() const { return histogram_ ? &*histogram_ : nullptr; }
  float data_min() const { return data_min_; }
  float data_max() const { return data_max_; }

 protected:
  // Histogram bounds for a first-pass range [min, max] (method specific).
  virtual std::pair<float, float> histogram_bounds(float min, float max) const = 0;
  // Whether values are binned as |x|.
  virtual bool bins_abs_values() const { return false; }
  // Throws unless data was observed; call at the top of range().
  void require_data(const char* method) const;
  // Copies config and fixed range into a fresh calibrator of the same kind.
  void copy_layout_to(HistogramCalibrator& fresh) const;

  std::optional<Histogram> histogram_;
  float range_min_ = 0.0f, range_max_ = 0.0f;  // as given to set_range
  float data_min_ = 0.0f, data_max_ = 0.0f;    // observed (NaN skipped)
};

}  // namespace qpipe
