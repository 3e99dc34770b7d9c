// Planning and data layout of the direct convolution (portable code); the
// AVX2 arithmetic lives in avx2.cc.

#include "engine/kernels/fast/conv_direct.h"

#include <algorithm>

namespace qpipe::fast {

bool direct_conv_applicable(const ConvGeometry& g) {
  return g.out_w % 8 == 0 && g.out_w > 0 && g.out_h > 0 && g.m > 0 && g.c > 0 && g.sh >= 1 && g.sw >= 1 &&
         g.dh >= 1 && g.dw >= 1;
}

void pack_direct_weights(DirectConv& dc, const float* w) {
  const int64_t mt = (dc.g.m + 3) / 4;
  dc.packed_w.assign(static_cast<std::size_t>(mt * dc.K * 4), 0.f);
  for (int64_t m = 0; m < dc.g.m; ++m)
    for (int64_t k = 0; k < dc.K; ++k)
      dc.packed_w[static_cast<std::size_t>(((m / 4) * dc.K + k) * 4 + m % 4)] = w[m * dc.K + k];
}

DirectConv make_direct_conv(const ConvGeometry& g, const float* w) {
  DirectConv dc;
  dc.g = g;
  dc.K = g.c * g.kh * g.kw;
  dc.hq = g.out_h + ((g.kh - 1) * g.dh) / g.sh;
  dc.wq = g.out_w + ((g.kw - 1) * g.dw) / g.sw;
  dc.plane = dc.hq * dc.wq;
  dc.image_floats = g.c * g.sh * g.sw * dc.plane;
  dc.groups = g.out_h * g.out_w / 8;
  dc.phase_used.assign(static_cast<std::size_t>(g.sh * g.sw), false);
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ri = i * g.dh, cj = j * g.dw;
        const int64_t phase = (ri % g.sh) * g.sw + cj % g.sw;
        dc.phase_used[static_cast<std::size_t>(phase)] = true;
        dc.koff.push_back(static_cast<int32_t>((c * g.sh * g.sw + phase) * dc.plane + (ri / g.sh) * dc.wq + cj / g.sw));
      }
  if (w) pack_direct_weights(dc, w);
  return dc;
}

void build_phase_planes(const DirectConv& dc, const float* x, float* planes) {
  const ConvGeometry& g = dc.g;
  for (int64_t c = 0; c < g.c; ++c) {
    const float* xc = x + c * g.h * g.w;
    for (int64_t a = 0; a < g.sh; ++a)
      for (int64_t b = 0; b < g.sw; ++b) {
        if (!dc.phase_used[static_cast<std::size_t>(a * g.sw + b)]) continue;  // never read: left as is
        float* pl = planes + (c * g.sh * g.sw + a * g.sw + b) * dc.plane;
        for (int64_t r = 0; r < dc.hq; ++r) {
          float* dst = pl + r * dc.wq;
          const int64_t h = r * g.sh + a - g.pad_top;
          if (h < 0 || h >= g.h) {
            std::fill(dst, dst + dc.wq, 0.f);
            continue;
          }
          const float* src = xc + h * g.w;
          if (g.sw == 1) {
            // Contiguous: zeros, a copied run, zeros.
            const int64_t w0 = b - g.pad_left;  // source column of q = 0
            const int64_t q_lo = std::clamp<int64_t>(-w0, 0, dc.wq);
            const int64_t q_hi = std::clamp<int64_t>(g.w - w0, q_lo, dc.wq);
            std::fill(dst, dst + q_lo, 0.f);
            std::copy(src + w0 + q_lo, src + w0 + q_hi, dst + q_lo);
            std::fill(dst + q_hi, dst + dc.wq, 0.f);
          } else {
            for (int64_t q = 0; q < dc.wq; ++q) {
              const int64_t w = q * g.sw + b - g.pad_left;
              dst[q] = (w >= 0 && w < g.w) ? src[w] : 0.f;
            }
          }
        }
      }
  }
}

}  // namespace qpipe::fast
