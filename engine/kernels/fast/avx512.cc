// AVX-512F arithmetic of the fast float32 kernels: the column-shifted-plane
// direct convolution (WideConv, conv_direct.h) and the epilogue. Every
// function here carries a target("avx512f,avx2,fma") attribute and is only
// called after run-time dispatch (cpu.h, select_isa); the translation unit
// itself is compiled for baseline x86-64, and no shared templates are
// instantiated with AVX-512 code generation (ODR, as in avx2.cc).
//
// Bit-identical to the AVX2 kernels: every output element is
// acc = fma(w[k], x[k], acc) for k = 0..K-1 from +0 (explicit
// _mm512_fmadd_ps, one k at a time per accumulator), then + bias, then the
// epilogue steps as separate IEEE operations. Floating-point contraction is
// off for this file so the compiler cannot fuse an epilogue Mul->Add.

#pragma GCC optimize("fp-contract=off")
// GCC 12's avx512fintrin.h passes _mm512_undefined_ps() (a self-initialised
// local) as the pass-through of unmasked max/min/roundscale, which trips
// -Wmaybe-uninitialized at every use; the value is never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <immintrin.h>

#include <algorithm>

#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/epilogue.h"

#define QPIPE_AVX512 __attribute__((target("avx512f,avx2,fma")))
#define QPIPE_AVX512_INLINE __attribute__((target("avx512f,avx2,fma"), always_inline)) inline

namespace qpipe::fast {
namespace {

// Applies bias and ops to nv vectors of channel c. `off` is the element
// offset of v[0] within each extra tensor; mask[j] says which lanes of
// vector j exist (extra tensors are read under that mask only).
template <int NV>
QPIPE_AVX512_INLINE void epilogue_vectors(const Epilogue& e, int64_t c, __m512* v, const __mmask16* mask,
                                          const float* const* extra, int64_t off) {
  const std::size_t ci = static_cast<std::size_t>(c);
  if (!e.bias.empty()) {
    const __m512 b = _mm512_set1_ps(e.bias[ci]);
    for (int j = 0; j < NV; ++j) v[j] = _mm512_add_ps(v[j], b);
  }
  for (const EpilogueOp& op : e.ops) {
    switch (op.kind) {
      case EpilogueOp::Kind::kAddConst: {
        const __m512 a = _mm512_set1_ps(op.a[ci]);
        for (int j = 0; j < NV; ++j) v[j] = _mm512_add_ps(v[j], a);
        break;
      }
      case EpilogueOp::Kind::kMulConst: {
        const __m512 a = _mm512_set1_ps(op.a[ci]);
        for (int j = 0; j < NV; ++j) v[j] = _mm512_mul_ps(v[j], a);
        break;
      }
      case EpilogueOp::Kind::kRelu: {
        // vmaxps returns the second operand for NaN and for -0: exactly v > 0 ? v : 0.
        const __m512 zero = _mm512_setzero_ps();
        for (int j = 0; j < NV; ++j) v[j] = _mm512_max_ps(v[j], zero);
        break;
      }
      case EpilogueOp::Kind::kAddTensor: {
        const float* src = extra[op.extra] + off;
        for (int j = 0; j < NV; ++j) v[j] = _mm512_add_ps(v[j], _mm512_maskz_loadu_ps(mask[j], src + 16 * j));
        break;
      }
      case EpilogueOp::Kind::kQdq: {
        const __m512 s = _mm512_set1_ps(op.a[ci]), z = _mm512_set1_ps(op.z[ci]);
        const __m512 lo = _mm512_set1_ps(op.lo), hi = _mm512_set1_ps(op.hi);
        for (int j = 0; j < NV; ++j) {
          const __m512 q =
              _mm512_roundscale_ps(_mm512_div_ps(v[j], s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          __m512 t = _mm512_add_ps(q, z);
          t = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(t, t, _CMP_ORD_Q), t);  // NaN -> +0
          t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
          v[j] = _mm512_mul_ps(_mm512_sub_ps(t, z), s);
        }
        break;
      }
    }
  }
}

// Walks PrefetchRanges a slice per tile: take() hands out the next `lines`
// cache lines (within one range), the tile prefetches them one every other
// k step (a burst would stall on the miss buffers), and finish() issues what
// the tile did not get to.
struct Prefetcher {
  const PrefetchRanges* pf = nullptr;
  int64_t lines_per_tile = 0;
  int r = 0;
  int64_t off = 0;
  QPIPE_AVX512_INLINE void take(const char** begin, const char** end) {
    *begin = *end = nullptr;
    if (!pf) return;
    while (r < pf->n && off >= pf->bytes[r]) {
      ++r;
      off = 0;
    }
    if (r >= pf->n) return;
    const int64_t n = std::min<int64_t>(lines_per_tile * 64, pf->bytes[r] - off);
    *begin = pf->begin[r] + off;
    *end = *begin + n;
    off += n;
  }
  static QPIPE_AVX512_INLINE void finish(const char* p, const char* end) {
    for (; p < end; p += 64) _mm_prefetch(p, _MM_HINT_T1);
  }
};

// One tile: output channels [mt*MR, mt*MR + MR) x 16-pixel vectors
// [v0, v0 + NV) of one image.
template <int MR, int NV>
QPIPE_AVX512_INLINE void wide_tile(const WideConv& wc, const float* planes, float* y, const Epilogue& ep,
                                   const float* const* extra, int64_t v0, int64_t mt, Prefetcher& pf) {
  const char *pp, *pe;
  pf.take(&pp, &pe);
  const int64_t K = wc.K, P = wc.P;
  __m512 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r)
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_setzero_ps();
  const float* a = wc.packed_w.data() + mt * K * MR;
  const int32_t* koff = wc.koff.data();
  // Plane position of each vector (consecutive in the column-shifted layout,
  // row by row in the phase layout).
  const float* base[NV];
#pragma GCC unroll 8
  for (int j = 0; j < NV; ++j) base[j] = planes + wc.vector_offset(v0 + j);
  for (int64_t k = 0; k < K; ++k, a += MR) {
    if ((k & 1) == 0 && pp < pe) {
      _mm_prefetch(pp, _MM_HINT_T1);
      pp += 64;
    }
    const int64_t o = koff[k];
    __m512 b[NV];
#pragma GCC unroll 8
    for (int j = 0; j < NV; ++j) b[j] = _mm512_loadu_ps(base[j] + o);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const __m512 w = _mm512_set1_ps(a[r]);
#pragma GCC unroll 8
      for (int j = 0; j < NV; ++j) acc[r][j] = _mm512_fmadd_ps(w, b[j], acc[r][j]);
    }
  }
  Prefetcher::finish(pp, pe);
  __mmask16 mask[NV];
  for (int j = 0; j < NV; ++j) {
    const int64_t left = P - (v0 + j) * 16;
    mask[j] = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
  }
  const int64_t p0 = v0 * 16;
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
    const int64_t m = mt * MR + r;
    if (m >= wc.g.m) break;
    __m512 v[NV];
    for (int j = 0; j < NV; ++j) v[j] = acc[r][j];
    epilogue_vectors<NV>(ep, m, v, mask, extra, m * P + p0);
    float* dst = y + m * P + p0;
    for (int j = 0; j < NV; ++j) _mm512_mask_storeu_ps(dst + 16 * j, mask[j], v[j]);
  }
}

template <int MR, int NV>
QPIPE_AVX512_INLINE void wide_range(const WideConv& wc, const float* planes, float* y, const Epilogue& ep,
                                    const float* const* extra, int64_t v_begin, int64_t v_end, Prefetcher& pf) {
  const int64_t mtiles = (wc.g.m + MR - 1) / MR;
  int64_t v = v_begin;
  for (; v + NV <= v_end; v += NV)
    for (int64_t mt = 0; mt < mtiles; ++mt) wide_tile<MR, NV>(wc, planes, y, ep, extra, v, mt, pf);
  if constexpr (NV > 1) {
    if (v < v_end) wide_range<MR, NV - 1>(wc, planes, y, ep, extra, v, v_end, pf);
  }
}

}  // namespace

// build_wide_planes with masked loads and stores, following the recipe in
// WideConv::pieces: each 16-float piece of a plane row is one (stride 1) or
// two (stride 2, then an even-lane permute) masked loads whose masks drop
// the padding columns. Other strides use the portable builder. Same planes,
// bit for bit.
QPIPE_AVX512 void build_wide_planes_avx512(const WideConv& wc, const float* x, float* planes) {
  const ConvGeometry& g = wc.g;
  if (g.sw > 2) {
    build_wide_planes(wc, x, planes);
    return;
  }
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512 zero = _mm512_setzero_ps();
  const WideConv::Piece* pieces = wc.pieces.data();
  const int64_t np = static_cast<int64_t>(wc.pieces.size());
  for (int64_t c = 0; c < g.c; ++c) {
    const float* xc = x + c * g.h * g.w;
    for (int64_t a = 0; a < g.sh; ++a) {
      if (!wc.row_phase_used[static_cast<std::size_t>(a)]) continue;
      float* pa = planes + (c * g.sh + a) * wc.J * wc.plane;
      for (int64_t r = 0; r < wc.hq; ++r) {
        float* dst = pa + r * wc.row_width;
        const int64_t h = r * g.sh + a - g.pad_top;
        if (h < 0 || h >= g.h) {
          for (int64_t i = 0; i < np; ++i) _mm512_mask_storeu_ps(dst + pieces[i].dst, pieces[i].store_mask, zero);
          continue;
        }
        const float* row = xc + h * g.w;
        if (g.sw == 1) {
          for (int64_t i = 0; i < np; ++i) {
            const WideConv::Piece& pc = pieces[i];
            _mm512_mask_storeu_ps(dst + pc.dst, pc.store_mask, _mm512_maskz_loadu_ps(pc.lo_mask, row + pc.src));
          }
        } else {
          __m512 lo = zero, hi = zero;
          for (int64_t i = 0; i < np; ++i) {
            const WideConv::Piece& pc = pieces[i];
            if (!pc.reuse) {
              lo = _mm512_maskz_loadu_ps(pc.lo_mask, row + pc.src);
              hi = _mm512_maskz_loadu_ps(pc.hi_mask, row + pc.src + 16);
            }
            const __m512i idx = _mm512_add_epi32(even, _mm512_set1_epi32(pc.shift));
            _mm512_mask_storeu_ps(dst + pc.dst, pc.store_mask, _mm512_permutex2var_ps(lo, idx, hi));
          }
        }
      }
    }
  }
  _mm512_storeu_ps(planes + wc.image_floats - 16, zero);
}

QPIPE_AVX512 void direct_conv_avx512(const WideConv& wc, const float* planes, float* y, const Epilogue& ep,
                                     const float* const* extra, int64_t v_begin, int64_t v_end,
                                     const PrefetchRanges* prefetch) {
  Prefetcher pf;
  if (prefetch && prefetch->n > 0 && v_end > v_begin) {
    pf.pf = prefetch;
    int64_t lines = 0;
    for (int r = 0; r < prefetch->n; ++r) lines += (prefetch->bytes[r] + 63) / 64;
    const int64_t tiles = ((v_end - v_begin) / wc.nv + 1) * ((wc.g.m + wc.mr - 1) / wc.mr);
    pf.lines_per_tile = (lines + tiles - 1) / tiles + 1;
  }
  if (wc.mr == 4) {
    switch (wc.nv) {
      case 6: wide_range<4, 6>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      case 5: wide_range<4, 5>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      case 4: wide_range<4, 4>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      case 3: wide_range<4, 3>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      case 2: wide_range<4, 2>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      default: wide_range<4, 1>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
    }
  } else {
    switch (wc.nv) {
      case 3: wide_range<8, 3>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      case 2: wide_range<8, 2>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
      default: wide_range<8, 1>(wc, planes, y, ep, extra, v_begin, v_end, pf); break;
    }
  }
}

QPIPE_AVX512 void epilogue_row_avx512(const Epilogue& e, int64_t c, const float* x, float* y,
                                      const float* const* extra, int64_t len) {
  for (int64_t i = 0; i < len; i += 16) {
    const int64_t left = len - i;
    const __mmask16 m = left >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    __m512 v = _mm512_maskz_loadu_ps(m, x + i);
    epilogue_vectors<1>(e, c, &v, &m, extra, i);
    _mm512_mask_storeu_ps(y + i, m, v);
  }
}

}  // namespace qpipe::fast
