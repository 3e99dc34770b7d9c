// exec_mode "exact", AVX-512 VNNI inner loop (engine/integer/exact.h):
// vpdpbusd multiplies four u8 activation bytes by four s8 weight bytes and
// adds the four products to an int32 lane exactly (the non-saturating form;
// never vpdpbusds). Register block: 4 output channels x 64 pixels (16 zmm
// accumulators). The output stage is the scalar path's float32 sequence.

#include <immintrin.h>

#include "engine/integer/exact.h"

namespace qpipe::integer::exact_detail {

#if defined(__x86_64__) || defined(__i386__)
#define QPIPE_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

QPIPE_VNNI void gemm_avx512vnni(const ConvPack& pk, const uint32_t* A, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  const int64_t G = pk.G, P = pk.P, Ppad = pk.Ppad, M = pk.p.m;
  const bool direct = P % 64 == 0;
  if (pk.any_zw) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t pb = 0; pb < Ppad; pb += 16) {
      __m512i s = _mm512_setzero_si512();
      for (int64_t g = 0; g < G; ++g) s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(A + g * Ppad + pb), ones);
      _mm512_storeu_si512(sx + pb, s);
    }
  }
  const __m512i zp = _mm512_set1_epi32(pk.out.zp), lo = _mm512_set1_epi32(pk.out.lo()), hi = _mm512_set1_epi32(pk.out.hi());
  const __m512 fmin = _mm512_set1_ps(-65536.f), fmax = _mm512_set1_ps(65536.f);
  uint8_t* dst = direct ? y : tmp;
  const int64_t ld = direct ? P : Ppad;
  for (int64_t pb = 0; pb < Ppad; pb += 64) {
    for (int64_t mb = 0; mb < pk.Mpad; mb += 4) {
      __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c03 = c00;
      __m512i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
      __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00;
      __m512i c30 = c00, c31 = c00, c32 = c00, c33 = c00;
      const uint32_t* w0 = pk.w4.data() + mb * G;
      const uint32_t* w1 = w0 + G;
      const uint32_t* w2 = w1 + G;
      const uint32_t* w3 = w2 + G;
      const uint32_t* a = A + pb;
      for (int64_t g = 0; g < G; ++g) {
        const uint32_t* ag = a + g * Ppad;
        const __m512i a0 = _mm512_loadu_si512(ag), a1 = _mm512_loadu_si512(ag + 16);
        const __m512i a2 = _mm512_loadu_si512(ag + 32), a3 = _mm512_loadu_si512(ag + 48);
        __m512i b = _mm512_set1_epi32(static_cast<int32_t>(w0[g]));
        c00 = _mm512_dpbusd_epi32(c00, a0, b);
        c01 = _mm512_dpbusd_epi32(c01, a1, b);
        c02 = _mm512_dpbusd_epi32(c02, a2, b);
        c03 = _mm512_dpbusd_epi32(c03, a3, b);
        b = _mm512_set1_epi32(static_cast<int32_t>(w1[g]));
        c10 = _mm512_dpbusd_epi32(c10, a0, b);
        c11 = _mm512_dpbusd_epi32(c11, a1, b);
        c12 = _mm512_dpbusd_epi32(c12, a2, b);
        c13 = _mm512_dpbusd_epi32(c13, a3, b);
        b = _mm512_set1_epi32(static_cast<int32_t>(w2[g]));
        c20 = _mm512_dpbusd_epi32(c20, a0, b);
        c21 = _mm512_dpbusd_epi32(c21, a1, b);
        c22 = _mm512_dpbusd_epi32(c22, a2, b);
        c23 = _mm512_dpbusd_epi32(c23, a3, b);
        b = _mm512_set1_epi32(static_cast<int32_t>(w3[g]));
        c30 = _mm512_dpbusd_epi32(c30, a0, b);
        c31 = _mm512_dpbusd_epi32(c31, a1, b);
        c32 = _mm512_dpbusd_epi32(c32, a2, b);
        c33 = _mm512_dpbusd_epi32(c33, a3, b);
      }
      const __m512i accs[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
      for (int r = 0; r < 4; ++r) {
        const int64_t m = mb + r;
        if (m >= M) break;
        const __m512i c = _mm512_set1_epi32(pk.c[static_cast<std::size_t>(m)]);
        const __m512 mult = _mm512_set1_ps(pk.mult[static_cast<std::size_t>(m)]);
        const __m512i zw = _mm512_set1_epi32(pk.zw[static_cast<std::size_t>(m)]);
        for (int j = 0; j < 4; ++j) {
          __m512i v = _mm512_add_epi32(accs[r][j], c);
          if (pk.any_zw) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(zw, _mm512_loadu_si512(sx + pb + 16 * j)));
          __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), mult);
          f = _mm512_min_ps(_mm512_max_ps(f, fmin), fmax);
          __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(f), zp);
          q = _mm512_min_epi32(_mm512_max_epi32(q, lo), hi);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + m * ld + pb + 16 * j), _mm512_cvtepi32_epi8(q));
        }
      }
    }
  }
  if (!direct)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t p = 0; p < P; ++p) y[m * P + p] = tmp[m * Ppad + p];
}

#else
void gemm_avx512vnni(const ConvPack& pk, const uint32_t* A, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  gemm_scalar(pk, A, sx, tmp, y);
}
#endif

}  // namespace qpipe::integer::exact_detail
