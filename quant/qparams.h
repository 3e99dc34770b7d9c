#pragma once
// Affine quantization parameters and the offline quantization math of qpipe
// (STYLE.md 4, 5): choosing scale and zero point from a real range,
// QuantizeLinear / DequantizeLinear on values and spans (per tensor and per
// axis), weight and bias quantization, and the fixed-point multiplier used
// later by the integer kernels.
//
// ---------------------------------------------------------------------------
// The equation
// ---------------------------------------------------------------------------
// A quantized code q (an integer) stands for the real number
//
//     real = scale · (q − zero_point)
//
// with scale > 0 and zero_point an integer inside the code range. The map is
// affine, and real 0 is exactly representable (it is q = zero_point), so zero
// padding and ReLU's flat part add no error.
//
// ONNX QuantizeLinear:    q = saturate(round(x / scale) + zero_point)
// ONNX DequantizeLinear:  x = (q − zero_point) · scale
// `round` is round-half-to-even; `saturate` clamps to the full range of the
// storage type: int8 [−128, 127] (ONNX QDQ int8, unlike ncnn's ±127), uint8
// [0, 255], int32 [−2^31, 2^31 − 1]. The division x / scale is one float32
// division (not a multiplication by 1/scale); dequantization is one float32
// multiplication of the exact integer difference.
//
// ---------------------------------------------------------------------------
// Choosing scale and zero point (ONNX Runtime's compute_scale_zp, as of the
// 1.2x/1.30 quantization tool)
// ---------------------------------------------------------------------------
// Given a real range [rmin, rmax] and a code range [qmin, qmax] (qrange() below):
//  1. Widen the range to contain 0: rmin ← min(rmin, 0), rmax ← max(rmax, 0)
//     (float32).
//  2. Symmetric: m = max(|rmin|, |rmax|); rmin ← −m, rmax ← +m.
//  3. scale = (rmax − rmin) / (qmax − qmin), where the subtraction is a
//     float32 operation (ORT holds rmin/rmax as float32 numpy scalars) and the
//     division is float64; the float64 quotient is kept for step 4 and rounded
//     to float32 only at the end.
//  4. If scale (float64) < FLT_MIN (the range has zero width): scale = 1,
//     zero_point = 0, for every type.
//     Else, symmetric: zero_point = round((qmin + qmax) / 2), which does not
//     depend on the data: int8 → 0, uint8 (range [0, 254]) → 127.
//     Else: zero_point = round(qmin − rmin / scale) in float64 with the
//     float64 scale. Round is half-to-even (numpy.round). Because 0 is in the
//     range the result lies in [qmin, qmax] already; we clamp anyway.
//  5. scale is rounded to float32.
// Example (the study's recipe): int8 activations with MinMax ranges give
// scale = (max − min)/255 and zero_point = round(−128 − min/scale); the
// network input 0..255 gives exactly scale 1, zero point −128.
//
// Code ranges (ORT's get_qmin_qmax_for_qType): reduce_range wins over
// symmetric.
//            full          symmetric      reduce_range
//   int8   [−128, 127]    [−127, 127]    [−64, 64]
//   uint8  [0, 255]       [0, 254]       [0, 127]
//   int32  [−2^31, 2^31−1] [−(2^31−1), 2^31−1] [−2^30, 2^30]  (not in ORT;
//          by analogy, and only int32 bias codes are produced in practice)
// These ranges only steer the choice of scale/zero point. Quantization
// always saturates to the full storage range (ONNX semantics, and what ORT's
// quantize_nparray does), which is what QuantParams::qmin/qmax hold.
//
// ---------------------------------------------------------------------------
// Weights and biases (ORT's quantize_data / quantize_bias_static)
// ---------------------------------------------------------------------------
// Weights: per tensor, or per channel along an axis (0 for Conv weights
// [Cout, Cin, kh, kw]; 1 for MatMul B [K, N] and Gemm B without transB).
// Each slice's min and max (no clipping) go through choose_qparams with the
// weight's symmetric flag (ORT default: int8 weights symmetric, uint8
// weights asymmetric) and are then quantized with QuantizeLinear semantics.
// Bias: int32, zero point 0, scale_bias[c] = float32(scale_in · scale_w[c])
// (a float32 product), code = clamp(round(float64(b) / float64(scale_bias)))
// to the int32 range, half-to-even. Per-channel weights give per-channel bias
// scales. ORT ≥ 1.20 additionally enlarges the weight scale when a bias would
// not fit in int32; we do not: the number of saturated bias codes is
// reported instead (QuantizedTensor::saturated).
//
// ---------------------------------------------------------------------------
// Fixed-point multipliers (tflite QuantizeMultiplier / gemmlowp)
// ---------------------------------------------------------------------------
// An integer kernel rescales an int32 accumulator by a real factor
// M = s_in·s_w / s_out. M is stored as a Q0.31 significand m ∈ [2^30, 2^31)
// and an exponent: M ≈ m · 2^(shift − 31). quantize_multiplier(M) uses frexp;
// a significand that rounds up to 2^31 is halved and the shift incremented;
// multipliers below about 2^−32 (shift < −31) become m = 0, shift = 0,
// because shifting right by more than 31 bits would discard every bit anyway
// and shift counts ≥ 32 are undefined in C++; shifts above 30 saturate to
// m = 2^31 − 1, shift = 30 (M ≥ 2^30 is never a sensible rescale).
// multiply_by_quantized_multiplier(x, qm) = RoundingDivideByPOT(
//     SaturatingRoundingDoublingHighMul(x · 2^max(shift, 0), m), max(−shift, 0))
// with gemmlowp's rounding. The high multiply is round(x·m / 2^31) with the
// sign-aware nudge 2^30 (product ≥ 0) or 1 − 2^30 (product < 0) and a
// truncating division, so ties go toward +∞ (0.5 → 1, −0.5 → 0); its only
// overflow, INT32_MIN · INT32_MIN, saturates to INT32_MAX. The
// power-of-two division rounds to nearest with ties away from zero
// (0.5 → 1, −0.5 → −1). For shift > 0 the product x · 2^shift · m is
// formed in 128 bits and the result saturates to int32 (gemmlowp/tflite
// form x · 2^shift in int32, undefined on overflow; otherwise identical).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor.h"

namespace qpipe {

// The quantized storage types qpipe produces.
enum class QType { kInt8, kUInt8, kInt32 };

const char* qtype_name(QType t);                 // "int8", "uint8", "int32"
DType qtype_dtype(QType t);                      // kInt8 → DType::kInt8, ...
QType qtype_from_dtype(DType t);                 // PtqError(kUnsupported) for float/int64
QType parse_qtype(std::string_view name);        // "int8"|"uint8"|"int32", else PtqError(kSpec)

// Code range used to choose scale/zero point (table above).
struct QRange {
  int32_t min, max;
};
QRange qrange(QType t, bool reduce_range = false, bool symmetric = false);
inline int32_t qmin(QType t, bool reduce_range = false, bool symmetric = false) {
  return qrange(t, reduce_range, symmetric).min;
}
inline int32_t qmax(QType t, bool reduce_range = false, bool symmetric = false) {
  return qrange(t, reduce_range, symmetric).max;
}
// Full storage range of the type (the saturation bounds of QuantizeLinear).
QRange storage_range(QType t);

// real = scale · (q − zero_point). qmin/qmax are the saturation bounds that
// quantize() clamps to: always the full storage range of `type`.
struct QuantParams {
  float scale = 1.0f;
  int32_t zero_point = 0;
  int32_t qmin = -128;
  int32_t qmax = 127;
  QType type = QType::kInt8;

  bool operator==(const QuantParams&) const = default;
};

// Parameters from a real range, exactly as ORT's compute_scale_zp (see the
// header comment). Non-finite rmin/rmax, or a range whose float32 width
// overflows, → PtqError(kRuntime). rmin > rmax is accepted as ORT does (the
// widening to 0 comes first): ORT's percentile/entropy can return such a
// pair for one-sided data, e.g. (3, 2.9985) for a constant tensor of 3s.
QuantParams choose_qparams(float rmin, float rmax, QType type, bool symmetric,
                           bool reduce_range = false);

// Parameters given explicitly (e.g. read from a model). Validates that scale
// is finite and > 0 and that zero_point is inside the storage range;
// `where` names the origin for the error message (PtqError(kInput)).
QuantParams make_qparams(float scale, int32_t zero_point, QType type,
                         std::string_view where = "quantization parameters");
void validate_qparams(const QuantParams& p, std::string_view where);

// ---- Single values ---------------------------------------------------------
// QuantizeLinear of one value (int8/uint8: float32 division; int32: float64
// division as ORT's bias quantization). NaN quantizes to qmin (what ORT's x86
// MLAS kernel gives; garbage in, garbage out).
int32_t quantize_value(float x, const QuantParams& p);
// DequantizeLinear of one code.
float dequantize_value(int32_t q, const QuantParams& p);

// ---- Spans, per tensor -----------------------------------------------------
// T must match p.type (int8_t ↔ kInt8, uint8_t ↔ kUInt8, int32_t ↔ kInt32)
// and the spans must have equal sizes, else PtqError(kRuntime).
template <typename T>
void quantize(std::span<const float> x, const QuantParams& p, std::span<T> out);
template <typename T>
void dequantize(std::span<const T> q, const QuantParams& p, std::span<float> out);

// ---- Spans, per axis (row-major `shape`, one QuantParams per index along
// `axis`; negative axis counts from the end) -------------------------------
template <typename T>
void quantize_per_axis(std::span<const float> x, const Shape& shape, int axis,
                       std::span<const QuantParams> params, std::span<T> out);
template <typename T>
void dequantize_per_axis(std::span<const T> q, const Shape& shape, int axis,
                         std::span<const QuantParams> params, std::span<float> out);

// ---- Tensors -----------------------------------------------------------------
// A quantized tensor: codes plus one QuantParams (per tensor, axis = -1) or
// one per index along `axis`.
struct QuantizedTensor {
  Tensor codes;
  std::vector<QuantParams> params;
  int axis = -1;
  int64_t saturated = 0;  // codes clamped to qmin/qmax (only counted for bias)

  bool per_channel() const { return axis >= 0; }
};

// float32 tensor → codes of p.type.
Tensor quantize_tensor(const Tensor& x, const QuantParams& p);
Tensor quantize_tensor(const Tensor& x, std::span<const QuantParams> params, int axis);
// codes (int8/uint8/int32) → float32 tensor.
Tensor dequantize_tensor(const Tensor& q, const QuantParams& p);
Tensor dequantize_tensor(const Tensor& q, std::span<const QuantParams> params, int axis);
Tensor dequantize_tensor(const QuantizedTensor& q);

// Weight quantization as ORT's quantize_data: per tensor (axis = -1) or per
// channel along `axis` in [0, rank) (0 for Conv [Cout, Cin, kh, kw], 1 for
// MatMul B [K, N]). Each slice's [min, max] → choose_qparams → QuantizeLinear. An
// empty tensor gets scale 1, zero point 0 (as ORT). `type` must be int8 or
// uint8. Non-float32 input, a bad axis or a non-finite weight → PtqError.
QuantizedTensor quantize_weights(const Tensor& w, QType type, bool symmetric, int axis = -1,
                                 bool reduce_range = false);

// int32 bias quantization as ORT's quantize_bias_static: bias is float32
// [C] (or any shape with C elements when weight_params has one entry);
// weight_params has 1 entry (per-tensor weights → one bias scale) or C
// entries (per-channel weights → per-channel bias scales, axis 0).
QuantizedTensor quantize_bias(const Tensor& bias, float input_scale,
                              std::span<const QuantParams> weight_params);

// ---- Fixed-point multipliers --------------------------------------------------
struct QuantizedMultiplier {
  int32_t multiplier = 0;  // Q0.31 significand in [2^30, 2^31), or 0
  int shift = 0;           // M ≈ multiplier · 2^(shift − 31); > 0 is a left shift

  bool operator==(const QuantizedMultiplier&) const = default;
};

// M must be finite and ≥ 0, else PtqError(kRuntime).
QuantizedMultiplier quantize_multiplier(double m);
// The real value a QuantizedMultiplier stands for.
double quantized_multiplier_value(QuantizedMultiplier qm);

// gemmlowp primitives (exposed for tests and kernels).
int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b);
int32_t rounding_divide_by_pot(int32_t x, int exponent);  // exponent in [0, 31]
int32_t multiply_by_quantized_multiplier(int32_t x, QuantizedMultiplier qm);

}  // namespace qpipe
