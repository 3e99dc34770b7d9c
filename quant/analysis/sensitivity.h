#pragma once
// Layer sensitivity: which layers' quantization costs the accuracy.
//
// "Layer" = a quantizable compute node of the QDQ model (qdq_graph.h: a node
// that reads a DequantizeLinear output or owns an output-only Q/DQ), and a
// layer's quantization is what it owns there: the Q/DQ of the activations it
// reads and its quantized constants. Two variants per layer, both built by
// QDQ graph surgery (keep_float / only_quantized):
//   only_quantized  only this layer quantized, everything else FP32
//                   -> the damage this layer does on its own (delta vs FP32)
//   keep_float      everything quantized except this layer, kept FP32
//                   -> the accuracy recovered by not quantizing it (delta vs
//                      the fully quantized model)
// For each variant: top-1 accuracy, per-class accuracy, and the SQNR of the
// model output against the FP32 model's output on the same images. The
// baselines (FP32 model, full QDQ model) are measured on the same images.
//
// Ranking: only_quantized by accuracy delta ascending (largest drop first),
// keep_float by delta descending (largest recovery first); ties by output
// SQNR (lower first / higher first), then by layer order.
//
// Parallelism: the variants run concurrently as tbb tasks in the caller's
// arena (the caller sets the thread budget); each variant walks the images
// in batch order on its own, so results do not depend on the thread count.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "engine/graph.h"
#include "quant/analysis/common.h"
#include "quant/analysis/qdq_graph.h"

namespace qpipe::analysis {

struct SensitivityOptions {
  int64_t batch = 256;
  bool only_quantized = true;
  bool keep_float = true;
  std::vector<std::string> layers;  // names to analyze; empty = every layer
};

struct AccuracyStats {
  int64_t correct = 0, total = 0;
  std::vector<int64_t> class_correct, class_total;
  ErrorStats output;  // vs the FP32 model's output
  double accuracy() const { return total ? double(correct) / double(total) : 0.0; }
  double class_accuracy(std::size_t c) const {
    return class_total[c] ? double(class_correct[c]) / double(class_total[c]) : 0.0;
  }
};

struct VariantResult {
  std::string layer, op_type, variant;  // variant: "only_quantized" | "keep_float"
  AccuracyStats stats;
  double delta_pp = 0;                  // accuracy − baseline, percentage points
  std::vector<double> class_delta_pp;   // per class, same baseline
  int rank = 0;                         // 1 = most sensitive
};

struct SensitivityResult {
  std::vector<std::string> class_names;
  int64_t images = 0;
  AccuracyStats fp32, qdq;
  std::vector<VariantResult> only_quantized;  // ranked; baseline = fp32
  std::vector<VariantResult> keep_float;      // ranked; baseline = qdq
};

SensitivityResult analyze_sensitivity(const Model& fp32, const QdqGraph& qdq, const AnalysisData& data,
                                      const SensitivityOptions& options = {});

// schema "sensitivity", schema_version 1.
nlohmann::json sensitivity_to_json(const SensitivityResult& r);
// Ranking tables; `focus_class` (e.g. "dog") gets its own delta column.
std::string sensitivity_markdown(const SensitivityResult& r, const std::string& focus_class = "dog");
// Ranked bars: accuracy delta (pp) per layer for both variants.
std::string sensitivity_chart_svg(const SensitivityResult& r, const std::string& variant);

}  // namespace qpipe::analysis
