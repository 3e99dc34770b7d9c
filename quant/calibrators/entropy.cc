// Entropy (KL-divergence) calibration, as ONNX Runtime's HistogramCollector
// with method "entropy" (get_entropy_threshold, smooth_distribution), the
// TensorRT recipe. See calibrator.h for the exact candidate construction.

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "engine/error.h"
#include "quant/calibrators/histogram.h"

namespace qpipe {

namespace {

// ORT smooth_distribution in float32: zeros become eps, the non-zeros each
// lose eps·n_zeros/n_nonzeros. Returns false when every entry is zero.
bool smooth_distribution(const std::vector<int64_t>& p, std::vector<float>& out) {
  const std::size_t n = p.size();
  std::size_t zeros = 0;
  for (int64_t v : p) zeros += v == 0;
  const std::size_t nonzeros = n - zeros;
  if (nonzeros == 0) return false;
  const double eps = 0.0001;
  const double eps1 = eps * static_cast<double>(zeros) / static_cast<double>(nonzeros);
  const float eps_f = static_cast<float>(eps);
  const float neg_eps1_f = static_cast<float>(-eps1);
  out.resize(n);
  for (std::size_t i = 0; i < n; ++i)
    out[i] = p[i] == 0 ? eps_f : static_cast<float>(p[i]) + neg_eps1_f;
  return true;
}

// KL(p‖q) after normalising both to sum 1 (scipy.stats.entropy), in double.
double kl_divergence(const std::vector<float>& p, const std::vector<float>* q) {
  const std::size_t n = p.size();
  double sp = 0.0, sq = 0.0;
  for (float v : p) sp += v;
  if (q)
    for (float v : *q) sq += v;
  double kl = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double pi = p[i] / sp;
    // An all-zero q: ORT's code turns it into the uniform distribution.
    const double qi = q ? (*q)[i] / sq : 1.0 / static_cast<double>(n);
    if (pi > 0.0) kl += pi * std::log(pi / qi);
  }
  return kl;
}

class EntropyCalibrator final : public HistogramCalibrator {
 public:
  explicit EntropyCalibrator(const CalibratorConfig& config) : HistogramCalibrator(config) {}

  Range range() const override {
    require_data("entropy");
    return entropy_range(*histogram_, config_.num_quantized_bins, data_min_, data_max_);
  }

  std::unique_ptr<Calibrator> clone_empty() const override {
    auto fresh = std::make_unique<EntropyCalibrator>(config_);
    copy_layout_to(*fresh);
    return fresh;
  }

 protected:
  std::pair<float, float> histogram_bounds(float min, float max) const override {
    const float absmax = std::max(std::fabs(min), std::fabs(max));
    return {-absmax, absmax};
  }
};

}  // namespace

Range entropy_range(const Histogram& h, int num_quantized_bins, float data_min, float data_max,
                    std::vector<EntropyCandidate>* candidates) {
  const int n = h.num_bins();
  const int zero_bin = n / 2;
  const int half_q = num_quantized_bins / 2;
  if (num_quantized_bins < 1 || zero_bin < half_q)
    fail(ErrorKind::kSpec,
         "entropy calibration: {} histogram bins are too few for {} quantized bins; expected num_bins >= "
         "num_quantized_bins",
         n, num_quantized_bins);
  if (h.total() == 0) fail(ErrorKind::kRuntime, "entropy calibration: the histogram is empty");
  const auto hist = h.counts();
  const auto edges = h.edges();
  std::vector<int64_t> prefix(static_cast<std::size_t>(n) + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + hist[i];

  std::vector<int64_t> p, q, quantized(static_cast<std::size_t>(num_quantized_bins));
  std::vector<float> ps, qs;
  double best_kl = std::numeric_limits<double>::infinity();
  Range best{edges[0], edges[n]};
  bool have_best = false;
  if (candidates) candidates->clear();

  for (int i = half_q; i <= zero_bin; ++i) {
    const int start = zero_bin - i;
    const int end = std::min(zero_bin + i + 1, n);
    const int len = end - start;
    // Reference distribution p: the kept bins plus the outliers folded into
    // the first and last kept bin.
    p.assign(hist.begin() + start, hist.begin() + end);
    p.front() += prefix[start];
    p.back() += prefix[n] - prefix[end];

    // Candidate q: kept bins merged into num_quantized_bins groups.
    const int merged = len / num_quantized_bins;
    for (int g = 0; g < num_quantized_bins; ++g) {
      const int a = start + g * merged;
      quantized[g] = prefix[a + merged] - prefix[a];
    }
    quantized.back() += prefix[end] - prefix[start + num_quantized_bins * merged];
    q.assign(static_cast<std::size_t>(len), 0);
    for (int g = 0; g < num_quantized_bins; ++g) {
      const int a = g * merged;
      int64_t norm = 0;
      for (int k = a; k < a + merged; ++k) norm += p[k] != 0;
      if (norm != 0) std::fill(q.begin() + a, q.begin() + a + merged, quantized[g] / norm);
    }

    double kl = std::numeric_limits<double>::infinity();
    if (smooth_distribution(p, ps)) {
      const bool q_ok = smooth_distribution(q, qs);
      kl = kl_divergence(ps, q_ok ? &qs : nullptr);
    }
    const Range cand{edges[start], edges[end]};
    if (candidates) candidates->push_back({cand, kl});
    if (!have_best || kl < best_kl) {  // numpy.argmin: the first minimum
      best_kl = kl;
      best = cand;
      have_best = true;
    }
  }
  if (best.min < data_min) best.min = data_min;
  if (best.max > data_max) best.max = data_max;
  best.min += 0.0f;
  best.max += 0.0f;
  return best;
}

std::unique_ptr<Calibrator> make_entropy_calibrator(const CalibratorConfig& config) {
  config.validate();
  return std::make_unique<EntropyCalibrator>(config);
}

}  // namespace qpipe
