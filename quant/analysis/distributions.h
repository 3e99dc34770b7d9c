#pragma once
// Distributions: FP32 values of every quantized tensor against its
// quantization grid.
//
// For each activation point X (values from the FP32 model's tensor X over
// the image set) and each constant (the FP32 model's initializer), with the
// QDQ model's scale s and zero point z (per channel for per-axis constants):
//   code histogram  one bin per code qmin..qmax of the saturated code
//                   clamp(round_half_even(x / s) + z) — what the quantized
//                   model stores; clipped values land in the end bins
//   clipped         values whose unsaturated code is < qmin or > qmax
//   codes used      bins with at least one value (out of qmax − qmin + 1);
//                   int32 constants (biases) keep the distinct codes instead
//                   of a 2^32-bin histogram
//   range used      (max x − min x) / (grid max − grid min), grid =
//                   [s·(qmin − z), s·(qmax − z)] (union over channels)
// Streaming over batches, integer counts (exact, order-free).

#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "quant/analysis/common.h"
#include "quant/analysis/qdq_graph.h"

namespace qpipe::analysis {

struct DistributionOptions {
  int64_t batch = 64;
};

struct TensorDistribution {
  std::string name, kind, qdq_tensor;  // kind: "activation" | "constant"
  QuantParams params;                  // the first (per-tensor) parameters
  bool per_channel = false;
  int64_t count = 0;
  double min = 0, max = 0;             // FP32 values
  double grid_min = 0, grid_max = 0;
  std::vector<int64_t> code_hist;      // index = code − params.qmin (empty for int32 codes)
  std::set<int64_t> wide_codes;        // int32 codes (biases): the distinct codes instead
  int64_t clipped_low = 0, clipped_high = 0;

  int64_t codes_used() const;
  int64_t codes_total() const { return int64_t(params.qmax) - int64_t(params.qmin) + 1; }
  double clipped_fraction() const { return count ? double(clipped_low + clipped_high) / double(count) : 0.0; }
  double range_used() const { return grid_max > grid_min ? (max - min) / (grid_max - grid_min) : 0.0; }
};

struct DistributionResult {
  int64_t images = 0;
  std::vector<TensorDistribution> tensors;  // activations then constants
  const TensorDistribution* find(const std::string& name) const;
};

DistributionResult analyze_distributions(const Model& fp32, const QdqGraph& qdq, const AnalysisData& data,
                                         const DistributionOptions& options = {});

// schema "distributions", schema_version 1 (histograms included).
nlohmann::json distributions_to_json(const DistributionResult& r);
std::string distributions_markdown(const DistributionResult& r);
std::string histogram_chart_svg(const TensorDistribution& t);

}  // namespace qpipe::analysis
