// AVX2+FMA arithmetic of the fast float32 kernels. Every function here carries
// __attribute__((target("avx2,fma"))) and is only called after run-time
// dispatch (cpu.h); the translation unit itself is compiled for baseline
// x86-64. No Eigen or other shared templates are instantiated with AVX2 code
// generation, so nothing can clash across translation units (ODR).
//
// Floating-point contraction is switched off for this file: epilogue steps
// must stay separate IEEE operations (a fused multiply-add in the Mul->Add of
// a BatchNorm would change bits against the unfused graph). The GEMM uses
// explicit _mm256_fmadd_ps, which the pragma does not affect.

#pragma GCC optimize("fp-contract=off")

#include <immintrin.h>

#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/epilogue.h"

#define QPIPE_AVX2 __attribute__((target("avx2,fma")))
#define QPIPE_AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) inline

namespace qpipe::fast {
namespace {

// Applies bias and ops to nv vectors of channel c; `off` is the element
// offset of v[0] within each extra tensor.
QPIPE_AVX2_INLINE void epilogue_vectors(const Epilogue& e, int64_t c, __m256* v, int nv, const float* const* extra,
                                        int64_t off) {
  const std::size_t ci = static_cast<std::size_t>(c);
  if (!e.bias.empty()) {
    const __m256 b = _mm256_set1_ps(e.bias[ci]);
    for (int j = 0; j < nv; ++j) v[j] = _mm256_add_ps(v[j], b);
  }
  for (const EpilogueOp& op : e.ops) {
    switch (op.kind) {
      case EpilogueOp::Kind::kAddConst: {
        const __m256 a = _mm256_set1_ps(op.a[ci]);
        for (int j = 0; j < nv; ++j) v[j] = _mm256_add_ps(v[j], a);
        break;
      }
      case EpilogueOp::Kind::kMulConst: {
        const __m256 a = _mm256_set1_ps(op.a[ci]);
        for (int j = 0; j < nv; ++j) v[j] = _mm256_mul_ps(v[j], a);
        break;
      }
      case EpilogueOp::Kind::kRelu: {
        // max(v, 0) returns the second operand for NaN and for -0: exactly v > 0 ? v : 0.
        const __m256 zero = _mm256_setzero_ps();
        for (int j = 0; j < nv; ++j) v[j] = _mm256_max_ps(v[j], zero);
        break;
      }
      case EpilogueOp::Kind::kAddTensor: {
        const float* src = extra[op.extra] + off;
        for (int j = 0; j < nv; ++j) v[j] = _mm256_add_ps(v[j], _mm256_loadu_ps(src + 8 * j));
        break;
      }
      case EpilogueOp::Kind::kQdq: {
        const __m256 s = _mm256_set1_ps(op.a[ci]), z = _mm256_set1_ps(op.z[ci]);
        const __m256 lo = _mm256_set1_ps(op.lo), hi = _mm256_set1_ps(op.hi);
        for (int j = 0; j < nv; ++j) {
          const __m256 q = _mm256_round_ps(_mm256_div_ps(v[j], s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          __m256 t = _mm256_add_ps(q, z);
          t = _mm256_andnot_ps(_mm256_cmp_ps(t, t, _CMP_UNORD_Q), t);  // NaN -> 0
          t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
          v[j] = _mm256_mul_ps(_mm256_sub_ps(t, z), s);
        }
        break;
      }
    }
  }
}

// One tile: output channels [m0, m0 + 4) x pixel groups [g0, g0 + NV).
template <int NV>
QPIPE_AVX2_INLINE void conv_tile(const DirectConv& dc, const float* planes, float* y, const Epilogue& ep,
                                 const float* const* extra, int64_t g0, int64_t mt) {
  const int64_t K = dc.K, P = dc.g.out_h * dc.g.out_w;
  const float* pb[3];
  for (int j = 0; j < NV; ++j) {
    const int64_t p = (g0 + j) * 8, oh = p / dc.g.out_w, ow = p % dc.g.out_w;
    pb[j] = planes + oh * dc.wq + ow;
  }
  // Accumulators are named locals (not an array whose address escapes), so
  // they stay in registers through the K loop.
  __m256 c00 = _mm256_setzero_ps(), c10 = c00, c20 = c00, c30 = c00;
  __m256 c01 = c00, c11 = c00, c21 = c00, c31 = c00;
  __m256 c02 = c00, c12 = c00, c22 = c00, c32 = c00;
  const float* a = dc.packed_w.data() + mt * K * 4;
  const int32_t* koff = dc.koff.data();
  const float* q0 = pb[0];
  const float* q1 = NV >= 2 ? pb[1] : pb[0];
  const float* q2 = NV >= 3 ? pb[2] : pb[0];
  for (int64_t k = 0; k < K; ++k, a += 4) {
    const int64_t o = koff[k];
    const __m256 b0 = _mm256_loadu_ps(q0 + o);
    __m256 b1, b2;
    if constexpr (NV >= 2) b1 = _mm256_loadu_ps(q1 + o);
    if constexpr (NV >= 3) b2 = _mm256_loadu_ps(q2 + o);
    __m256 w = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(w, b0, c00);
    if constexpr (NV >= 2) c01 = _mm256_fmadd_ps(w, b1, c01);
    if constexpr (NV >= 3) c02 = _mm256_fmadd_ps(w, b2, c02);
    w = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(w, b0, c10);
    if constexpr (NV >= 2) c11 = _mm256_fmadd_ps(w, b1, c11);
    if constexpr (NV >= 3) c12 = _mm256_fmadd_ps(w, b2, c12);
    w = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(w, b0, c20);
    if constexpr (NV >= 2) c21 = _mm256_fmadd_ps(w, b1, c21);
    if constexpr (NV >= 3) c22 = _mm256_fmadd_ps(w, b2, c22);
    w = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(w, b0, c30);
    if constexpr (NV >= 2) c31 = _mm256_fmadd_ps(w, b1, c31);
    if constexpr (NV >= 3) c32 = _mm256_fmadd_ps(w, b2, c32);
  }
  __m256 acc[4][3] = {{c00, c01, c02}, {c10, c11, c12}, {c20, c21, c22}, {c30, c31, c32}};
  const int64_t p0 = g0 * 8;
  for (int r = 0; r < 4; ++r) {
    const int64_t m = mt * 4 + r;
    if (m >= dc.g.m) break;
    epilogue_vectors(ep, m, acc[r], NV, extra, m * P + p0);
    float* dst = y + m * P + p0;
    for (int j = 0; j < NV; ++j) _mm256_storeu_ps(dst + 8 * j, acc[r][j]);
  }
}

}  // namespace

QPIPE_AVX2 void direct_conv_avx2(const DirectConv& dc, const float* planes, float* y, const Epilogue& ep,
                                 const float* const* extra, int64_t g_begin, int64_t g_end) {
  const int64_t mtiles = (dc.g.m + 3) / 4;
  for (int64_t g = g_begin; g < g_end; g += 3) {
    const int64_t nv = g_end - g < 3 ? g_end - g : 3;
    for (int64_t mt = 0; mt < mtiles; ++mt) {
      if (nv == 3) conv_tile<3>(dc, planes, y, ep, extra, g, mt);
      else if (nv == 2) conv_tile<2>(dc, planes, y, ep, extra, g, mt);
      else conv_tile<1>(dc, planes, y, ep, extra, g, mt);
    }
  }
}

QPIPE_AVX2 void epilogue_row_avx2(const Epilogue& e, int64_t c, const float* x, float* y, const float* const* extra,
                                  int64_t len) {
  int64_t i = 0;
  for (; i + 8 <= len; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    epilogue_vectors(e, c, &v, 1, extra, i);
    _mm256_storeu_ps(y + i, v);
  }
  if (i < len) {
    const float* ex[16];
    const int n = e.num_extra < 16 ? e.num_extra : 16;
    for (int k = 0; k < n; ++k) ex[k] = extra[k] + i;
    epilogue_row_scalar(e, c, x + i, y + i, ex, len - i);
  }
}

}  // namespace qpipe::fast
