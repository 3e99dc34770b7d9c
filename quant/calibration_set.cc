#include "quant/calibration_set.h"

#include <random>
#include <utility>

#include "engine/error.h"
#include "quant/sampling/numpy_random.h"

namespace qpipe {

namespace {

// Indices of each class, ascending (np.where(labels == c)[0]).
std::vector<std::vector<int64_t>> indices_by_class(const std::vector<int>& labels) {
  std::vector<std::vector<int64_t>> by_class(kCalibrationClasses);
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int l = labels[i];
    if (l < 0 || l >= kCalibrationClasses) {
      fail(ErrorKind::kInput, "calibration set: label of image {} is {}; expected a class index 0..{}", i, l,
           kCalibrationClasses - 1);
    }
    by_class[static_cast<std::size_t>(l)].push_back(static_cast<int64_t>(i));
  }
  return by_class;
}

void check_class_sizes(const std::vector<std::vector<int64_t>>& by_class, int per_class, std::size_t n_labels) {
  for (int c = 0; c < kCalibrationClasses; ++c) {
    const std::size_t have = by_class[static_cast<std::size_t>(c)].size();
    if (have < static_cast<std::size_t>(per_class)) {
      fail(ErrorKind::kSpec,
           "calibration set: class {} has {} images among the {} of the split, fewer than the {} per class "
           "requested",
           c, have, n_labels, per_class);
    }
  }
}

// Uniform integer in [0, r] by masked rejection on 64-bit engine outputs.
uint64_t bounded(std::mt19937_64& gen, uint64_t r) {
  if (r == 0) return 0;
  uint64_t mask = r;
  for (int s = 1; s < 64; s <<= 1) mask |= mask >> s;
  uint64_t v;
  while ((v = (gen() & mask)) > r) {
  }
  return v;
}

std::vector<int64_t> select_numpy(const std::vector<std::vector<int64_t>>& by_class, const CalibrationSetSpec& spec) {
  sampling::NumpyRandomState rs(spec.seed);
  std::vector<int64_t> out;
  for (int round = 1; round <= spec.draw; ++round) {
    out.clear();
    for (const auto& members : by_class) {
      std::vector<int64_t> picked = rs.choice_without_replacement(members, spec.per_class);
      out.insert(out.end(), picked.begin(), picked.end());
    }
  }
  return out;
}

std::vector<int64_t> select_qpipe(const std::vector<std::vector<int64_t>>& by_class, const CalibrationSetSpec& spec) {
  std::mt19937_64 gen(spec.seed);
  std::vector<int64_t> out;
  for (int round = 1; round <= spec.draw; ++round) {
    out.clear();
    for (const auto& members : by_class) {
      std::vector<int64_t> v = members;
      const uint64_t m = v.size();
      for (uint64_t i = 0; i < static_cast<uint64_t>(spec.per_class); ++i) {
        const uint64_t j = i + bounded(gen, m - 1 - i);
        std::swap(v[i], v[j]);
      }
      out.insert(out.end(), v.begin(), v.begin() + spec.per_class);
    }
  }
  return out;
}

}  // namespace

std::vector<int64_t> select_calibration_set(const std::vector<int>& labels, const CalibrationSetSpec& spec) {
  if (spec.sampler != "numpy" && spec.sampler != "qpipe" && spec.sampler != "first") {
    fail(ErrorKind::kSpec, "calibration set: unknown sampler '{}'; expected 'numpy', 'qpipe' or 'first'",
         spec.sampler);
  }
  if (spec.per_class < 1) {
    fail(ErrorKind::kSpec, "calibration set: per_class must be >= 1, got {}", spec.per_class);
  }
  if (spec.draw < 1) {
    fail(ErrorKind::kSpec, "calibration set: draw must be >= 1 (1 = the first round after seeding), got {}",
         spec.draw);
  }
  const auto by_class = indices_by_class(labels);
  if (spec.sampler == "first") {
    const int64_t n = static_cast<int64_t>(spec.per_class) * kCalibrationClasses;
    if (n > static_cast<int64_t>(labels.size())) {
      fail(ErrorKind::kSpec, "calibration set: sampler 'first' wants {} images ({} per class x {}), the split has {}",
           n, spec.per_class, kCalibrationClasses, labels.size());
    }
    std::vector<int64_t> out(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = i;
    return out;
  }
  check_class_sizes(by_class, spec.per_class, labels.size());
  return spec.sampler == "numpy" ? select_numpy(by_class, spec) : select_qpipe(by_class, spec);
}

}  // namespace qpipe
