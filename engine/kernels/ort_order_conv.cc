// float32 Conv in ONNX Runtime's MLAS summation order; see ort_order_conv.h
// for the model of MLAS this implements.
//
// Floating-point contraction is off for this file: the single-row GEMM
// kernel multiplies and adds separately, and slice sums are plain additions.
// The FMA chains use __builtin_fmaf explicitly, which is exact (one rounding)
// on every path: the AVX2+FMA clone compiles it to vfmadd, the portable one
// calls the C library's correctly rounded fmaf. Both give identical bits.

#pragma GCC optimize("fp-contract=off")

#include "engine/kernels/ort_order_conv.h"

#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "engine/error.h"
#include "engine/kernels/common.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {

constexpr int64_t kStrideN = 128;          // MLAS_SGEMM_STRIDEN
constexpr int64_t kStrideK = 128;          // MLAS_SGEMM_STRIDEK
constexpr int64_t kMaxThreads = 16;        // MLAS_MAXIMUM_THREAD_COUNT
constexpr int64_t kComplexity = 64 * 1024; // MLAS_SGEMM_THREAD_COMPLEXITY
constexpr int64_t kThreadAlign = 16;       // MLAS_SGEMM_STRIDEN_THREAD_ALIGN

// StrideN/StrideK of MlasSgemmOperation and MlasConvOperation for a slice of
// n columns and depth k (A not transposed).
std::pair<int64_t, int64_t> strides(int64_t n, int64_t k) {
  int64_t sn = kStrideN, sk = kStrideK;
  if (n >= k) {
    while (sk / 2 >= k) {
      sn *= 2;
      sk /= 2;
    }
  } else {
    while (sn > 16 && sn / 2 >= n) {
      sk *= 2;
      sn /= 2;
    }
  }
  return {sn, sk};
}

int64_t target_threads(int64_t m, int64_t n, int64_t k, int max_threads) {
  const double complexity = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  int64_t t = complexity < static_cast<double>(kComplexity * kMaxThreads)
                  ? static_cast<int64_t>(complexity / static_cast<double>(kComplexity)) + 1
                  : kMaxThreads;
  return std::min<int64_t>(t, max_threads);
}

using Segment = OrtConvSchedule::Segment;

// MlasSgemmOperation(M = m_end - m_begin, N = [begin, end), K = [k0, k1))
// appended as per-N-slice segments (sgemm's own N slicing does not change
// any element's order, but its K slicing does).
void sgemm_segments(int64_t m_begin, int64_t m_end, int64_t begin, int64_t end, int64_t k0, int64_t k1,
                    std::vector<Segment>* out) {
  const int64_t n = end - begin, k = k1 - k0;
  Segment s{begin, end, m_begin, m_end, {}, m_end - m_begin == 1};
  if (s.m1) {
    // MlasSgemmKernelM1Avx: groups of 4, then 2, then 1.
    int64_t b = k0;
    s.k_bounds.push_back(b);
    while (k1 - b >= 4) s.k_bounds.push_back(b += 4);
    if ((k1 - b) & 2) s.k_bounds.push_back(b += 2);
    if ((k1 - b) & 1) s.k_bounds.push_back(b += 1);
  } else {
    const int64_t sk = strides(n, k).second;
    for (int64_t b = k0; b < k1; b += sk) s.k_bounds.push_back(b);
    s.k_bounds.push_back(k1);
  }
  out->push_back(std::move(s));
}

// Appends the segments of a segment's K slice to an existing schedule entry
// (same pixels and channels): bounds are concatenated.
void append_bounds(Segment* into, const Segment& more) {
  if (into->k_bounds.empty()) {
    *into = more;
    return;
  }
  // more.k_bounds starts where into's ends.
  into->k_bounds.insert(into->k_bounds.end(), more.k_bounds.begin() + 1, more.k_bounds.end());
}

// MlasGemm (threaded) over M x N x K, N = output pixels.
void gemm_schedule(int64_t M, int64_t N, int64_t K, int max_threads, OrtConvSchedule* s) {
  const int64_t t = target_threads(M, N, K, max_threads);
  if (t <= 1) {
    s->threads = 1;
    sgemm_segments(0, M, 0, N, 0, K, &s->segments);
    return;
  }
  int threads = 0;
  if (N > M) {
    int64_t stride = (N + t - 1) / t;
    stride = (stride + kThreadAlign - 1) & ~(kThreadAlign - 1);
    for (int64_t n = 0; n < N; n += stride, ++threads) sgemm_segments(0, M, n, std::min(N, n + stride), 0, K, &s->segments);
  } else {
    const int64_t stride = (M + t - 1) / t;
    for (int64_t m = 0; m < M; m += stride, ++threads) sgemm_segments(m, std::min(M, m + stride), 0, N, 0, K, &s->segments);
  }
  s->threads = threads;
}

}  // namespace

OrtConvSchedule ort_conv_schedule(int64_t filters, int64_t channels, int64_t kh, int64_t kw, int64_t output_size,
                                  bool pointwise, int intra_op_threads) {
  OrtConvSchedule s;
  const int64_t M = filters, N = output_size, K = channels * kh * kw;
  const int max_threads = std::max(1, intra_op_threads);
  if (pointwise && K == channels) {
    s.algorithm = OrtConvSchedule::Algorithm::kGemmDirect;
    gemm_schedule(M, N, K, max_threads, &s);
    return s;
  }
  if (M > N) {
    s.algorithm = OrtConvSchedule::Algorithm::kExpandThenGemm;
    gemm_schedule(M, N, K, max_threads, &s);
    return s;
  }
  s.algorithm = OrtConvSchedule::Algorithm::kExpandThenGemmSegmented;
  int64_t t = target_threads(M, N, K, max_threads);
  int64_t thread_stride = (N + t - 1) / t;
  if (t > 1) {
    thread_stride = (thread_stride + kThreadAlign - 1) & ~(kThreadAlign - 1);
    if (thread_stride >= N) t = 1;
    else if (thread_stride * (t - 1) >= N) --t;
  }
  if (thread_stride >= N) thread_stride = N;  // MlasConvTryMultithread declines: one segment
  s.threads = 0;
  for (int64_t seg = 0; seg < N; seg += thread_stride, ++s.threads) {
    const int64_t seg_n = std::min(thread_stride, N - seg);
    const auto [sn, sk] = strides(seg_n, K);
    for (int64_t n = 0; n < seg_n; n += sn) {
      const int64_t cn = std::min(sn, seg_n - n);
      Segment entry;
      for (int64_t k = 0; k < K; k += sk) {
        std::vector<Segment> parts;
        sgemm_segments(0, M, seg + n, seg + n + cn, k, std::min(K, k + sk), &parts);
        append_bounds(&entry, parts[0]);
      }
      s.segments.push_back(std::move(entry));
    }
  }
  return s;
}

namespace {

// y[m, p] for p in [b, e) of one segment. col is [K, P] (row k at col + k*P),
// w is [M, K]. tmp has room for e - b floats.
#define QPIPE_ORT_SEGMENT_BODY                                                                          \
  const int64_t len = e - b;                                                                             \
  for (int64_t m = m0; m < m1; ++m) {                                                                    \
    const float* wm = w + m * K;                                                                         \
    float* ym = y + m * P + b;                                                                           \
    if (single_row) {                                                                                    \
      for (int64_t p = 0; p < len; ++p) ym[p] = 0.0f;                                                    \
      for (std::size_t j = 0; j + 1 < nb; ++j) {                                                         \
        const int64_t k0 = bounds[j], k1 = bounds[j + 1];                                                \
        const float* c0 = col + k0 * P + b;                                                              \
        for (int64_t p = 0; p < len; ++p) tmp[p] = wm[k0] * c0[p];                                       \
        for (int64_t k = k0 + 1; k < k1; ++k) {                                                          \
          const float* ck = col + k * P + b;                                                             \
          const float wk = wm[k];                                                                        \
          for (int64_t p = 0; p < len; ++p) tmp[p] = tmp[p] + wk * ck[p];                                \
        }                                                                                                \
        for (int64_t p = 0; p < len; ++p) ym[p] = tmp[p] + ym[p];                                        \
      }                                                                                                  \
    } else {                                                                                             \
      for (std::size_t j = 0; j + 1 < nb; ++j) {                                                         \
        for (int64_t p = 0; p < len; ++p) tmp[p] = 0.0f;                                                 \
        for (int64_t k = bounds[j]; k < bounds[j + 1]; ++k) {                                            \
          const float* ck = col + k * P + b;                                                             \
          const float wk = wm[k];                                                                        \
          for (int64_t p = 0; p < len; ++p) tmp[p] = __builtin_fmaf(wk, ck[p], tmp[p]);                  \
        }                                                                                                \
        if (j == 0)                                                                                      \
          for (int64_t p = 0; p < len; ++p) ym[p] = tmp[p];                                              \
        else                                                                                             \
          for (int64_t p = 0; p < len; ++p) ym[p] = ym[p] + tmp[p];                                      \
      }                                                                                                  \
    }                                                                                                    \
  }

__attribute__((target("avx2,fma"))) void segment_avx2(const float* __restrict w, const float* __restrict col,
                                                      float* __restrict y, float* __restrict tmp, int64_t K, int64_t P,
                                                      int64_t m0, int64_t m1, int64_t b, int64_t e,
                                                      const int64_t* bounds, std::size_t nb, bool single_row) {
  QPIPE_ORT_SEGMENT_BODY
}

void segment_portable(const float* __restrict w, const float* __restrict col, float* __restrict y,
                      float* __restrict tmp, int64_t K, int64_t P, int64_t m0, int64_t m1, int64_t b, int64_t e,
                      const int64_t* bounds, std::size_t nb, bool single_row) {
  QPIPE_ORT_SEGMENT_BODY
}

#undef QPIPE_ORT_SEGMENT_BODY

// The same arithmetic as segment_avx2 (non-single-row case), register-tiled:
// 4 output channels x 16 pixels per tile, one FMA chain per element and
// slice, slices added in order. Covers m in [m0, m0 + 4*mt), p in
// [b, b + 16*pt); bit-identical to the plain loops.
__attribute__((target("avx2,fma"))) void segment_avx2_tiled(const float* __restrict w, const float* __restrict col,
                                                            float* __restrict y, int64_t K, int64_t P, int64_t m0,
                                                            int64_t mt, int64_t b, int64_t pt, const int64_t* bounds,
                                                            std::size_t nb) {
  for (int64_t mi = 0; mi < mt; ++mi) {
    const int64_t m = m0 + 4 * mi;
    const float* w0 = w + m * K;
    for (int64_t pi = 0; pi < pt; ++pi) {
      const int64_t p = b + 16 * pi;
      for (std::size_t j = 0; j + 1 < nb; ++j) {
        __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps(), a10 = _mm256_setzero_ps(),
               a11 = _mm256_setzero_ps(), a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps(),
               a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
        for (int64_t k = bounds[j]; k < bounds[j + 1]; ++k) {
          const float* ck = col + k * P + p;
          const __m256 x0 = _mm256_loadu_ps(ck), x1 = _mm256_loadu_ps(ck + 8);
          __m256 wv = _mm256_broadcast_ss(w0 + k);
          a00 = _mm256_fmadd_ps(wv, x0, a00);
          a01 = _mm256_fmadd_ps(wv, x1, a01);
          wv = _mm256_broadcast_ss(w0 + K + k);
          a10 = _mm256_fmadd_ps(wv, x0, a10);
          a11 = _mm256_fmadd_ps(wv, x1, a11);
          wv = _mm256_broadcast_ss(w0 + 2 * K + k);
          a20 = _mm256_fmadd_ps(wv, x0, a20);
          a21 = _mm256_fmadd_ps(wv, x1, a21);
          wv = _mm256_broadcast_ss(w0 + 3 * K + k);
          a30 = _mm256_fmadd_ps(wv, x0, a30);
          a31 = _mm256_fmadd_ps(wv, x1, a31);
        }
        float* y0 = y + m * P + p;
        const __m256 acc[8] = {a00, a01, a10, a11, a20, a21, a30, a31};
        for (int r = 0; r < 4; ++r)
          for (int h = 0; h < 2; ++h) {
            float* dst = y0 + r * P + 8 * h;
            const __m256 v = acc[2 * r + h];
            _mm256_storeu_ps(dst, j == 0 ? v : _mm256_add_ps(_mm256_loadu_ps(dst), v));
          }
      }
    }
  }
}

struct Geometry {
  int64_t c, h, w, m, kh, kw, sh, sw, dh, dw, pad_top, pad_left, out_h, out_w;
};

class OrtOrderConv final : public OpKernel {
 public:
  OrtOrderConv(Geometry g, OrtConvSchedule schedule, bool direct, bool has_bias, bool avx2)
      : g_(g),
        params_{1, g.c, g.h, g.w, g.m, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.pad_top, g.pad_left, g.out_h, g.out_w},
        schedule_(std::move(schedule)),
        direct_(direct),
        has_bias_(has_bias),
        avx2_(avx2) {}

  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override {
    const Tensor& x = *in[0];
    const float* w = in[1]->data<float>();
    const float* bias = has_bias_ ? in[2]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    const int64_t n = x.dim(0);
    const int64_t K = g_.c * g_.kh * g_.kw, P = g_.out_h * g_.out_w;
    const int64_t in_floats = g_.c * g_.h * g_.w, out_floats = g_.m * P;
    parallel_for_each(n, [&](int64_t i) {
      const float* xi = x.data<float>() + i * in_floats;
      float* yi = y + i * out_floats;
      std::vector<float> col;
      const float* cols = xi;
      if (!direct_) {
        col.resize(static_cast<std::size_t>(K * P));
        im2col(params_, xi, col.data());  // MLAS's im2col layout (MlasConvIm2Col)
        cols = col.data();
      }
      std::vector<float> tmp(static_cast<std::size_t>(P));
      for (const auto& s : schedule_.segments) {
        if (avx2_ && !s.m1) {
          // Tiles, then the leftover pixels (all channels) and channels.
          const int64_t mt = (s.m_end - s.m_begin) / 4, pt = (s.end - s.begin) / 16;
          const int64_t m_tiled = s.m_begin + 4 * mt, p_tiled = s.begin + 16 * pt;
          segment_avx2_tiled(w, cols, yi, K, P, s.m_begin, mt, s.begin, pt, s.k_bounds.data(), s.k_bounds.size());
          if (p_tiled < s.end)
            segment_avx2(w, cols, yi, tmp.data(), K, P, s.m_begin, s.m_end, p_tiled, s.end, s.k_bounds.data(),
                         s.k_bounds.size(), false);
          if (m_tiled < s.m_end && p_tiled > s.begin)
            segment_avx2(w, cols, yi, tmp.data(), K, P, m_tiled, s.m_end, s.begin, p_tiled, s.k_bounds.data(),
                         s.k_bounds.size(), false);
          continue;
        }
        (avx2_ ? segment_avx2 : segment_portable)(w, cols, yi, tmp.data(), K, P, s.m_begin, s.m_end, s.begin, s.end,
                                                  s.k_bounds.data(), s.k_bounds.size(), s.m1);
      }
      if (bias)
        for (int64_t m = 0; m < g_.m; ++m)
          for (int64_t p = 0; p < P; ++p) yi[m * P + p] = yi[m * P + p] + bias[m];
    });
  }

 private:
  Geometry g_;
  reference::ConvParams params_;
  OrtConvSchedule schedule_;
  bool direct_, has_bias_, avx2_;
};

}  // namespace

Prepared prepare_conv_ort_order(const Node& node, std::span<const ValueDesc> in, int intra_op_threads,
                                bool force_portable) {
  // Validation and output shape: exactly as the regular Conv.
  Prepared p = prepare_conv(node, in, PrepareContext{});
  if (in[0].dtype != DType::kFloat32) return p;
  const Shape& xs = in[0].shape;
  const Shape& ws = in[1].shape;
  const Geometry2D geo = conv_geometry(node, xs, ws[2], ws[3]);
  const Geometry g{xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], geo.sh, geo.sw, geo.dh, geo.dw,
                   geo.pad_top, geo.pad_left, geo.out_h, geo.out_w};
  const bool pointwise = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && geo.pad_top == 0 && geo.pad_left == 0 &&
                         geo.pad_bottom == 0 && geo.pad_right == 0;
  const int64_t P = g.out_h * g.out_w;
  // Two shapes MLAS routes to routines this model does not reproduce exactly
  // (a single-channel convolution whose kernel spans the input's width or
  // height runs as a GEMM on the input; a 1x1 convolution over one pixel
  // uses the transposed single-column kernel): they get the general
  // schedule, so their last bits may differ from ORT's. Not refused, because
  // Session also prepares models at placeholder shapes (dynamic dims = 1).
  OrtConvSchedule schedule = ort_conv_schedule(g.m, g.c, g.kh, g.kw, P, pointwise, intra_op_threads);
  const bool has_bias = in.size() > 2 && !node.inputs[2].empty();
  p.kernel = std::make_unique<OrtOrderConv>(g, std::move(schedule), pointwise, has_bias, fast::use_avx2(force_portable));
  return p;
}

namespace {

// MatMul rows in MLAS order: ORT prepacks a constant B (MatMul<float>::PrePack)
// and runs the packed SGEMM, whose K slices are MLAS_SGEMM_PACKED_STRIDEK =
// 256 deep: per output element one FMA chain per slice, slices added.
class OrtOrderMatMul final : public OpKernel {
 public:
  OrtOrderMatMul(int64_t M, int64_t K, int64_t N) : M_(M), K_(K), N_(N) {}
  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override {
    const float* a = in[0]->data<float>();
    const float* b = in[1]->data<float>();
    float* y = out[0]->data<float>();
    parallel_for_each(M_, [&](int64_t i) {
      const float* ar = a + i * K_;
      float* yr = y + i * N_;
      for (int64_t j = 0; j < N_; ++j) {
        float v = 0.0f;
        for (int64_t k0 = 0; k0 < K_; k0 += kPackedStrideK) {
          float acc = 0.0f;
          const int64_t k1 = std::min(K_, k0 + kPackedStrideK);
          for (int64_t k = k0; k < k1; ++k) acc = __builtin_fmaf(ar[k], b[k * N_ + j], acc);
          v = k0 == 0 ? acc : v + acc;
        }
        yr[j] = v;
      }
    });
  }

 private:
  static constexpr int64_t kPackedStrideK = 256;  // MLAS_SGEMM_PACKED_STRIDEK
  int64_t M_, K_, N_;
};

}  // namespace

Prepared prepare_matmul_ort_order(const Node& node, std::span<const ValueDesc> in) {
  Prepared p = prepare_matmul(node, in, PrepareContext{});
  if (in[0].dtype != DType::kFloat32) return p;
  const int64_t K = in[0].shape.back(), N = in[1].shape[1];
  const int64_t M = shape_numel(in[0].shape) / K;
  if (!in[1].constant)
    unsupported(node, "ONNX Runtime order: MatMul with a non-constant B (not prepacked by ORT) is not modelled");
  p.kernel = std::make_unique<OrtOrderMatMul>(M, K, N);
  return p;
}

}  // namespace qpipe::kernels
