#pragma once
// Kernel-overflow analysis: 16-bit pair saturation of u8 x s8 integer kernels.
//
// On x86 with AVX2 but no VNNI, ONNX Runtime (MLAS) runs a fused
// QLinearConv / QLinearMatMul with uint8 activations and int8 weights using
// vpmaddubsw, which multiplies neighbouring u8·s8 products and adds each pair
// into a *saturating* int16:
//   acc = bias + Σ_j clip_int16(x[2j]·w[2j] + x[2j+1]·w[2j+1]) − zp_x·Σ_k w[k]
//   y   = clip(round_half_even(float32(acc) · float32(float32(s_x·s_w)/s_y)) + zp_y)
// with K ordered (kh, kw, c) for Conv (k for MatMul) and zero-padded to an
// even length; x are the uint8 codes (int8 codes + 128 when ORT rewrote an
// int8 Q/DQ pair to uint8), padding positions hold zp_x.
// (../shared/reference/ort_fused_int8_numerics.md.)
//
// Static part, per Conv/MatMul/Gemm with int8 weights: every same-sign weight
// pair (w_a, w_b) in one output channel whose worst case over the input code
// range [0, 255] leaves int16: 255·(w_a + w_b) > 32767 or 255·(w_a + w_b) <
// −32768. Opposite-sign pairs cannot overflow (|255·w| ≤ 32385).
//
// Whether ORT would fuse the node (x86 rule): an int8 activation Q/DQ pair is
// rewritten to uint8 only when exactly one compute node reads it; the node
// fuses only when its input and output are both uint8 then. In ResNet8 that
// is conv2d, conv2d_2, conv2d_4, conv2d_7 (and dense/matmul).
//
// Runtime part, over the images: the node's input codes from the QDQ model
// (reference semantics); for every output the flagged pairs are evaluated;
// an output overflows when any pair saturates; its exact and saturated
// accumulators are requantized as above and compared ("codes changed").
// Nodes with no flagged pair cannot overflow and are not evaluated.

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "quant/analysis/common.h"
#include "quant/analysis/qdq_graph.h"

namespace qpipe::analysis {

struct OverflowOptions {
  int64_t batch = 256;
  int input_code_max = 255;  // worst-case u8 input code of the static check
};

struct WeightPair {
  int64_t out_channel = 0;
  int64_t k_a = 0, k_b = 0;  // positions in the packed K order
  std::string pos_a, pos_b;  // "(kh,kw,c)" or "(k)"
  int w_a = 0, w_b = 0;
  int64_t worst = 0;  // input_code_max · (w_a + w_b)
};

struct NodeOverflow {
  std::string node, op_type, input, output;
  bool analyzable = false;
  std::string note;  // why not analyzable
  bool would_fuse = false;
  std::string fuse_reason;
  bool input_u8 = false, output_u8 = false;
  QuantParams in, out;
  std::vector<QuantParams> w;
  int64_t k = 0, k_padded = 0, out_channels = 0;
  std::vector<WeightPair> pairs;  // flagged pairs
  // Runtime (when pairs is non-empty).
  bool evaluated = false;
  int64_t images = 0, outputs = 0, overflowed_outputs = 0, changed_codes = 0;
  int64_t images_with_overflow = 0, images_with_changed_codes = 0;
  int max_code_change = 0;
  double overflow_fraction() const { return outputs ? double(overflowed_outputs) / double(outputs) : 0.0; }
  double changed_fraction() const { return outputs ? double(changed_codes) / double(outputs) : 0.0; }
};

struct OverflowResult {
  int64_t images = 0;
  int input_code_max = 255;
  std::vector<NodeOverflow> nodes;
  std::string advice;  // one actionable sentence (empty when nothing can overflow)
};

OverflowResult analyze_overflow(const QdqGraph& g, const AnalysisData& data, const OverflowOptions& options = {});

// schema "overflow", schema_version 1.
nlohmann::json overflow_to_json(const OverflowResult& r);
std::string overflow_markdown(const OverflowResult& r);

}  // namespace qpipe::analysis
