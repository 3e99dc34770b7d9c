#pragma once
// Kernels and graph rewrite of the "exact" execution mode: how an int8
// deployment target (TFLite-style integer kernels, VNNI / dot-product CPUs,
// NPUs) computes a QDQ model. int8/uint8 codes flow between ops; every
// convolution and matrix product accumulates exactly in int32 (zero points
// subtracted exactly, bias added as int32); every op's output is requantized
// once with a float32 multiplier and round-half-to-even:
//
//   y = sat[qmin,qmax](rne(clamp(float32(acc) * M, +-65536)) + zp_y)
//
// The arithmetic of every op is written out in quant/integer_arithmetic.md
// ("exec_mode = exact"). Session (engine/session.cc) calls
// plan_exact_rewrites() once per plan and swaps the returned kernels in for
// the DQ -> op [-> Relu] -> Q groups they replace (and the graph input's
// Transpose + QuantizeLinear); everything else (Softmax on dequantized
// logits, the output DequantizeLinear) keeps reference float32 semantics.
//
// ISA paths (run-time dispatch, engine/kernels/fast/cpu.h style): AVX-512
// VNNI (vpdpbusd: u8 x s8, four products summed into int32 without
// saturation), AVX2 (bytes widened to int16, vpmaddwd: exact) and portable
// scalar C++. All integer sums are exact and the requantization is the same
// float32 sequence on every path, so the paths are bit-identical; results do
// not depend on the batch size or the thread count.

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/kernel.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::integer {

enum class ExactIsa { kScalar, kAvx2, kAvx512Vnni };
const char* exact_isa_name(ExactIsa isa);
// Whether the CPU can run `isa` (scalar: always).
bool exact_isa_supported(ExactIsa isa);
// The best supported path under the engine's ISA ceiling: scalar when
// `force_portable` or QPIPE_FORCE_PORTABLE=1; QPIPE_FORCE_ISA=avx2 caps at
// AVX2, =portable at scalar (engine/kernels/fast/cpu.h).
ExactIsa exact_best_isa(bool force_portable);

// Output stage shared by every kernel: codes in [qmin, qmax] (int8: -128..127,
// uint8: 0..255); `relu` clamps below at zp_y (ReLU folded into the group).
struct ExactOutput {
  bool is_signed = true;  // output dtype int8 (else uint8)
  int32_t zp = 0;
  bool relu = false;
  int32_t lo() const { return std::max<int32_t>(is_signed ? -128 : 0, relu ? zp : -1000); }
  int32_t hi() const { return is_signed ? 127 : 255; }
};

// An elementwise Mul/Add by a per-channel constant applied to the conv's
// output codes in registers before they are stored (the group that followed
// the conv, fused): the same arithmetic as make_exact_binary per element,
//   a = code - za;  Mul: v = float32(a * bz[c]) * m[c];  Add: v = float32(a) * m[c] + tb[c]
//   (tb[c] = float32(b[c] - zp_b[c]) * Mb[c]), code = sat(rne(clamp(v)) + zp), so fusing changes no bit.
struct ExactPostOp {
  bool is_mul = false;
  int32_t za = 0;
  std::vector<int32_t> bz;  // Mul: [m]
  std::vector<float> m;     // [m]: Mul M, Add Ma
  std::vector<float> tb;    // Add: [m]
  ExactOutput out;
};

// Conv (group 1, NCHW) and MatMul on codes:
//   acc[m,p] = b[m] + sum_k (x[k,p] - zp_x) * (w[m,k] - zp_w[m])      (exact int32)
//   y[m,p]   = sat(rne(float32(acc) * M[m]) + zp_y),   M[m] = float32(float32(s_x * s_w[m]) / s_y)
// Padding pixels read zp_x (contribute 0).
struct ExactConvParams {
  reference::ConvParams p;      // geometry; the batch p.n is ignored (taken from the input)
  bool x_signed = true;         // activation codes int8 (else uint8)
  bool w_signed = true;         // weight codes int8 (else uint8)
  std::vector<uint8_t> w;       // raw weight codes [m, c, kh, kw] (bytes of int8 or uint8)
  std::vector<int32_t> zp_w;    // [m]
  std::vector<int32_t> bias;    // [m] int32 (zeros when absent)
  int32_t zp_x = 0;
  std::vector<float> multiplier;  // [m]
  ExactOutput out;
  std::vector<ExactPostOp> post;  // fused per-channel Mul/Add groups, applied in order after `out`
};
// Returns nullptr when the sums could overflow int32 (K too large).
std::unique_ptr<OpKernel> make_exact_conv(ExactConvParams params, ExactIsa isa);
// x [rows, K] codes, w [K, M] (as MatMul's B), one multiplier per column.
std::unique_ptr<OpKernel> make_exact_matmul(ExactConvParams params);

// Elementwise Add / Mul of a code tensor `a` with either a code tensor `b` of
// the same shape, or a constant per channel (axis 1; `b_const` holds C codes,
// one scale and zero point per channel). `inner` = elements per channel row.
//   Add: v = float32(a - zp_a) * Ma + float32(b - zp_b) * Mb     (two rounded products, one rounded sum, no FMA)
//        Ma = float32(s_a / s_y), Mb = float32(s_b / s_y)
//   Mul: v = float32((a - zp_a) * (b - zp_b)) * M,   M = float32(float32(s_a * s_b) / s_y)
//   y = sat(rne(clamp(v, +-65536)) + zp_y)
struct ExactBinaryParams {
  bool is_mul = false;
  bool a_signed = true, b_signed = true;
  int32_t zp_a = 0;
  float scale_a = 1.f;
  // b as a tensor: one zero point/scale; b as a constant: per channel.
  bool b_is_const = false;
  std::vector<int32_t> b_codes;  // [C] when b_is_const
  std::vector<int32_t> zp_b;     // [1] or [C]
  std::vector<float> scale_b;    // [1] or [C]
  int64_t channels = 1, inner = 1;
  float scale_y = 1.f;
  ExactOutput out;
};
std::unique_ptr<OpKernel> make_exact_binary(const ExactBinaryParams& params, ExactIsa isa);

// Average over each plane of `count` elements (global average pool):
//   y = sat(rne(float32(sum(x) - zp_x * count) * M) + zp_y),  M = float32(s_x / float32(s_y * count))
std::unique_ptr<OpKernel> make_exact_global_avgpool(int64_t count, bool x_signed, int32_t zp_x, float scale_x,
                                                    float scale_y, ExactOutput out);

// Reshape/Flatten on codes: a view when the output parameters equal the
// input's, else y = sat(rne(float32(x - zp_x) * M) + zp_y), M = float32(s_x / s_y).
std::unique_ptr<OpKernel> make_exact_requantize(bool x_signed, int32_t zp_x, float scale_x, float scale_y,
                                                ExactOutput out, bool view);

// Transpose NHWC -> NCHW of float input followed by QuantizeLinear (per
// tensor): the graph input's group, codes written in NCHW order. Each code is
// reference::quantize_value (sat(rne(x / s) + zp), NaN -> zp clamped as the
// reference kernel), so the codes equal the reference plan's bit for bit.
std::unique_ptr<OpKernel> make_exact_quantize_nhwc(float scale, int32_t zp, bool is_signed, ExactIsa isa);

// ---- Graph rewrite (used by engine/session.cc) ----------------------------

struct ExactStepView {
  std::size_t node = 0;
  std::vector<int> in, out;
};
struct ExactPlanView {
  const Model* model = nullptr;
  const std::vector<ValueDesc>* descs = nullptr;    // per value id
  const std::vector<Tensor>* constants = nullptr;   // per value id (empty when not constant)
  std::vector<ExactStepView> steps;
  const std::set<int>* keep = nullptr;              // graph outputs and fetched taps: never fused away
  std::vector<std::string> names;                   // per value id
  ExactIsa isa = ExactIsa::kScalar;
  bool fuse = true;  // fuse Mul/Add-by-constant groups into the preceding conv (SessionOptions::fuse)
};
struct ExactRewrite {
  std::size_t at = 0;                // the step index (of the group's QuantizeLinear) it replaces
  std::vector<std::size_t> drop;     // step indices made obsolete (op, Relu, Q)
  std::size_t node = 0;              // the group's op node
  std::unique_ptr<OpKernel> kernel;
  std::vector<int> in, out;
};
// The DQ -> op [-> Relu] -> Q groups exec_mode "exact" runs on codes. Groups
// it cannot express exactly (unsupported attributes, per-axis activation
// parameters, fetched intermediates) are left out and keep reference
// semantics; the DequantizeLinear steps nobody reads any more are the
// caller's to drop.
std::vector<ExactRewrite> plan_exact_rewrites(const ExactPlanView& view);

// ---- Internals shared by the ISA files (exact_*.cc) -----------------------
namespace exact_detail {

// Packed convolution (implicit GEMM, no im2col). Each image is stored as
// padded phase planes of dwords, four channels per dword (u8 domain, padding
// = zx, channels beyond C = 0): planes[cg][a][b][hs][ws], padded input row
// hs * sh + a, column ws * sw + b. A tap (i, j) of channel group cg then reads
// a contiguous run: for the "wide pixel" q = oh * Ws + ow the activation dword
// is planes[aoff[g] + q], g = (i * kw + j) * CG + cg. Columns ow >= out_w
// are computed and discarded. Weights are [Mpad][G] dwords of four s8 (same
// channel order), zero for channels >= C.
struct ConvPack {
  reference::ConvParams p;
  int64_t K = 0;                 // C * kh * kw (real taps)
  int64_t CG = 0, G = 0;         // channel groups of 4, dword taps
  int64_t Hs = 0, Ws = 0, plane = 0;  // phase plane geometry (dwords)
  int64_t P = 0;                 // out_h * out_w
  int64_t Q = 0, Qpad = 0;       // wide pixels out_h * Ws, rounded up to 64
  int64_t Mpad = 0;
  int64_t planes_dwords = 0;     // CG * sh * sw * plane (+ Qpad + 64 slack for the wide reads)
  std::vector<int64_t> aoff;     // [G]
  std::vector<bool> row_phase_used;  // [sh]: phases no tap reads are not packed
  // Direct stores of 16 wide-pixel codes (AVX-512 path): for vector v the
  // segments seg_begin[v]..seg_begin[v+1] each move lanes to the front
  // (pshufb `shuf`) and store `mask` bytes at y + m * P + off.
  struct StoreSeg {
    int64_t off = 0;
    uint16_t mask = 0;
    uint8_t shuf[16] = {};
  };
  std::vector<int32_t> seg_begin;
  std::vector<StoreSeg> segs;
  std::vector<uint32_t> w4;      // [Mpad][G]   (VNNI and scalar)
  std::vector<uint32_t> w16;     // [Mpad][G][2] int16 pairs (w0,w2), (w1,w3) (AVX2)
  std::vector<int32_t> c;        // [Mpad] bias - zx*sum(w) + K*zx*zw
  std::vector<int32_t> zw;       // [Mpad] weight zero point in the s8 domain
  bool any_zw = false;
  std::vector<float> mult;       // [Mpad]
  int32_t zx_u8 = 0;             // activation zero point in the u8 domain
  bool x_signed = true;
  ExactOutput out;
  std::vector<ExactPostOp> post;  // per-channel vectors padded to Mpad
};

// Packs one image (NCHW codes) into the phase planes (planes_dwords dwords).
// `scratch` holds padded byte rows. Portable (SSE2 when available).
void pack_image(const ConvPack& pk, const uint8_t* x, std::vector<uint8_t>& scratch, uint32_t* planes);

// The fused post ops on one code of channel m (scalar definition).
int32_t apply_post(const ConvPack& pk, int64_t m, int32_t code);

// acc -> code (scalar definition of the output stage).
inline int32_t requant(int32_t acc, float mult, const ExactOutput& o, int32_t lo, int32_t hi) {
  float v = static_cast<float>(acc) * mult;
  v = v < -65536.f ? -65536.f : (v > 65536.f ? 65536.f : v);
  int32_t r = static_cast<int32_t>(__builtin_nearbyintf(v)) + o.zp;
  return r < lo ? lo : (r > hi ? hi : r);
}

// GEMM + output stage for one image: y[m*P + p] for m < M, p < P. `sx` is
// scratch of Qpad int32 (per-pixel sums, used when any_zw), `tmp` scratch of
// Mpad*Qpad bytes (wide-pixel results before the valid columns are copied).
void gemm_scalar(const ConvPack& pk, const uint32_t* planes, int32_t* sx, uint8_t* tmp, uint8_t* y);
void gemm_avx2(const ConvPack& pk, const uint32_t* planes, int32_t* sx, uint8_t* tmp, uint8_t* y);
void gemm_avx512vnni(const ConvPack& pk, const uint32_t* planes, int32_t* sx, uint8_t* tmp, uint8_t* y);
// Copies the valid columns of the wide-pixel results to y.
void copy_valid(const ConvPack& pk, const uint8_t* tmp, uint8_t* y);

// Elementwise row: y[i] for i < n with b either a row (bp) or one value (bv).
struct BinaryRow {
  bool is_mul;
  bool a_signed, b_signed;
  int32_t za, zb;
  float ma, mb;   // Add: Ma, Mb; Mul: ma = M
  ExactOutput out;
};
void binary_row_scalar(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y, int64_t n);
void binary_row_avx2(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y, int64_t n);
void binary_row_avx512(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y, int64_t n);
// QuantizeLinear of n floats (reference::quantize_value per element) to codes.
void quantize_row_scalar(const float* x, int64_t n, float scale, int32_t zp, bool is_signed, uint8_t* y);
void quantize_row_avx512(const float* x, int64_t n, float scale, int32_t zp, bool is_signed, uint8_t* y);

}  // namespace exact_detail
}  // namespace qpipe::integer
