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

namespace {

// One register block: 4 output channels x NP vectors of 16 wide pixels.
template <int NP>
QPIPE_VNNI inline void vnni_block(const ConvPack& pk, const uint32_t* planes, const int32_t* sx, int64_t pb, int64_t mb,
                                  uint8_t* y) {
  const int64_t G = pk.G, M = pk.p.m;
  const int64_t* aoff = pk.aoff.data();
  __m512i acc[4][NP];
#pragma GCC unroll 4
  for (int r = 0; r < 4; ++r)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_si512();
  const uint32_t* w0 = pk.w4.data() + mb * G;
  const uint32_t* a = planes + pb;
  if constexpr (NP == 4) {
    // Written out: GCC keeps these 16 accumulators in registers without the
    // moves it inserts for the array form.
    __m512i c00 = acc[0][0], c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    const uint32_t* w1 = w0 + G;
    const uint32_t* w2 = w1 + G;
    const uint32_t* w3 = w2 + G;
    for (int64_t g = 0; g < G; ++g) {
      const uint32_t* ag = a + aoff[g];
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
    acc[0][0] = c00; acc[0][1] = c01; acc[0][2] = c02; acc[0][3] = c03;
    acc[1][0] = c10; acc[1][1] = c11; acc[1][2] = c12; acc[1][3] = c13;
    acc[2][0] = c20; acc[2][1] = c21; acc[2][2] = c22; acc[2][3] = c23;
    acc[3][0] = c30; acc[3][1] = c31; acc[3][2] = c32; acc[3][3] = c33;
  } else
  for (int64_t g = 0; g < G; ++g) {
    const uint32_t* ag = a + aoff[g];
    __m512i av[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) av[j] = _mm512_loadu_si512(ag + 16 * j);
#pragma GCC unroll 4
    for (int r = 0; r < 4; ++r) {
      const __m512i b = _mm512_set1_epi32(static_cast<int32_t>(w0[r * G + g]));
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], av[j], b);
    }
  }
  // Output stages. sat[lo,hi](rne(v) + zp) is computed as rne(clamp(v, lo - zp, hi - zp)) + zp: with integer
  // bounds the two are equal for every v (and the +-65536 clamp never binds inside these bounds).
  const __m512 flo = _mm512_set1_ps(static_cast<float>(pk.out.lo() - pk.out.zp));
  const __m512 fhi = _mm512_set1_ps(static_cast<float>(pk.out.hi() - pk.out.zp));
  for (int r = 0; r < 4; ++r) {
    const int64_t m = mb + r;
    if (m >= M) break;
    const __m512i c = _mm512_set1_epi32(pk.c[static_cast<std::size_t>(m)]);
    const __m512 mult = _mm512_set1_ps(pk.mult[static_cast<std::size_t>(m)]);
    const __m512i zw = _mm512_set1_epi32(pk.zw[static_cast<std::size_t>(m)]);
    for (int j = 0; j < NP; ++j) {
      __m512i v = _mm512_add_epi32(acc[r][j], c);
      if (pk.any_zw) v = _mm512_sub_epi32(v, _mm512_mullo_epi32(zw, _mm512_loadu_si512(sx + pb + 16 * j)));
      __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), mult);
      __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(f, flo), fhi));  // code - zp
      int32_t zp_cur = pk.out.zp;
      for (const ExactPostOp& op : pk.post) {  // fused Mul/Add by a per-channel constant
        constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
        const auto mu = static_cast<std::size_t>(m);
        const __m512 a = _mm512_cvtepi32_ps(_mm512_add_epi32(q, _mm512_set1_epi32(zp_cur - op.za)));  // code - za
        __m512 t;
        if (op.is_mul) {
          // float32(a) * float32(bz) is exact (|a * bz| < 2^24), i.e. float32(a * bz).
          t = _mm512_mul_round_ps(_mm512_mul_round_ps(a, _mm512_set1_ps(static_cast<float>(op.bz[mu])), kRne),
                                  _mm512_set1_ps(op.m[mu]), kRne);
        } else {
          t = _mm512_add_round_ps(_mm512_mul_round_ps(a, _mm512_set1_ps(op.m[mu]), kRne), _mm512_set1_ps(op.tb[mu]), kRne);
        }
        t = _mm512_min_ps(_mm512_max_ps(t, _mm512_set1_ps(static_cast<float>(op.out.lo() - op.out.zp))),
                          _mm512_set1_ps(static_cast<float>(op.out.hi() - op.out.zp)));
        q = _mm512_cvtps_epi32(t);
        zp_cur = op.out.zp;
      }
      q = _mm512_add_epi32(q, _mm512_set1_epi32(zp_cur));
      // Straight into y: each row segment's lanes moved to the front, masked store.
      const __m128i bytes = _mm512_cvtepi32_epi8(q);
      const int64_t vi = (pb + 16 * j) / 16;
      uint8_t* ym = y + m * pk.P;
      for (int32_t sgi = pk.seg_begin[static_cast<std::size_t>(vi)]; sgi < pk.seg_begin[static_cast<std::size_t>(vi + 1)]; ++sgi) {
        const ConvPack::StoreSeg& sg = pk.segs[static_cast<std::size_t>(sgi)];
        const __m128i moved = _mm_shuffle_epi8(bytes, _mm_loadu_si128(reinterpret_cast<const __m128i*>(sg.shuf)));
        _mm_mask_storeu_epi8(ym + sg.off, sg.mask, moved);
      }
    }
  }
}

}  // namespace

QPIPE_VNNI void gemm_avx512vnni(const ConvPack& pk, const uint32_t* planes, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  const int64_t G = pk.G;
  const int64_t Q16 = (pk.Q + 15) / 16 * 16;  // wide pixels actually computed
  const int64_t* aoff = pk.aoff.data();
  if (pk.any_zw) {
    const __m512i ones = _mm512_set1_epi8(1);
    for (int64_t pb = 0; pb < Q16; pb += 16) {
      __m512i s = _mm512_setzero_si512();
      for (int64_t g = 0; g < G; ++g) s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(planes + aoff[g] + pb), ones);
      _mm512_storeu_si512(sx + pb, s);
    }
  }
  int64_t pb = 0;
  for (; pb + 64 <= Q16; pb += 64)
    for (int64_t mb = 0; mb < pk.Mpad; mb += 4) vnni_block<4>(pk, planes, sx, pb, mb, y);
  for (; pb < Q16; pb += 16)
    for (int64_t mb = 0; mb < pk.Mpad; mb += 4) vnni_block<1>(pk, planes, sx, pb, mb, y);
  (void)tmp;  // the vectors are stored straight into y (no copy_valid)
}

// Elementwise Add/Mul row, 16 lanes: the AVX2 path's operations at twice the width.
QPIPE_VNNI void binary_row_avx512(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y,
                                  int64_t n) {
  const __m512i za = _mm512_set1_epi32(r.za), zb = _mm512_set1_epi32(r.zb);
  const __m512 ma = _mm512_set1_ps(r.ma), mb = _mm512_set1_ps(r.mb);
  const __m512i zp = _mm512_set1_epi32(r.out.zp), lo = _mm512_set1_epi32(r.out.lo()), hi = _mm512_set1_epi32(r.out.hi());
  const __m512 fmin = _mm512_set1_ps(-65536.f), fmax = _mm512_set1_ps(65536.f);
  const __m512i bconst = _mm512_set1_epi32(bv - r.zb);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m128i a8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i));
    const __m512i av = _mm512_sub_epi32(r.a_signed ? _mm512_cvtepi8_epi32(a8) : _mm512_cvtepu8_epi32(a8), za);
    __m512i bz = bconst;
    if (bp) {
      const __m128i b8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + i));
      bz = _mm512_sub_epi32(r.b_signed ? _mm512_cvtepi8_epi32(b8) : _mm512_cvtepu8_epi32(b8), zb);
    }
    __m512 v;
    if (r.is_mul) {
      v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_mullo_epi32(av, bz)), ma);
    } else {
      // Explicit-rounding forms: the compiler must not contract these into an FMA.
      constexpr int kRne = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
      v = _mm512_add_round_ps(_mm512_mul_round_ps(_mm512_cvtepi32_ps(av), ma, kRne),
                              _mm512_mul_round_ps(_mm512_cvtepi32_ps(bz), mb, kRne), kRne);
    }
    v = _mm512_min_ps(_mm512_max_ps(v, fmin), fmax);
    const __m512i q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(v), zp), lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm512_cvtepi32_epi8(q));
  }
  if (i < n) binary_row_avx2(r, a + i, bp ? bp + i : nullptr, bv, y + i, n - i);
}

// reference::quantize_value per lane: rne(x / s) in float32 (vdivps, vrndscaleps),
// + zp, NaN -> 0, clamp; |rne| >= 2^24 saturates either way, so float32 is exact here.
QPIPE_VNNI void quantize_row_avx512(const float* x, int64_t n, float scale, int32_t zp, bool is_signed, uint8_t* y) {
  const __m512 s = _mm512_set1_ps(scale), z = _mm512_set1_ps(static_cast<float>(zp));
  const __m512 lo = _mm512_set1_ps(is_signed ? -128.f : 0.f), hi = _mm512_set1_ps(is_signed ? 127.f : 255.f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 q = _mm512_roundscale_ps(_mm512_div_ps(_mm512_loadu_ps(x + i), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 v = _mm512_add_ps(q, z);
    v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_setzero_ps());
    v = _mm512_min_ps(_mm512_max_ps(v, lo), hi);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(v)));
  }
  if (i < n) quantize_row_scalar(x + i, n - i, scale, zp, is_signed, y + i);
}

#else
void quantize_row_avx512(const float* x, int64_t n, float scale, int32_t zp, bool is_signed, uint8_t* y) {
  quantize_row_scalar(x, n, scale, zp, is_signed, y);
}
void binary_row_avx512(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y, int64_t n) {
  binary_row_scalar(r, a, bp, bv, y, n);
}
void gemm_avx512vnni(const ConvPack& pk, const uint32_t* A, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  gemm_scalar(pk, A, sx, tmp, y);
}
#endif

}  // namespace qpipe::integer::exact_detail
