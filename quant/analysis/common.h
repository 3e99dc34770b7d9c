#pragma once
// Shared pieces of the analyses (quant/analysis/*): the image source they
// stream over, and the streaming error statistics behind SQNR.
//
// Determinism: every analysis walks the images in batches in index order.
// Within a batch each statistic is accumulated sequentially in element order
// into a per-batch partial (double), and the partials are merged in batch
// order. Results therefore depend on the batch size (in the last bits) but
// never on the thread count, which only decides how many tensors or variants
// are processed at once.

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "quant/qparams.h"

namespace qpipe::analysis {

// Where the images come from: a CIFAR-10 split or, in tests, anything that
// yields batches of (input tensor, labels).
struct AnalysisData {
  int64_t size = 0;
  std::vector<std::string> class_names;
  std::function<Cifar10Batch(int64_t first, int64_t count)> read;

  static AnalysisData from_cifar10(const Cifar10Dataset& d);
};

// Streaming comparison of a reference x (FP32 model) with an approximation
// x̂ (quantized model), all sums in double:
//   SQNR [dB] = 10·log10(Σx² / Σ(x − x̂)²)      (+inf when x̂ == x exactly)
//   cosine    = Σx·x̂ / sqrt(Σx² · Σx̂²)
//   max_abs   = max |x − x̂|
// Clipping (only when a grid is given to add()): x is clipped when its
// QuantizeLinear code before saturation, round_half_even(x / scale) +
// zero_point (float32 division, as ONNX), lies below qmin or above qmax.
struct ErrorStats {
  double sum_x2 = 0, sum_e2 = 0, sum_xy = 0, sum_y2 = 0, max_abs = 0;
  int64_t count = 0, clipped_low = 0, clipped_high = 0;

  void add(std::span<const float> x, std::span<const float> xhat);
  void add_clipping(std::span<const float> x, const QuantParams& p);
  void merge(const ErrorStats& o);

  double sqnr_db() const;  // +inf when sum_e2 == 0; NaN when count == 0
  double cosine() const;   // NaN when either norm is 0
  double clipped_fraction() const { return count ? double(clipped_low + clipped_high) / double(count) : 0.0; }
  // {"sqnr_db": x | null, "exact": bool, "cosine", "max_abs_error", "count", ...}
  nlohmann::json to_json(bool with_clipping) const;
};

// A JSON number, or null for NaN/±inf (JSON has no infinities).
nlohmann::json json_number(double v);
// Rounds for display in Markdown tables: "inf", "-", or fixed decimals.
std::string fmt_db(double v, int decimals = 2);

// Shapes of a model's graph inputs and computed tensors with the batch
// dimension made symbolic (-1), from one run on a zero batch of one.
std::map<std::string, Shape> tensor_shapes(const Session& s);

// Calls fn(slice, channel) for each contiguous run of values that share one
// index along `axis` (axis -1: the whole tensor, channel 0).
void for_each_channel_run(std::span<const float> values, const Shape& shape, int axis,
                          const std::function<void(std::span<const float>, int64_t)>& fn);

}  // namespace qpipe::analysis
