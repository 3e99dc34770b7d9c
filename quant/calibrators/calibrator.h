#pragma once
// Calibrators: turn the float values one activation tensor takes over the
// calibration set into a clipping range [min, max] for choose_qparams
// (quant/qparams.h). Offline path: float and double are fine here
// (STYLE.md 5).
//
// Usage, deterministic for any thread count and batch size:
//
//   auto cal = make_calibrator(cfg);
//   if (cal->needs_range_pass()) {             // histogram methods
//     auto mm = make_calibrator(cfg.range_pass_config());
//     ...observe every batch into mm (or into per-batch clones merged in order)
//     cal->set_range(mm->range().min, mm->range().max);
//   }
//   for each batch b (possibly in parallel):   // second pass over the same data
//     part[b] = cal->clone_empty(); part[b]->observe(values of b);
//   for b in batch order: cal->merge(*part[b]);
//   Range r = cal->range();  → choose_qparams(r.min, r.max, cfg.qtype, ...)
//
// Every calibrator state is a set of order-free statistics (min, max, integer
// bin counts), so observe/merge in any order or batching gives bit-identical
// ranges; merging in batch order is still the contract.
//
// ---------------------------------------------------------------------------
// Methods (ONNX Runtime's calibrate.py semantics, and where we differ)
// ---------------------------------------------------------------------------
// minmax — ORT MinMaxCalibrater: min of all values, max of all values
//   (ORT: min of per-batch ReduceMin, max of per-batch ReduceMax: the same).
//   symmetric → (−absmax, +absmax). NaN values are skipped one by one (ORT
//   drops a whole batch whose ReduceMin is NaN via nanmin); ±inf is kept and
//   makes choose_qparams fail. Moving average is not implemented.
//
// percentile — ORT HistogramCollector, method "percentile"
//   (defaults: num_bins 2048, percentile 99.999, symmetric TRUE — ORT's
//   create_calibrator defaults CalibTensorRangeSymmetric to True here).
//   symmetric: histogram of |x|; cdf = cumsum(count/total) in float64;
//   t = edges[first i with cdf[i] ≥ p/100] (the LOWER edge of the bin that
//   crosses the percentile, as ORT); range (−t, t).
//   asymmetric: histogram of x over [−A, A], A = max(|min|, |max|); cut
//   c = (100 − p)/200 on each side: lo = edges[first i with cdf ≥ c],
//   hi = edges[first i with cdf ≥ 1 − c].
//   Both: lo is raised to the data min and hi lowered to the data max if
//   they overshoot (a ReLU output gives (0, t)).
//
// entropy — ORT HistogramCollector, method "entropy" (TensorRT-style KL)
//   (defaults: num_bins 128, num_quantized_bins 128 — with these defaults
//   only one candidate exists and the result is the full range clipped to
//   [min, max]; use e.g. num_bins 2048 to get real clipping).
//   Histogram of x over [−A, A]; for i = nq/2 … N/2 the candidate keeps bins
//   [N/2 − i, N/2 + i] (end clipped to N): reference p = those counts with
//   the outliers on each side added to the first/last kept bin; q = the kept
//   counts summed into nq groups of m = ⌊len/nq⌋ consecutive bins (leftover
//   bins' counts join the last group's sum), each group's sum divided
//   (truncating, as ORT's int64 array) by the number of the group's bins
//   where p ≠ 0 and written into every bin of the group — zero bins
//   included, as ORT does (TensorRT writes only the non-zero ones); leftover
//   bins stay 0. Both are smoothed (zeros → 1e-4, that mass taken evenly
//   from the non-zeros, float32 as ORT's smooth_distribution; an all-zero q
//   counts as uniform, which is what ORT's code ends up doing) and
//   KL(p‖q) is taken; the candidate with the smallest KL wins (first on
//   ties) and its bin edges (edges[N/2 − i], edges[min(N/2 + i + 1, N)]) are
//   clipped to [min, max].
//   We compute KL in float64 (ORT: float32 normalisation and log), so
//   near-ties may resolve differently.
//
// mse — not in ORT. Histogram of x over [min(min,0), max(max,0)] (num_bins,
//   default 2048). The cost of a candidate range [a, b] is the expected
//   squared error Σ_bins ∫ (x − DQ(Q(x)))² with the bin's count spread
//   uniformly over the bin, where Q/DQ use choose_qparams(a, b, qtype,
//   symmetric, reduce_range) exactly — so zero-point rounding and clipping
//   are both priced. Search (fixed order, ties → first):
//   symmetric or one-sided data: 1-D sweep t = T·k/1024, k = 1…1024;
//   two-sided asymmetric: 2-D grid a = lo·i/256, b = hi·j/256, coarse to
//   fine (step 16 over the whole grid, then step 4 and step 1 in a ±16 and
//   ±4 window around the best). Feed range() to choose_qparams with the
//   same qtype/symmetric/reduce_range as the config.
//
// Histogram range (all histogram methods): ORT starts from the first batch's
// range and widens it when a later batch exceeds it (re-binning), so its
// histogram depends on batch order and size. We instead require a first
// MinMax pass and build the histogram over the final range fixed up front
// (set_range). This equals ORT when ORT sees the whole calibration set in one
// collect_data call (its usual use). Bin edges follow numpy 2's
// linspace in float32 (edges[i] = float32(i·step) + lo); values are binned
// like numpy.histogram (last bin closed). Deviation: the |x| histogram of
// symmetric percentile spans [0, absmax]; ORT's spans [min|x|, max|x|] (the
// same whenever the tensor contains a zero, e.g. after ReLU).

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "quant/qparams.h"

namespace qpipe {

enum class CalibrationMethod { kMinMax, kPercentile, kEntropy, kMse };

const char* calibration_method_name(CalibrationMethod m);  // "minmax", "percentile", "entropy", "mse"
CalibrationMethod parse_calibration_method(std::string_view name);  // PtqError(kSpec) if unknown

struct CalibratorConfig {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  double percentile = 99.999;        // percentile only, in [0, 100]
  int num_bins = 0;                  // 0 → ORT's default for the method (2048 percentile, 128 entropy, 2048 mse);
                                     // at most 2^22 (percentile) or 2^16 (entropy, mse)
  int num_quantized_bins = 128;      // entropy only
  std::optional<bool> symmetric;     // unset → ORT's default (true for percentile, false otherwise)
  QType qtype = QType::kInt8;        // target type (priced by mse)
  bool reduce_range = false;         // priced by mse

  int effective_num_bins() const;
  bool effective_symmetric() const;
  // Rejects bad values with PtqError(kSpec), naming the field.
  void validate() const;
  // The MinMax configuration of the first pass of histogram methods.
  CalibratorConfig range_pass_config() const;
  // Canonical description (effective values; sorted keys when dumped).
  nlohmann::json to_json() const;
};

// The clipping range to feed to choose_qparams. As in ORT, percentile and
// entropy may return min > max for one-sided data (min is raised to the data
// min, max is a bin edge below it); choose_qparams widens to 0 first and
// handles that.
struct Range {
  float min = 0.0f;
  float max = 0.0f;
  bool operator==(const Range&) const = default;
};

// Not thread-safe: give each thread its own clone_empty() and merge.
class Calibrator {
 public:
  explicit Calibrator(CalibratorConfig config) : config_(std::move(config)) {}
  virtual ~Calibrator() = default;
  Calibrator(const Calibrator&) = delete;
  Calibrator& operator=(const Calibrator&) = delete;

  // One tensor's values for one batch. Order of calls does not change the
  // result. Histogram methods throw PtqError(kRuntime) before set_range(),
  // and when a value lies outside the range fixed by set_range (the two
  // passes must see the same data).
  virtual void observe(std::span<const float> values) = 0;
  // Adds `other`'s statistics. `other` must come from the same config (and
  // the same set_range), e.g. via clone_empty(); else PtqError(kRuntime).
  virtual void merge(const Calibrator& other) = 0;
  // The clipping range. PtqError(kRuntime) if no (non-NaN) value was seen.
  virtual Range range() const = 0;
  // One row for reports: method, config, counts, data min/max/absmax, range.
  virtual nlohmann::json describe() const;

  // True for histogram methods: they need set_range() from a MinMax pass over
  // the same data before observe().
  virtual bool needs_range_pass() const { return false; }
  // Fixes the histogram range from the first pass (raw data min and max).
  // Non-finite or inverted bounds → PtqError(kRuntime). Methods without a
  // range pass reject it.
  virtual void set_range(float min, float max);
  virtual bool has_range() const { return !needs_range_pass(); }

  // A calibrator with the same config (and range), and no data.
  virtual std::unique_ptr<Calibrator> clone_empty() const = 0;

  const CalibratorConfig& config() const { return config_; }
  // Values observed (NaN excluded) and NaN values skipped.
  int64_t count() const { return count_; }
  int64_t nan_count() const { return nan_count_; }

 protected:
  void check_mergeable(const Calibrator& other) const;
  CalibratorConfig config_;
  int64_t count_ = 0;
  int64_t nan_count_ = 0;
};

std::unique_ptr<Calibrator> make_calibrator(const CalibratorConfig& config);

// Per-method constructors (the factory dispatches to these).
std::unique_ptr<Calibrator> make_minmax_calibrator(const CalibratorConfig& config);
std::unique_ptr<Calibrator> make_percentile_calibrator(const CalibratorConfig& config);
std::unique_ptr<Calibrator> make_entropy_calibrator(const CalibratorConfig& config);
std::unique_ptr<Calibrator> make_mse_calibrator(const CalibratorConfig& config);

// Convenience: runs both passes sequentially over `batches` (one span per
// batch, same tensor) and returns the finished calibrator.
std::unique_ptr<Calibrator> calibrate_batches(const CalibratorConfig& config,
                                              std::span<const std::span<const float>> batches);

}  // namespace qpipe
