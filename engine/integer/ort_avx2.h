#pragma once
// Kernels of the "ort-avx2" execution mode: what ONNX Runtime 1.30 computes
// for a QDQ model at its default optimization level on an x86-64 CPU with
// AVX2 and without VNNI (../shared/reference/ort_fused_int8_numerics.md;
// the arithmetic of every op is written out in quant/integer_arithmetic.md).
//
// Session (engine/session.cc) finds the QDQ groups ORT fuses and replaces
// them with these kernels; everything else keeps reference (float32)
// semantics. Tensors between kernels stay in the model's own int8 codes; the
// kernels apply ORT's s8 -> u8 rewrite (code + 128, zero point + 128)
// internally, which changes no value by itself.
//
// All kernels compute each output element on its own (exact integer sums,
// one float32 requantization), so results do not depend on threads or batch.

#include <cstdint>
#include <memory>
#include <vector>

#include "engine/kernel.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::integer {

// QLinearConv / QLinearMatMul on u8 activations x s8 weights, as MLAS's AVX2
// kernel computes them: K ordered (kh, kw, c), zero-padded to even length;
//   acc = bias + sum_j sat16(x[2j] w[2j] + x[2j+1] w[2j+1]) - zp_x * sum_k w[k]
//   y   = clamp(round_half_even(float(acc) * m[ch]) + zp_y, 0, 255)
// with m = float32(float32(s_x * s_w[ch]) / s_y). x includes its zero point
// (padding reads zp_x). `saturate` = false gives exact int32 accumulation.
struct QLinearConvParams {
  reference::ConvParams p;     // geometry (MatMul: c = K, h = w = kh = kw = 1)
  std::vector<int8_t> w;       // [m, c, kh, kw]
  std::vector<int32_t> bias;   // [m] (zeros when absent)
  int32_t zp_x = 0;            // u8 domain
  int32_t zp_y = 0;            // u8 domain
  std::vector<float> multiplier;  // [m]
  bool saturate = true;
};
// Inputs: x codes (int8, [n, c, h, w]); output: y codes (int8, [n, m, oh, ow]).
std::unique_ptr<OpKernel> make_qlinear_conv(QLinearConvParams params);
// Inputs: x codes (int8, [n, k]); output: y codes (int8, [n, m]); w is [k, m]
// as in MatMul (transposed internally).
std::unique_ptr<OpKernel> make_qlinear_matmul(QLinearConvParams params);

// QLinearAveragePool over the whole plane (MLAS global average pool):
//   y = clamp(round_half_even(float(sum(x) - zp_x * count) * (s_x / (s_y * count))) + zp_y, 0, 255)
std::unique_ptr<OpKernel> make_qlinear_global_avgpool(int64_t count, int32_t zp_x, int32_t zp_y, float scale_x,
                                                      float scale_y);

// QLinearAdd (MLAS AVX2, float multiply):
//   y = clamp(round_half_even(fma(a, s_a/s_c, fma(b, s_b/s_c, zp_c - (s_a/s_c zp_a + s_b/s_c zp_b)))), 0, 255)
std::unique_ptr<OpKernel> make_qlinear_add(int32_t zp_a, float scale_a, int32_t zp_b, float scale_b, int32_t zp_c,
                                           float scale_c);

// QLinearSoftmax (ORT contrib, uint8) over the last axis of length d: a
// 256-entry uint32 table t[i] = lrint(min(2^32-1 / d, 2^23-1) * exp((i - 255) s_x)),
// shifted so the row maximum reads t[255]; then with S = sum_j t[x_j] and
// Y = uint32(1.0f / s_y):  y = min((t[x] * Y + S / 2) / S + zp_y, 255)
// (integer division).
std::unique_ptr<OpKernel> make_qlinear_softmax(int64_t d, float scale_x, float scale_y, int32_t zp_y);

}  // namespace qpipe::integer
