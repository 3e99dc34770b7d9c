#include "engine/integer/ort_avx2.h"

#include <algorithm>
#include <cmath>

#include "engine/kernels/common.h"

namespace qpipe::integer {
namespace {

inline int32_t sat16(int32_t v) { return v < -32768 ? -32768 : (v > 32767 ? 32767 : v); }

inline int8_t requantize(int32_t acc, float multiplier, int32_t zp_y) {
  const float r = std::nearbyint(static_cast<float>(acc) * multiplier);  // round half to even
  float v = r + static_cast<float>(zp_y);
  v = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
  return static_cast<int8_t>(static_cast<int32_t>(v) - 128);  // u8 code back to the model's s8 code
}

// Weights reordered to [m][Kpad] in (kh, kw, c) order, zero-padded to even K.
struct PackedQ {
  int64_t K = 0, Kpad = 0;
  std::vector<int16_t> w;
  std::vector<int32_t> zp_term;  // bias - zp_x * sum_k w
};

PackedQ pack(const QLinearConvParams& q) {
  const auto& p = q.p;
  PackedQ pk;
  pk.K = p.c * p.kh * p.kw;
  pk.Kpad = (pk.K + 1) / 2 * 2;
  pk.w.assign(static_cast<std::size_t>(p.m * pk.Kpad), 0);
  for (int64_t m = 0; m < p.m; ++m) {
    int32_t sum = 0;
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j)
        for (int64_t c = 0; c < p.c; ++c) {
          const int8_t v = q.w[static_cast<std::size_t>(((m * p.c + c) * p.kh + i) * p.kw + j)];
          pk.w[static_cast<std::size_t>(m * pk.Kpad + (i * p.kw + j) * p.c + c)] = v;
          sum += v;
        }
    pk.zp_term.push_back(q.bias[static_cast<std::size_t>(m)] - q.zp_x * sum);
  }
  return pk;
}

// One image: u[P][Kpad] (u8 values as int16) times the packed weights.
void gemm_image(const QLinearConvParams& q, const PackedQ& pk, const int16_t* u, int64_t P, int8_t* y,
                bool pixel_major_out) {
  for (int64_t m = 0; m < q.p.m; ++m) {
    const int16_t* wm = pk.w.data() + m * pk.Kpad;
    const float mult = q.multiplier[static_cast<std::size_t>(m)];
    for (int64_t px = 0; px < P; ++px) {
      const int16_t* ur = u + px * pk.Kpad;
      int32_t acc = 0;
      if (q.saturate) {
        for (int64_t k = 0; k < pk.Kpad; k += 2) acc += sat16(ur[k] * wm[k] + ur[k + 1] * wm[k + 1]);
      } else {
        for (int64_t k = 0; k < pk.Kpad; ++k) acc += ur[k] * wm[k];
      }
      acc += pk.zp_term[static_cast<std::size_t>(m)];
      y[pixel_major_out ? px * q.p.m + m : m * P + px] = requantize(acc, mult, q.zp_y);
    }
  }
}

}  // namespace

std::unique_ptr<OpKernel> make_qlinear_conv(QLinearConvParams q) {
  PackedQ pk = pack(q);
  return kernels::make_kernel([q = std::move(q), pk = std::move(pk)](std::span<const Tensor* const> in,
                                                                     std::span<Tensor* const> out) {
    const auto& p = q.p;
    const int8_t* x = in[0]->data<int8_t>();
    int8_t* y = out[0]->data<int8_t>();
    const int64_t P = p.out_h * p.out_w;
    kernels::parallel_for_each(p.n, [&](int64_t n) {
      thread_local std::vector<int16_t> u;
      u.resize(static_cast<std::size_t>(P * pk.Kpad));
      const int8_t* xi = x + n * p.c * p.h * p.w;
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        for (int64_t ow = 0; ow < p.out_w; ++ow) {
          int16_t* row = u.data() + (oh * p.out_w + ow) * pk.Kpad;
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t h = oh * p.sh - p.pad_top + i * p.dh;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t w = ow * p.sw - p.pad_left + j * p.dw;
              const bool inside = h >= 0 && h < p.h && w >= 0 && w < p.w;
              int16_t* dst = row + (i * p.kw + j) * p.c;
              for (int64_t c = 0; c < p.c; ++c)
                dst[c] = static_cast<int16_t>(inside ? xi[(c * p.h + h) * p.w + w] + 128 : q.zp_x);
            }
          }
          if (pk.Kpad > pk.K) row[pk.K] = 0;
        }
      gemm_image(q, pk, u.data(), P, y + n * p.m * P, false);
    });
  });
}

std::unique_ptr<OpKernel> make_qlinear_matmul(QLinearConvParams q) {
  // w arrives as [k, m] (MatMul B); store as [m, k] for the shared packing.
  const int64_t K = q.p.c, M = q.p.m;
  std::vector<int8_t> wt(static_cast<std::size_t>(K * M));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t m = 0; m < M; ++m) wt[static_cast<std::size_t>(m * K + k)] = q.w[static_cast<std::size_t>(k * M + m)];
  q.w = std::move(wt);
  PackedQ pk = pack(q);
  return kernels::make_kernel([q = std::move(q), pk = std::move(pk)](std::span<const Tensor* const> in,
                                                                     std::span<Tensor* const> out) {
    const int8_t* x = in[0]->data<int8_t>();
    int8_t* y = out[0]->data<int8_t>();
    const int64_t rows = in[0]->numel() / pk.K;
    kernels::parallel_for_each(rows, [&](int64_t r) {
      std::vector<int16_t> u(static_cast<std::size_t>(pk.Kpad), 0);
      for (int64_t k = 0; k < pk.K; ++k) u[static_cast<std::size_t>(k)] = static_cast<int16_t>(x[r * pk.K + k] + 128);
      gemm_image(q, pk, u.data(), 1, y + r * q.p.m, true);
    }, 16);
  });
}

std::unique_ptr<OpKernel> make_qlinear_global_avgpool(int64_t count, int32_t zp_x, int32_t zp_y, float scale_x,
                                                      float scale_y) {
  const float scale = scale_x / (scale_y * static_cast<float>(count));
  return kernels::make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const int8_t* x = in[0]->data<int8_t>();
    int8_t* y = out[0]->data<int8_t>();
    const int64_t planes = in[0]->numel() / count;
    for (int64_t pl = 0; pl < planes; ++pl) {
      int32_t sum = 0;
      for (int64_t i = 0; i < count; ++i) sum += x[pl * count + i] + 128;
      y[pl] = requantize(sum - zp_x * static_cast<int32_t>(count), scale, zp_y);
    }
  });
}

std::unique_ptr<OpKernel> make_qlinear_add(int32_t zp_a, float scale_a, int32_t zp_b, float scale_b, int32_t zp_c,
                                           float scale_c) {
  const float ra = scale_a / scale_c, rb = scale_b / scale_c;
  const float zpart = static_cast<float>(zp_c) - (ra * static_cast<float>(zp_a) + rb * static_cast<float>(zp_b));
  return kernels::make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const int8_t* a = in[0]->data<int8_t>();
    const int8_t* b = in[1]->data<int8_t>();
    int8_t* y = out[0]->data<int8_t>();
    const int64_t n = out[0]->numel();
    for (int64_t i = 0; i < n; ++i) {
      const float fb = std::fma(static_cast<float>(b[i] + 128), rb, zpart);
      const float v = std::nearbyint(std::fma(static_cast<float>(a[i] + 128), ra, fb));
      const float c = v < 0.f ? 0.f : (v > 255.f ? 255.f : v);
      y[i] = static_cast<int8_t>(static_cast<int32_t>(c) - 128);
    }
  });
}

}  // namespace qpipe::integer

namespace qpipe::integer {

std::unique_ptr<OpKernel> make_qlinear_softmax(int64_t d, float scale_x, float scale_y, int32_t zp_y) {
  // Lookup table of exp((i - 255) * s_x), scaled so that d of them fit in uint32.
  const double qscale = std::fmin(static_cast<double>(UINT32_MAX) / static_cast<double>(d), static_cast<double>(0x7fffff));
  std::vector<uint32_t> table(256);
  for (int32_t i = 0; i < 256; ++i)
    table[static_cast<std::size_t>(i)] =
        static_cast<uint32_t>(std::lrint(qscale * std::exp(static_cast<double>(i - 255) * static_cast<double>(scale_x))));
  const uint32_t y_scale = static_cast<uint32_t>(1.0f / scale_y);
  const uint32_t yzp = static_cast<uint32_t>(zp_y);
  return kernels::make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const int8_t* x = in[0]->data<int8_t>();
    int8_t* y = out[0]->data<int8_t>();
    const int64_t rows = in[0]->numel() / d;
    for (int64_t r = 0; r < rows; ++r) {
      const int8_t* xr = x + r * d;
      int8_t* yr = y + r * d;
      int32_t xmax = 0;
      for (int64_t j = 0; j < d; ++j) xmax = std::max(xmax, xr[j] + 128);
      const uint32_t* tb = table.data() + 255 - xmax;
      uint32_t sum = 0;
      for (int64_t j = 0; j < d; ++j) sum += tb[xr[j] + 128];
      if (sum == 0) continue;  // as ORT: the row is left as is
      const uint32_t rounding = sum >> 1;
      for (int64_t j = 0; j < d; ++j) {
        const uint32_t q = (tb[xr[j] + 128] * y_scale + rounding) / sum + yzp;
        yr[j] = static_cast<int8_t>(static_cast<int32_t>(q > 255 ? 255 : q) - 128);
      }
    }
  });
}

}  // namespace qpipe::integer
