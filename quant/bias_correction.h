#pragma once
// Empirical bias correction (Nagel et al. 2019, "Data-Free Quantization",
// empirical variant; the study's follow-up work): quantizing weights and
// inputs shifts the expected output of a Conv/Gemm. Over the calibration
// images we measure, per output channel c,
//
//     delta[c] = mean(y_qdq[:, c, ...]) − mean(y_fp32[:, c, ...])
//
// where y is the node's float output before its QuantizeLinear (the QDQ model
// runs with reference semantics), and set bias[c] ← bias[c] − delta[c],
// re-quantized to int32 at the bias's existing scale s_in·s_w.
//
// Sequential (default): nodes are corrected one at a time in topological
// order, each measured on the QDQ model with every earlier correction
// applied, so later layers see corrected inputs. Otherwise all deltas come
// from one run of the uncorrected model.
//
// Means are accumulated in float64 per batch and summed in batch order:
// results do not depend on thread count. Nodes without a bias are skipped
// (reported), as are nodes missing from the FP32 model.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/tensor.h"

namespace qpipe {

struct BiasCorrectionOptions {
  int64_t batch = 50;
  bool sequential = true;
  // Op types corrected (output channel = dimension 1 of the output).
  std::vector<std::string> op_types = {"Conv", "Gemm"};
};

struct BiasCorrectionRow {
  std::string node;
  int64_t channels = 0;
  double mean_abs_delta = 0.0;  // mean over channels of |delta[c]|
  double max_abs_delta = 0.0;
  int64_t saturated = 0;        // int32 codes clamped
  std::string skipped;          // reason, if not corrected
};

struct BiasCorrectionReport {
  std::vector<BiasCorrectionRow> rows;
  nlohmann::json to_json() const;
};

// Corrects `qdq` in place. `images` is float32 [N, ...] for both models.
BiasCorrectionReport apply_bias_correction(Model& qdq, const Model& fp32, const Tensor& images,
                                           const BiasCorrectionOptions& options = {});

// Per-channel means (dimension 1) of the named tensors over `images`, float64.
std::vector<std::vector<double>> channel_means(const Model& model, const Tensor& images,
                                               const std::vector<std::string>& tensors, int64_t batch);

}  // namespace qpipe
