#pragma once
// Per-tensor SQNR between an FP32 model and its QDQ model (PyTorch Numeric
// Suite style), streamed over an image set.
//
// For every activation quantization point X of the QDQ model (see
// qdq_graph.h) whose name also exists in the FP32 model, and for the model
// output:
//   accumulated: x = FP32 model's X, x̂ = QDQ model's X_dq — the error of the
//                whole quantized model up to that point.
//   local:       x = FP32 model's X, x̂ = local(X) as build_local_model()
//                defines it: X's producing op alone, fed the FP32 model's
//                inputs passed through their own Q/DQ, with the QDQ model's
//                quantized constants, followed by X's Q/DQ. This isolates the
//                error that op and its output grid add; a graph input's
//                local value is just its own Q/DQ.
// For every constant (weights, biases, BatchNorm constants): x = the FP32
// model's initializer, x̂ = the QDQ model's dequantized constant (accumulated
// and local are the same thing).
// Each entry also gives cosine similarity, max |x − x̂| and the fraction of x
// outside the quantization grid (clipped at qmin/qmax), see ErrorStats.
//
// Streaming and determinism: see common.h. Memory: one batch of every
// tapped tensor of the FP32, QDQ and local models (ResNet8: ~3 MB per image
// over the three models, so the default batch is 32).

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "engine/graph.h"
#include "quant/analysis/common.h"
#include "quant/analysis/qdq_graph.h"

namespace qpipe::analysis {

struct SqnrOptions {
  int64_t batch = 32;
  bool local = true;  // also compute the local variant
};

struct TensorSqnr {
  std::string name;        // X (activation) or the FP32 initializer name (constant)
  std::string kind;        // "activation" or "constant"
  std::string qdq_tensor;  // X_dq or W_dq
  std::string op;          // producer "Conv conv2d" (activation) / first consumer (constant)
  QuantParams params;      // the (first) quantization parameters
  bool per_channel = false;
  bool model_output = false;
  ErrorStats accumulated;
  ErrorStats local;
  bool has_local = false;
  std::string local_note;  // why there is no local value
};

struct SqnrResult {
  std::string fp32_path, qdq_path;
  int64_t images = 0, batch = 0;
  std::vector<TensorSqnr> activations;  // in the QDQ model's order
  std::vector<TensorSqnr> constants;
  std::string fp32_output, qdq_output;
  ErrorStats output;  // FP32 output vs QDQ output (accumulated)

  const TensorSqnr* find(const std::string& name) const;
};

SqnrResult analyze_sqnr(const Model& fp32, const QdqGraph& qdq, const AnalysisData& data,
                        const SqnrOptions& options = {});

// schema "sqnr", schema_version 1.
nlohmann::json sqnr_to_json(const SqnrResult& r);
// Markdown table: tensor, op, scale, zp, accumulated dB, local dB, cosine, max err, clipped %.
std::string sqnr_markdown(const SqnrResult& r);
// Horizontal bars per activation tensor, both variants.
std::string sqnr_chart_svg(const SqnrResult& r);

}  // namespace qpipe::analysis
