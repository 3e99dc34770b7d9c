// MSE calibration: the clipping range that minimises the expected squared
// quantization error over the histogram (not in ONNX Runtime). See
// calibrator.h for the candidate search.

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "engine/error.h"
#include "quant/calibrators/histogram.h"

namespace qpipe {

namespace {

constexpr int kSweep = 1024;  // 1-D candidates
constexpr int kGrid = 256;    // 2-D grid per side

// ∫_a^b (x − g)² dx for a ≤ b, written without cancellation.
inline double square_integral(double a, double b, double g) {
  const double u = a - g, v = b - g;
  return (b - a) * (u * u + u * v + v * v) / 3.0;
}

class MseCalibrator final : public HistogramCalibrator {
 public:
  explicit MseCalibrator(const CalibratorConfig& config) : HistogramCalibrator(config) {}

  void observe(std::span<const float> values) override {
    cache_.reset();
    HistogramCalibrator::observe(values);
  }
  void merge(const Calibrator& other) override {
    cache_.reset();
    HistogramCalibrator::merge(other);
  }
  void set_range(float min, float max) override {
    cache_.reset();
    HistogramCalibrator::set_range(min, max);
  }

  Range range() const override { return search().range; }

  nlohmann::json describe() const override {
    nlohmann::json j = HistogramCalibrator::describe();
    if (count_ > 0 && histogram_) {
      const MseSearchResult& r = search();
      j["mse"] = r.mse;
      j["evaluations"] = r.evaluations;
    }
    return j;
  }

  std::unique_ptr<Calibrator> clone_empty() const override {
    auto fresh = std::make_unique<MseCalibrator>(config_);
    copy_layout_to(*fresh);
    return fresh;
  }

 protected:
  std::pair<float, float> histogram_bounds(float min, float max) const override {
    return {std::min(min, 0.0f), std::max(max, 0.0f)};
  }

 private:
  // The search takes ~10-30 ms; range() and describe() share one result.
  const MseSearchResult& search() const {
    if (!cache_) {
      require_data("mse");
      cache_ = mse_range(*histogram_, config_.qtype, config_.effective_symmetric(), config_.reduce_range, data_min_,
                         data_max_);
    }
    return *cache_;
  }
  mutable std::optional<MseSearchResult> cache_;
};

}  // namespace

double expected_quantization_sse(const Histogram& h, const QuantParams& p) {
  const double s = p.scale;
  const int64_t zp = p.zero_point, qmin = p.qmin, qmax = p.qmax;
  const auto counts = h.counts();
  const auto edges = h.edges();
  const double inf = std::numeric_limits<double>::infinity();
  auto grid = [&](int64_t k) { return s * static_cast<double>(k - zp); };
  // The code whose cell contains x (cells are [g − s/2, g + s/2], the end
  // cells extended to ±inf), before the ±1 safety margin below.
  auto code_of = [&](double x) {
    const double k = std::floor(x / s + 0.5) + static_cast<double>(zp);
    return static_cast<int64_t>(std::clamp(k, static_cast<double>(qmin), static_cast<double>(qmax)));
  };
  double sse = 0.0;
  for (std::size_t j = 0; j < counts.size(); ++j) {
    if (counts[j] == 0) continue;
    const double l = edges[j], r = edges[j + 1];
    const double c = static_cast<double>(counts[j]);
    if (!(r > l)) {  // degenerate bin: a point mass
      const double e = l - grid(code_of(l));
      sse += c * e * e;
      continue;
    }
    const int64_t k_lo = std::max(qmin, code_of(l) - 1);
    const int64_t k_hi = std::min(qmax, code_of(r) + 1);
    double integral = 0.0;
    for (int64_t k = k_lo; k <= k_hi; ++k) {
      const double g = grid(k);
      const double cell_lo = k == qmin ? -inf : g - s / 2;
      const double cell_hi = k == qmax ? inf : g + s / 2;
      const double a = std::max(l, cell_lo), b = std::min(r, cell_hi);
      if (b > a) integral += square_integral(a, b, g);
    }
    sse += c * integral / (r - l);
  }
  return sse;
}

MseSearchResult mse_range(const Histogram& h, QType qtype, bool symmetric, bool reduce_range, float data_min,
                          float data_max) {
  if (h.total() == 0) fail(ErrorKind::kRuntime, "mse calibration: the histogram is empty");
  const float lo = std::min(data_min, 0.0f), hi = std::max(data_max, 0.0f);
  MseSearchResult best;
  best.mse = std::numeric_limits<double>::infinity();
  const double total = static_cast<double>(h.total());
  auto consider = [&](float a, float b) {
    const QuantParams p = choose_qparams(a, b, qtype, symmetric, reduce_range);
    const double mse = expected_quantization_sse(h, p) / total;
    ++best.evaluations;
    if (mse < best.mse) {  // strict: the first of equal candidates wins
      best.mse = mse;
      best.range = {a + 0.0f, b + 0.0f};
      best.params = p;
    }
  };
  auto at = [](float bound, int k, int n) {
    return static_cast<float>(static_cast<double>(bound) * k / n);
  };

  if (lo == 0.0f && hi == 0.0f) {
    consider(0.0f, 0.0f);
    return best;
  }
  if (symmetric) {
    const float t_max = std::max(-lo, hi);
    for (int k = 1; k <= kSweep; ++k) {
      const float t = at(t_max, k, kSweep);
      consider(-t, t);
    }
    return best;
  }
  if (lo == 0.0f || hi == 0.0f) {
    for (int k = 1; k <= kSweep; ++k) consider(at(lo, k, kSweep), at(hi, k, kSweep));
    return best;
  }
  // Two-sided asymmetric: coarse-to-fine over a = lo·i/G, b = hi·j/G.
  int bi = 0, bj = 0;
  auto scan = [&](int i0, int i1, int j0, int j1, int step) {
    for (int i = std::max(i0, 0); i <= std::min(i1, kGrid); i += step)
      for (int j = std::max(j0, 0); j <= std::min(j1, kGrid); j += step) {
        if (i == 0 && j == 0) continue;
        const double before = best.mse;
        consider(at(lo, i, kGrid), at(hi, j, kGrid));
        if (best.mse < before) {
          bi = i;
          bj = j;
        }
      }
  };
  scan(0, kGrid, 0, kGrid, 16);
  scan(bi - 16, bi + 16, bj - 16, bj + 16, 4);
  scan(bi - 4, bi + 4, bj - 4, bj + 4, 1);
  return best;
}

std::unique_ptr<Calibrator> make_mse_calibrator(const CalibratorConfig& config) {
  config.validate();
  return std::make_unique<MseCalibrator>(config);
}

}  // namespace qpipe
