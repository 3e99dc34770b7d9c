// exec_mode "exact": CPU dispatch, packing, the portable scalar paths and the
// kernel objects (engine/integer/exact.h). The AVX2 and AVX-512 VNNI inner
// loops live in exact_avx2.cc and exact_avx512.cc.

#include <cmath>
#include <cstring>
#include <limits>

#include "engine/integer/exact.h"
#include "engine/kernels/common.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/reference/quantize_linear.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

// The scalar output stages must round each float32 product and sum on its own
// (the SIMD paths never fuse a multiply-add).
#if defined(__clang__)
#define QPIPE_NO_CONTRACT
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#define QPIPE_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define QPIPE_NO_CONTRACT
#endif

namespace qpipe::integer {

const char* exact_isa_name(ExactIsa isa) {
  switch (isa) {
    case ExactIsa::kScalar: return "scalar";
    case ExactIsa::kAvx2: return "avx2";
    case ExactIsa::kAvx512Vnni: return "avx512vnni";
  }
  return "?";
}

bool exact_isa_supported(ExactIsa isa) {
#if defined(__x86_64__) || defined(__i386__)
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") != 0;
  }();
  static const bool vnni = [] {
    __builtin_cpu_init();
    return fast::cpu_has_avx512f() && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512vnni");
  }();
  switch (isa) {
    case ExactIsa::kScalar: return true;
    case ExactIsa::kAvx2: return avx2;
    case ExactIsa::kAvx512Vnni: return vnni;
  }
  return false;
#else
  return isa == ExactIsa::kScalar;
#endif
}

ExactIsa exact_best_isa(bool force_portable) {
  // The engine-wide ceiling: force_portable, QPIPE_FORCE_PORTABLE, QPIPE_FORCE_ISA (engine/kernels/fast/cpu.h).
  const fast::Isa cap = fast::select_isa(force_portable);
  if (cap >= fast::Isa::kAvx512 && exact_isa_supported(ExactIsa::kAvx512Vnni)) return ExactIsa::kAvx512Vnni;
  if (cap >= fast::Isa::kAvx2 && exact_isa_supported(ExactIsa::kAvx2)) return ExactIsa::kAvx2;
  return ExactIsa::kScalar;
}

namespace exact_detail {
namespace {

inline void interleave4(const uint8_t* r0, const uint8_t* r1, const uint8_t* r2, const uint8_t* r3, uint32_t* dst,
                        int64_t n) {
  int64_t i = 0;
#if defined(__SSE2__)
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + i));
    const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r2 + i));
    const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r3 + i));
    const __m128i ab_lo = _mm_unpacklo_epi8(a, b), ab_hi = _mm_unpackhi_epi8(a, b);
    const __m128i cd_lo = _mm_unpacklo_epi8(c, d), cd_hi = _mm_unpackhi_epi8(c, d);
    __m128i* o = reinterpret_cast<__m128i*>(dst + i);
    _mm_storeu_si128(o + 0, _mm_unpacklo_epi16(ab_lo, cd_lo));
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab_lo, cd_lo));
    _mm_storeu_si128(o + 2, _mm_unpacklo_epi16(ab_hi, cd_hi));
    _mm_storeu_si128(o + 3, _mm_unpackhi_epi16(ab_hi, cd_hi));
  }
  for (; i + 8 <= n; i += 8) {
    const __m128i a = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r0 + i));
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r1 + i));
    const __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r2 + i));
    const __m128i d = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r3 + i));
    const __m128i ab = _mm_unpacklo_epi8(a, b), cd = _mm_unpacklo_epi8(c, d);
    __m128i* o = reinterpret_cast<__m128i*>(dst + i);
    _mm_storeu_si128(o + 0, _mm_unpacklo_epi16(ab, cd));
    _mm_storeu_si128(o + 1, _mm_unpackhi_epi16(ab, cd));
  }
#endif
  for (; i < n; ++i)
    dst[i] = static_cast<uint32_t>(r0[i]) | static_cast<uint32_t>(r1[i]) << 8 | static_cast<uint32_t>(r2[i]) << 16 |
             static_cast<uint32_t>(r3[i]) << 24;
}

}  // namespace

void pack_image(const ConvPack& pk, const uint8_t* x, std::vector<uint8_t>& scratch, uint32_t* planes) {
  const auto& p = pk.p;
  const int64_t Wrow = pk.Ws * p.sw;  // one padded input row (>= the padded width)
  const int64_t rstride = Wrow + 64;
  // Scratch: 4 padded byte rows, 1 zero row, 1 interleaved dword row.
  const std::size_t need = static_cast<std::size_t>(6 * rstride) + static_cast<std::size_t>(Wrow + 16) * 4;
  const uint8_t zx = static_cast<uint8_t>(pk.zx_u8);
  if (scratch.size() < need) scratch.resize(need);
  uint8_t* rows = scratch.data();
  uint8_t* zero = rows + 4 * rstride;
  uint32_t* drow = reinterpret_cast<uint32_t*>(rows + 6 * rstride);
  // Pads keep zx: only the interior columns [w0, w1) are rewritten per row.
  std::memset(rows, zx, static_cast<std::size_t>(4 * rstride));
  std::memset(zero, 0, static_cast<std::size_t>(rstride));
  const int64_t w0 = std::min<int64_t>(std::max<int64_t>(0, p.pad_left), Wrow);
  const int64_t w1 = std::max<int64_t>(w0, std::min<int64_t>(Wrow, p.w + p.pad_left));
  const uint8_t flip = pk.x_signed ? 0x80 : 0x00;  // s8 -> u8: code + 128
  for (int64_t cg = 0; cg < pk.CG; ++cg) {
    const int64_t nreal = std::min<int64_t>(4, p.c - 4 * cg);
    uint32_t zxd = 0;  // a padding dword: zx for real channels, 0 beyond C
    for (int64_t r = 0; r < nreal; ++r) zxd |= static_cast<uint32_t>(zx) << (8 * r);
    for (int64_t a = 0; a < p.sh; ++a) {
      if (!pk.row_phase_used[static_cast<std::size_t>(a)]) continue;  // e.g. 1x1 stride 2 reads phase 0 only
      for (int64_t hs = 0; hs < pk.Hs; ++hs) {
        const int64_t h = hs * p.sh + a - p.pad_top;
        uint32_t* dst0 = planes + ((cg * p.sh + a) * p.sw) * pk.plane + hs * pk.Ws;
        if (h < 0 || h >= p.h) {
          for (int64_t b = 0; b < p.sw; ++b) std::fill(dst0 + b * pk.plane, dst0 + b * pk.plane + pk.Ws, zxd);
          continue;
        }
        const uint8_t* src[4];
        for (int64_t r = 0; r < 4; ++r) {
          if (r >= nreal) {
            src[r] = zero;
            continue;
          }
          uint8_t* row = rows + r * rstride;
          const uint8_t* in = x + ((4 * cg + r) * p.h + h) * p.w + (w0 - p.pad_left);
          uint8_t* d = row + w0;
          const int64_t n = w1 - w0;
          int64_t i = 0;
#if defined(__SSE2__)
          const __m128i f = _mm_set1_epi8(static_cast<char>(flip));
          for (; i + 16 <= n; i += 16)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(d + i),
                             _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)), f));
#endif
          for (; i < n; ++i) d[i] = static_cast<uint8_t>(in[i] ^ flip);
          src[r] = row;
        }
        if (p.sw == 1) {
          interleave4(src[0], src[1], src[2], src[3], dst0, pk.Ws);
          continue;
        }
        interleave4(src[0], src[1], src[2], src[3], drow, Wrow);
        // De-interleave the dword row into the sw column phases.
        int64_t ws = 0;
#if defined(__SSE2__)
        if (p.sw == 2)
          for (; ws + 4 <= pk.Ws; ws += 4) {
            const __m128 v0 = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(drow + 2 * ws)));
            const __m128 v1 = _mm_castsi128_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(drow + 2 * ws + 4)));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst0 + ws), _mm_castps_si128(_mm_shuffle_ps(v0, v1, 0x88)));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst0 + pk.plane + ws),
                             _mm_castps_si128(_mm_shuffle_ps(v0, v1, 0xDD)));
          }
#endif
        const int64_t sw = p.sw, plane = pk.plane;
        for (; ws < pk.Ws; ++ws)
          for (int64_t b = 0; b < sw; ++b) dst0[b * plane + ws] = drow[ws * sw + b];
      }
    }
  }
}

namespace {
inline int32_t dot4(uint32_t a, uint32_t w) {
  int32_t s = 0;
  for (int r = 0; r < 4; ++r)
    s += static_cast<int32_t>((a >> (8 * r)) & 0xff) * static_cast<int32_t>(static_cast<int8_t>((w >> (8 * r)) & 0xff));
  return s;
}
inline int32_t sum4(uint32_t a) {
  return static_cast<int32_t>((a & 0xff) + ((a >> 8) & 0xff) + ((a >> 16) & 0xff) + (a >> 24));
}
}  // namespace

namespace {
template <int W>
void copy_rows(const ConvPack& pk, const uint8_t* tmp, uint8_t* y) {
  for (int64_t m = 0; m < pk.p.m; ++m)
    for (int64_t oh = 0; oh < pk.p.out_h; ++oh) std::memcpy(y + m * pk.P + oh * W, tmp + m * pk.Qpad + oh * pk.Ws, W);
}
}  // namespace

void copy_valid(const ConvPack& pk, const uint8_t* tmp, uint8_t* y) {
  const auto& p = pk.p;
  switch (p.out_w) {  // fixed-size copies for the common widths (inlined moves)
    case 8: return copy_rows<8>(pk, tmp, y);
    case 16: return copy_rows<16>(pk, tmp, y);
    case 32: return copy_rows<32>(pk, tmp, y);
    default: break;
  }
  for (int64_t m = 0; m < p.m; ++m)
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      std::memcpy(y + m * pk.P + oh * p.out_w, tmp + m * pk.Qpad + oh * pk.Ws, static_cast<std::size_t>(p.out_w));
}

QPIPE_NO_CONTRACT
int32_t apply_post(const ConvPack& pk, int64_t m, int32_t code) {
  const auto mu = static_cast<std::size_t>(m);
  for (const ExactPostOp& op : pk.post) {
    const int32_t a = code - op.za;
    float v;
    if (op.is_mul) {
      v = static_cast<float>(a * op.bz[mu]) * op.m[mu];
    } else {
      const float ta = static_cast<float>(a) * op.m[mu];
      v = ta + op.tb[mu];
    }
    v = v < -65536.f ? -65536.f : (v > 65536.f ? 65536.f : v);
    const int32_t lo = op.out.lo(), hi = op.out.hi();
    code = static_cast<int32_t>(__builtin_nearbyintf(v)) + op.out.zp;
    code = code < lo ? lo : (code > hi ? hi : code);
  }
  return code;
}

void gemm_scalar(const ConvPack& pk, const uint32_t* planes, int32_t* sx, uint8_t* tmp, uint8_t* y) {
  const int64_t G = pk.G;
  const auto& p = pk.p;
  const int32_t lo = pk.out.lo(), hi = pk.out.hi();
  for (int64_t oh = 0; oh < p.out_h; ++oh)
    for (int64_t ow = 0; ow < p.out_w; ++ow) {
      const int64_t q = oh * pk.Ws + ow;
      int32_t s = 0;
      if (pk.any_zw)
        for (int64_t g = 0; g < G; ++g) s += sum4(planes[pk.aoff[static_cast<std::size_t>(g)] + q]);
      sx[q] = s;
    }
  for (int64_t m = 0; m < p.m; ++m) {
    const uint32_t* w = pk.w4.data() + m * G;
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        const int64_t q = oh * pk.Ws + ow;
        uint32_t acc = 0;  // wraps like the SIMD lanes; the true sum fits int32
        for (int64_t g = 0; g < G; ++g) acc += static_cast<uint32_t>(dot4(planes[pk.aoff[static_cast<std::size_t>(g)] + q], w[g]));
        acc += static_cast<uint32_t>(pk.c[static_cast<std::size_t>(m)]);
        if (pk.any_zw) acc -= static_cast<uint32_t>(pk.zw[static_cast<std::size_t>(m)]) * static_cast<uint32_t>(sx[q]);
        const int32_t code = requant(static_cast<int32_t>(acc), pk.mult[static_cast<std::size_t>(m)], pk.out, lo, hi);
        tmp[m * pk.Qpad + q] = static_cast<uint8_t>(pk.post.empty() ? code : apply_post(pk, m, code));
      }
  }
  copy_valid(pk, tmp, y);
}

QPIPE_NO_CONTRACT
void binary_row_scalar(const BinaryRow& r, const uint8_t* a, const uint8_t* bp, int32_t bv, uint8_t* y, int64_t n) {
  const int32_t lo = r.out.lo(), hi = r.out.hi();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t av = (r.a_signed ? static_cast<int32_t>(static_cast<int8_t>(a[i])) : static_cast<int32_t>(a[i])) - r.za;
    const int32_t b = bp ? (r.b_signed ? static_cast<int32_t>(static_cast<int8_t>(bp[i])) : static_cast<int32_t>(bp[i])) : bv;
    const int32_t bz = b - r.zb;
    float v;
    if (r.is_mul) {
      v = static_cast<float>(av * bz) * r.ma;
    } else {
      const float ta = static_cast<float>(av) * r.ma;
      const float tb = static_cast<float>(bz) * r.mb;
      v = ta + tb;
    }
    v = v < -65536.f ? -65536.f : (v > 65536.f ? 65536.f : v);
    int32_t q = static_cast<int32_t>(__builtin_nearbyintf(v)) + r.out.zp;
    q = q < lo ? lo : (q > hi ? hi : q);
    y[i] = static_cast<uint8_t>(q);
  }
}

void quantize_row_scalar(const float* x, int64_t n, float scale, int32_t zp, bool is_signed, uint8_t* y) {
  if (is_signed) {
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<uint8_t>(reference::quantize_value<int8_t, float>(x[i], scale, zp));
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = reference::quantize_value<uint8_t, float>(x[i], scale, zp);
  }
}

}  // namespace exact_detail

using namespace exact_detail;

std::unique_ptr<OpKernel> make_exact_quantize_nhwc(float scale, int32_t zp, bool is_signed, ExactIsa isa) {
  if (!exact_isa_supported(isa)) isa = ExactIsa::kScalar;
  const auto row = isa == ExactIsa::kAvx512Vnni ? quantize_row_avx512 : quantize_row_scalar;
  return kernels::make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const Shape& xs = in[0]->shape();  // [N, H, W, C]
    const int64_t n = xs[0], H = xs[1], W = xs[2], C = xs[3], HW = H * W;
    const float* x = in[0]->data<float>();
    uint8_t* y = static_cast<uint8_t*>(out[0]->raw());
    kernels::parallel_for_each(n, [&](int64_t i) {
      thread_local std::vector<uint8_t> codes;  // NHWC codes of one image (grows once)
      if (codes.size() < static_cast<std::size_t>(HW * C)) codes.resize(static_cast<std::size_t>(HW * C));
      row(x + i * HW * C, HW * C, scale, zp, is_signed, codes.data());
      uint8_t* yi = y + i * HW * C;
      for (int64_t p = 0; p < HW; ++p)
        for (int64_t c = 0; c < C; ++c) yi[c * HW + p] = codes[static_cast<std::size_t>(p * C + c)];
    });
  });
}

namespace {

inline int32_t code_at(const uint8_t* p, bool is_signed) {
  return is_signed ? static_cast<int32_t>(static_cast<int8_t>(*p)) : static_cast<int32_t>(*p);
}

class ViewKernel final : public OpKernel {
 public:
  void eval(std::span<const Tensor* const>, std::span<Tensor* const>) const override {}
  bool is_view() const override { return true; }
};

}  // namespace

std::unique_ptr<OpKernel> make_exact_conv(ExactConvParams q, ExactIsa isa) {
  if (!exact_isa_supported(isa)) isa = ExactIsa::kScalar;
  auto pk = std::make_shared<ConvPack>();
  pk->p = q.p;
  const auto& p = q.p;
  pk->K = p.c * p.kh * p.kw;
  if (pk->K <= 0 || static_cast<double>(pk->K) * 65025.0 + 2147483648.0 / 2 > 2147483647.0) return nullptr;
  pk->CG = (p.c + 3) / 4;
  pk->G = pk->CG * p.kh * p.kw;
  const int64_t Hp = (p.out_h - 1) * p.sh + (p.kh - 1) * p.dh + 1;
  const int64_t Wp = (p.out_w - 1) * p.sw + (p.kw - 1) * p.dw + 1;
  pk->Hs = (Hp + p.sh - 1) / p.sh;
  pk->Ws = (Wp + p.sw - 1) / p.sw;
  pk->plane = pk->Hs * pk->Ws;
  pk->P = p.out_h * p.out_w;
  pk->Q = p.out_h * pk->Ws;
  pk->Qpad = (pk->Q + 63) / 64 * 64;
  pk->Mpad = (p.m + 3) / 4 * 4;
  pk->planes_dwords = pk->CG * p.sh * p.sw * pk->plane + pk->Qpad + 64;
  pk->x_signed = q.x_signed;
  pk->zx_u8 = q.x_signed ? q.zp_x + 128 : q.zp_x;
  pk->out = q.out;
  const auto Mp = static_cast<std::size_t>(pk->Mpad), G = static_cast<std::size_t>(pk->G);
  pk->aoff.resize(G);
  {
    const int64_t nvec = (pk->Q + 15) / 16;
    for (int64_t vi = 0; vi < nvec; ++vi) {
      pk->seg_begin.push_back(static_cast<int32_t>(pk->segs.size()));
      for (int64_t l = 0; l < 16;) {
        const int64_t q = vi * 16 + l, r = q / pk->Ws, c = q % pk->Ws;
        const int64_t seg = std::min<int64_t>(16 - l, pk->Ws - c);
        const int64_t valid = r < p.out_h ? std::max<int64_t>(0, std::min<int64_t>(seg, p.out_w - c)) : 0;
        if (valid > 0) {
          ConvPack::StoreSeg sg;
          sg.off = r * p.out_w + c;
          sg.mask = static_cast<uint16_t>((1u << valid) - 1u);
          for (int t = 0; t < 16; ++t) sg.shuf[t] = static_cast<uint8_t>(t < valid ? l + t : 0x80);
          pk->segs.push_back(sg);
        }
        l += seg;
      }
    }
    pk->seg_begin.push_back(static_cast<int32_t>(pk->segs.size()));
  }
  pk->row_phase_used.assign(static_cast<std::size_t>(p.sh), false);
  for (int64_t i = 0; i < p.kh; ++i) pk->row_phase_used[static_cast<std::size_t>((i * p.dh) % p.sh)] = true;
  for (int64_t i = 0; i < p.kh; ++i)
    for (int64_t j = 0; j < p.kw; ++j)
      for (int64_t cg = 0; cg < pk->CG; ++cg) {
        const int64_t oi = i * p.dh, oj = j * p.dw;
        pk->aoff[static_cast<std::size_t>((i * p.kw + j) * pk->CG + cg)] =
            ((cg * p.sh + oi % p.sh) * p.sw + oj % p.sw) * pk->plane + (oi / p.sh) * pk->Ws + oj / p.sw;
      }
  pk->w4.assign(Mp * G, 0);
  pk->w16.assign(Mp * G * 2, 0);
  pk->c.assign(Mp, 0);
  pk->zw.assign(Mp, 0);
  pk->mult.assign(Mp, 0.f);
  for (int64_t m = 0; m < p.m; ++m) {
    const auto mu = static_cast<std::size_t>(m);
    const int32_t zw = q.w_signed ? q.zp_w[mu] : q.zp_w[mu] - 128;
    int64_t wsum = 0;
    for (int64_t c = 0; c < p.c; ++c)
      for (int64_t i = 0; i < p.kh; ++i)
        for (int64_t j = 0; j < p.kw; ++j) {
          const uint8_t raw = q.w[static_cast<std::size_t>(((m * p.c + c) * p.kh + i) * p.kw + j)];
          const int32_t v = q.w_signed ? static_cast<int32_t>(static_cast<int8_t>(raw)) : static_cast<int32_t>(raw) - 128;
          wsum += v;
          const std::size_t g = static_cast<std::size_t>((i * p.kw + j) * pk->CG + c / 4);
          const int r = static_cast<int>(c % 4);
          pk->w4[mu * G + g] |= static_cast<uint32_t>(static_cast<uint8_t>(static_cast<int8_t>(v))) << (8 * r);
          // AVX2 pairs: dword 0 = (w0, w2), dword 1 = (w1, w3) as int16.
          const std::size_t d = (mu * G + g) * 2 + static_cast<std::size_t>(r % 2);
          pk->w16[d] |= static_cast<uint32_t>(static_cast<uint16_t>(static_cast<int16_t>(v))) << (16 * (r / 2));
        }
    const int64_t c = static_cast<int64_t>(q.bias[mu]) - static_cast<int64_t>(pk->zx_u8) * wsum +
                      pk->K * static_cast<int64_t>(pk->zx_u8) * zw;
    if (c < std::numeric_limits<int32_t>::min() || c > std::numeric_limits<int32_t>::max()) return nullptr;
    pk->c[mu] = static_cast<int32_t>(c);
    pk->zw[mu] = zw;
    pk->any_zw = pk->any_zw || zw != 0;
    pk->mult[mu] = q.multiplier[mu];
  }
  for (const ExactPostOp& op : q.post) {
    ExactPostOp padded = op;
    if (padded.is_mul) padded.bz.resize(Mp, 0);
    padded.m.resize(Mp, 0.f);
    if (!padded.is_mul) padded.tb.resize(Mp, 0.f);
    pk->post.push_back(std::move(padded));
  }
  using GemmFn = void (*)(const ConvPack&, const uint32_t*, int32_t*, uint8_t*, uint8_t*);
  GemmFn gemm = isa == ExactIsa::kAvx512Vnni ? gemm_avx512vnni : (isa == ExactIsa::kAvx2 ? gemm_avx2 : gemm_scalar);
  return kernels::make_kernel([pk, gemm](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const auto& p = pk->p;
    const uint8_t* x = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* y = static_cast<uint8_t*>(out[0]->raw());
    const int64_t n = in[0]->shape()[0];
    kernels::parallel_for_each(n, [&](int64_t i) {
      // Per-thread scratch: grows once, then reused (no allocation per image).
      // The planes' slack beyond the phase planes is only read for discarded
      // wide pixels; resize() zero-fills it once.
      thread_local std::vector<uint8_t> scratch;
      thread_local std::vector<uint32_t> planes;
      thread_local std::vector<int32_t> sx;
      thread_local std::vector<uint8_t> tmp;
      if (planes.size() < static_cast<std::size_t>(pk->planes_dwords)) planes.resize(static_cast<std::size_t>(pk->planes_dwords));
      if (sx.size() < static_cast<std::size_t>(pk->Qpad)) sx.resize(static_cast<std::size_t>(pk->Qpad));
      if (tmp.size() < static_cast<std::size_t>(pk->Mpad * pk->Qpad)) tmp.resize(static_cast<std::size_t>(pk->Mpad * pk->Qpad));
      pack_image(*pk, x + i * p.c * p.h * p.w, scratch, planes.data());
      gemm(*pk, planes.data(), sx.data(), tmp.data(), y + i * p.m * pk->P);
    });
  });
}

std::unique_ptr<OpKernel> make_exact_matmul(ExactConvParams q) {
  const int64_t K = q.p.c, M = q.p.m;
  const int32_t zx = q.zp_x;
  // w' = w - zw as int32, [M][K].
  std::vector<int32_t> w(static_cast<std::size_t>(M * K));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t m = 0; m < M; ++m) {
      const uint8_t raw = q.w[static_cast<std::size_t>(k * M + m)];
      const int32_t v = q.w_signed ? static_cast<int32_t>(static_cast<int8_t>(raw)) : static_cast<int32_t>(raw);
      w[static_cast<std::size_t>(m * K + k)] = v - q.zp_w[static_cast<std::size_t>(m)];
    }
  return kernels::make_kernel([q = std::move(q), w = std::move(w), K, M, zx](std::span<const Tensor* const> in,
                                                                          std::span<Tensor* const> out) {
    const uint8_t* x = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* y = static_cast<uint8_t*>(out[0]->raw());
    const int64_t rows = in[0]->numel() / K;
    const int32_t lo = q.out.lo(), hi = q.out.hi();
    kernels::parallel_for_each(rows, [&](int64_t r) {
      const uint8_t* xr = x + r * K;
      for (int64_t m = 0; m < M; ++m) {
        const int32_t* wm = w.data() + m * K;
        int32_t acc = q.bias[static_cast<std::size_t>(m)];
        for (int64_t k = 0; k < K; ++k) acc += (code_at(xr + k, q.x_signed) - zx) * wm[k];
        y[r * M + m] = static_cast<uint8_t>(requant(acc, q.multiplier[static_cast<std::size_t>(m)], q.out, lo, hi));
      }
    }, 16);
  });
}

std::unique_ptr<OpKernel> make_exact_binary(const ExactBinaryParams& q, ExactIsa isa) {
  if (!exact_isa_supported(isa)) isa = ExactIsa::kScalar;
  // One BinaryRow per channel (a constant b may have per-channel parameters).
  const int64_t C = q.channels;
  std::vector<BinaryRow> rows;
  std::vector<int32_t> bvals;
  const std::size_t nrows = q.b_is_const ? static_cast<std::size_t>(C) : 1;
  for (std::size_t c = 0; c < nrows; ++c) {
    const std::size_t pc = q.scale_b.size() == 1 ? 0 : c;
    BinaryRow r{};
    r.is_mul = q.is_mul;
    r.a_signed = q.a_signed;
    r.b_signed = q.b_signed;
    r.za = q.zp_a;
    r.zb = q.zp_b[q.zp_b.size() == 1 ? 0 : c];
    if (q.is_mul) {
      r.ma = static_cast<float>(q.scale_a * q.scale_b[pc]) / q.scale_y;
    } else {
      r.ma = q.scale_a / q.scale_y;
      r.mb = q.scale_b[pc] / q.scale_y;
    }
    r.out = q.out;
    rows.push_back(r);
    bvals.push_back(q.b_is_const ? q.b_codes[c] : 0);
  }
  using RowFn = void (*)(const BinaryRow&, const uint8_t*, const uint8_t*, int32_t, uint8_t*, int64_t);
  RowFn fn = isa == ExactIsa::kScalar ? binary_row_scalar
            : isa == ExactIsa::kAvx2 ? binary_row_avx2
                                     : binary_row_avx512;
  const bool bconst = q.b_is_const;
  const int64_t inner = q.inner;
  return kernels::make_kernel([rows, bvals, fn, bconst, C, inner](std::span<const Tensor* const> in,
                                                                 std::span<Tensor* const> out) {
    const uint8_t* a = static_cast<const uint8_t*>(in[0]->raw());
    const uint8_t* b = bconst ? nullptr : static_cast<const uint8_t*>(in[1]->raw());
    uint8_t* y = static_cast<uint8_t*>(out[0]->raw());
    const int64_t per_image = C * inner;
    const int64_t n = out[0]->numel() / per_image;
    kernels::parallel_for_each(n, [&](int64_t i) {
      const int64_t off = i * per_image;
      if (!bconst) {
        fn(rows[0], a + off, b + off, 0, y + off, per_image);
        return;
      }
      for (int64_t c = 0; c < C; ++c)
        fn(rows[static_cast<std::size_t>(c)], a + off + c * inner, nullptr, bvals[static_cast<std::size_t>(c)],
           y + off + c * inner, inner);
    }, inner >= 64 ? 1 : 64);
  });
}

std::unique_ptr<OpKernel> make_exact_global_avgpool(int64_t count, bool x_signed, int32_t zp_x, float scale_x,
                                                    float scale_y, ExactOutput o) {
  const float mult = scale_x / (scale_y * static_cast<float>(count));
  return kernels::make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const uint8_t* x = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* y = static_cast<uint8_t*>(out[0]->raw());
    const int64_t planes = in[0]->numel() / count;
    const int32_t lo = o.lo(), hi = o.hi();
    for (int64_t pl = 0; pl < planes; ++pl) {
      int32_t sum = 0;
      const uint8_t* xp = x + pl * count;
      for (int64_t i = 0; i < count; ++i) sum += code_at(xp + i, x_signed);
      y[pl] = static_cast<uint8_t>(requant(sum - zp_x * static_cast<int32_t>(count), mult, o, lo, hi));
    }
  });
}

std::unique_ptr<OpKernel> make_exact_requantize(bool x_signed, int32_t zp_x, float scale_x, float scale_y,
                                                ExactOutput o, bool view) {
  if (view) return std::make_unique<ViewKernel>();
  const float mult = scale_x / scale_y;
  return kernels::make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const uint8_t* x = static_cast<const uint8_t*>(in[0]->raw());
    uint8_t* y = static_cast<uint8_t*>(out[0]->raw());
    const int64_t n = out[0]->numel();
    const int32_t lo = o.lo(), hi = o.hi();
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<uint8_t>(requant(code_at(x + i, x_signed) - zp_x, mult, o, lo, hi));
  });
}

}  // namespace qpipe::integer
