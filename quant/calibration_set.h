#pragma once
// Choosing the calibration images: which global indices of the training split
// (data_batch_1..5 order, 0..49999 for full CIFAR-10) feed the calibrators.
//
// Samplers (CalibrationSetSpec::sampler):
// - "numpy": the study's recipe, bit-exact. np.random.seed(seed) once, then
//   `draw` successive rounds of
//       for c in 0..9: np.random.choice(np.where(labels == c)[0], per_class,
//                                       replace=False)
//   on the same generator; returns round `draw` (1-based), concatenated in the
//   order drawn: class 0's per_class indices first (in drawn order), then
//   class 1's, ... The study calibrated its int8 models on draw 1 and its
//   uint8 models on draw 2 (see ../shared/reference/ort_anchors.json).
// - "qpipe": qpipe's own seeded sampler, independent of numpy. A
//   std::mt19937_64 engine seeded with `seed` (its one-integer constructor);
//   `draw` successive rounds as above, each round doing, for class c in 0..9,
//   a partial Fisher-Yates over a fresh copy of that class's indices in
//   ascending order: for i in 0..per_class-1, j = i + U[0, m-1-i] and swap
//   positions i and j (m = class size). U[0, r] is masked rejection on the
//   engine's 64-bit outputs (mask = smallest 2^k-1 >= r; draw & mask until
//   <= r), so results do not depend on the standard library's distributions.
//   Output: class 0's picks in drawn order, then class 1's, ...
// - "first": the first per_class * 10 images of the split (not balanced;
//   seed and draw are ignored).
//
// Errors: unknown sampler, per_class < 1, draw < 1 -> kSpec; a class with fewer
// than per_class images -> kSpec naming the class and both counts; a label
// outside 0..9 -> kInput naming its index.

#include <cstdint>
#include <string>
#include <vector>

namespace qpipe {

struct CalibrationSetSpec {
  std::string sampler = "numpy";  // "numpy" | "qpipe" | "first"
  uint32_t seed = 42;
  int per_class = 100;
  int draw = 1;  // 1-based round of the seeded generator
};

inline constexpr int kCalibrationClasses = 10;

// The selected global indices (see above for their order).
std::vector<int64_t> select_calibration_set(const std::vector<int>& labels, const CalibrationSetSpec& spec);

}  // namespace qpipe
