// exec_mode "exact", AVX2 inner loops (engine/integer/exact.h). The u8 x s8
// dot products are exact: bytes are widened to int16 (even and odd bytes of
// each dword) and multiplied with vpmaddwd, whose int16 x int16 products and
// pair sums cannot overflow int32 for these ranges (never vpmaddubsw, which
// saturates pairs at int16). The output stage is the same float32 sequence
// as the scalar path: cvtdq2ps, mulps, clamp, cvtps2dq (round half to even
// under the default MXCSR), add zp, clamp.

#include <immintrin.h>

#include "engine/integer/exact.h"

namespace qpipe::integer::exact_detail {

#if defined(__x86_64__) || defined(__i386__)
#define QPIPE_AVX2 __attribute__((target("avx2")))

namespace {

QPIPE_AVX2 inline __m256i out_stage(__m256i acc, __m256 mult, __m256i zp, __m256i lo, __m256i hi) {
  __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), mult);
  f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(-65536.f)), _mm256_set1_ps(65536.f));
  __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(f), zp);
  return _mm256_min_epi32(_mm256_max_epi32(q, lo), hi);
}

// Low byte of each of 8 int32 lanes -> 8 bytes.
QPIPE_AVX2 inline void store8(uint8_t* dst, __m256i q) {
  const __m256i shuf = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1,
                                        -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const __m256i b = _mm256_shuffle_epi8(q, shuf);
  const __m256i packed = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(packed));
}

}  // namespace

// Two rounded products and one rounded sum: never contracted into an FMA.
#if defined(__clang__)
#pragma clang fp contract(off)
#define QPIPE_NO_CONTRACT
#else
#define QPIPE_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#endif

QPIPE_AVX2 QPIPE_NO_CONTRACT void gemm_avx2(const ConvPack& pk, const uint32_t* planes, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  const int64_t G = pk.G, Qpad = pk.Qpad, M = pk.p.m;
  const int64_t* aoff = pk.aoff.data();
  const __m256i even = _mm256_set1_epi32(0x00ff00ff);
  if (pk.any_zw) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t pb = 0; pb < (pk.Q + 15) / 16 * 16; pb += 8) {
      __m256i s = _mm256_setzero_si256();
      for (int64_t g = 0; g < G; ++g) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(planes + aoff[g] + pb));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_and_si256(a, even), ones));
        s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_srli_epi16(a, 8), ones));
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sx + pb), s);
    }
  }
  const __m256i zp = _mm256_set1_epi32(pk.out.zp), lo = _mm256_set1_epi32(pk.out.lo()), hi = _mm256_set1_epi32(pk.out.hi());
  uint8_t* dst = tmp;
  const int64_t ld = Qpad;
  for (int64_t pb = 0; pb < (pk.Q + 15) / 16 * 16; pb += 16) {
    for (int64_t mb = 0; mb < pk.Mpad; mb += 4) {
      __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      const uint32_t* w = pk.w16.data() + mb * G * 2;
      const uint32_t* a = planes + pb;
      for (int64_t g = 0; g < G; ++g) {
        const uint32_t* ag = a + aoff[g];
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag));
        const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ag + 8));
        const __m256i e0 = _mm256_and_si256(a0, even), o0 = _mm256_srli_epi16(a0, 8);
        const __m256i e1 = _mm256_and_si256(a1, even), o1 = _mm256_srli_epi16(a1, 8);
#define QPIPE_ROW(r, x0, x1)                                                                        \
  {                                                                                                 \
    const __m256i be = _mm256_set1_epi32(static_cast<int32_t>(w[((r) * G + g) * 2]));               \
    const __m256i bo = _mm256_set1_epi32(static_cast<int32_t>(w[((r) * G + g) * 2 + 1]));           \
    x0 = _mm256_add_epi32(x0, _mm256_add_epi32(_mm256_madd_epi16(e0, be), _mm256_madd_epi16(o0, bo))); \
    x1 = _mm256_add_epi32(x1, _mm256_add_epi32(_mm256_madd_epi16(e1, be), _mm256_madd_epi16(o1, bo))); \
  }
        QPIPE_ROW(0, c00, c01)
        QPIPE_ROW(1, c10, c11)
        QPIPE_ROW(2, c20, c21)
        QPIPE_ROW(3, c30, c31)
#undef QPIPE_ROW
      }
      const __m256i accs[4][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}};
      for (int r = 0; r < 4; ++r) {
        const int64_t m = mb + r;
        if (m >= M) break;
        const __m256i c = _mm256_set1_epi32(pk.c[static_cast<std::size_t>(m)]);
        const __m256 mult = _mm256_set1_ps(pk.mult[static_cast<std::size_t>(m)]);
        const __m256i zw = _mm256_set1_epi32(pk.zw[static_cast<std::size_t>(m)]);
        for (int j = 0; j < 2; ++j) {
          __m256i v = _mm256_add_epi32(accs[r][j], c);
          if (pk.any_zw)
            v = _mm256_sub_epi32(v, _mm256_mullo_epi32(zw, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sx + pb + 8 * j))));
          __m256i q = out_stage(v, mult, zp, lo, hi);
          for (const ExactPostOp& op : pk.post) {  // fused Mul/Add by a per-channel constant
            const auto mu = static_cast<std::size_t>(m);
            const __m256i a = _mm256_sub_epi32(q, _mm256_set1_epi32(op.za));
            __m256 f;
            if (op.is_mul) {
              f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_mullo_epi32(a, _mm256_set1_epi32(op.bz[mu]))),
                                _mm256_set1_ps(op.m[mu]));
            } else {
              f = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(a), _mm256_set1_ps(op.m[mu])), _mm256_set1_ps(op.tb[mu]));
            }
            f = _mm256_min_ps(_mm256_max_ps(f, _mm256_set1_ps(-65536.f)), _mm256_set1_ps(65536.f));
            q = _mm256_add_epi32(_mm256_cvtps_epi32(f), _mm256_set1_epi32(op.out.zp));
            q = _mm256_min_epi32(_mm256_max_epi32(q, _mm256_set1_epi32(op.out.lo())), _mm256_set1_epi32(op.out.hi()));
          }
          store8(dst + m * ld + pb + 8 * j, q);
        }
      }
    }
  }
  copy_valid(pk, tmp, y);
}

QPIPE_AVX2 QPIPE_NO_CONTRACT void binary_row_avx2(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y,
                                int64_t n) {
  const __m256i za = _mm256_set1_epi32(r.za), zb = _mm256_set1_epi32(r.zb);
  const __m256 ma = _mm256_set1_ps(r.ma), mb = _mm256_set1_ps(r.mb);
  const __m256i zp = _mm256_set1_epi32(r.out.zp), lo = _mm256_set1_epi32(r.out.lo()), hi = _mm256_set1_epi32(r.out.hi());
  const __m256i bconst = _mm256_set1_epi32(bv - r.zb);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i a8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + i));
    const __m256i av = _mm256_sub_epi32(r.a_signed ? _mm256_cvtepi8_epi32(a8) : _mm256_cvtepu8_epi32(a8), za);
    __m256i bz = bconst;
    if (bp) {
      const __m128i b8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(bp + i));
      bz = _mm256_sub_epi32(r.b_signed ? _mm256_cvtepi8_epi32(b8) : _mm256_cvtepu8_epi32(b8), zb);
    }
    __m256 v;
    if (r.is_mul) {
      v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_mullo_epi32(av, bz)), ma);
    } else {
      v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(av), ma), _mm256_mul_ps(_mm256_cvtepi32_ps(bz), mb));
    }
    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(-65536.f)), _mm256_set1_ps(65536.f));
    const __m256i q = _mm256_min_epi32(_mm256_max_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(v), zp), lo), hi);
    store8(y + i, q);
  }
  if (i < n) binary_row_scalar(r, a + i, bp ? bp + i : nullptr, bv, y + i, n - i);
}

#else
void gemm_avx2(const ConvPack& pk, const uint32_t* A, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  gemm_scalar(pk, A, sx, tmp, y);
}
void binary_row_avx2(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y, int64_t n) {
  binary_row_scalar(r, a, bp, bv, y, n);
}
#endif

}  // namespace qpipe::integer::exact_detail
