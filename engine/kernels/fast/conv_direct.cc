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

void pack_wide_weights(WideConv& wc, const float* w) {
  const int64_t mr = wc.mr, mt = (wc.g.m + mr - 1) / mr;
  wc.packed_w.assign(static_cast<std::size_t>(mt * wc.K * mr), 0.f);
  for (int64_t m = 0; m < wc.g.m; ++m)
    for (int64_t k = 0; k < wc.K; ++k)
      wc.packed_w[static_cast<std::size_t>(((m / mr) * wc.K + k) * mr + m % mr)] = w[m * wc.K + k];
}

WideConv make_wide_conv(const ConvGeometry& g, const float* w, int mr, int nv) {
  WideConv wc;
  wc.g = g;
  wc.K = g.c * g.kh * g.kw;
  wc.P = g.out_h * g.out_w;
  wc.vectors = (wc.P + 15) / 16;
  // Tile: 8 channels x 3 vectors (24 accumulators) unless the image is so
  // small that a 4 x 4 tile wastes less (a 64-pixel image has 4 vectors) or
  // there are at most 4 channels.
  if (mr <= 0) {
    mr = g.m <= 4 || (wc.vectors % 3 != 0 && wc.vectors % 4 == 0 && wc.vectors <= 8) ? 4 : 8;
    nv = mr == 8 ? 3 : 4;
  }
  wc.mr = mr == 4 ? 4 : 8;
  wc.nv = std::clamp(nv <= 0 ? 3 : nv, 1, wc.mr == 8 ? 3 : 6);
  wc.hq = g.out_h + ((g.kh - 1) * g.dh) / g.sh;
  // Which (column) planes some tap reads, per layout.
  std::vector<bool> shift_used(static_cast<std::size_t>(g.kw), true), phase_used(static_cast<std::size_t>(g.sw), false);
  for (int64_t j = 0; j < g.kw; ++j) phase_used[static_cast<std::size_t>((j * g.dw) % g.sw)] = true;
  int64_t phases = 0;
  for (bool u : phase_used) phases += u;
  const int64_t phase_width = g.out_w + ((g.kw - 1) * g.dw) / g.sw;
  wc.phase_layout = g.out_w % 16 == 0 && phases * phase_width < g.kw * g.out_w;
  wc.J = wc.phase_layout ? g.sw : g.kw;
  wc.row_width = wc.phase_layout ? phase_width : g.out_w;
  const std::vector<bool>& used = wc.phase_layout ? phase_used : shift_used;
  wc.plane = wc.hq * wc.row_width;
  wc.image_floats = g.c * g.sh * wc.J * wc.plane + 16;
  wc.row_phase_used.assign(static_cast<std::size_t>(g.sh), false);
  for (int64_t c = 0; c < g.c; ++c)
    for (int64_t i = 0; i < g.kh; ++i)
      for (int64_t j = 0; j < g.kw; ++j) {
        const int64_t ri = i * g.dh, a = ri % g.sh, cj = j * g.dw;
        wc.row_phase_used[static_cast<std::size_t>(a)] = true;
        const int64_t jj = wc.phase_layout ? cj % g.sw : j;
        const int64_t col = wc.phase_layout ? cj / g.sw : 0;
        wc.koff.push_back(
            static_cast<int32_t>(((c * g.sh + a) * wc.J + jj) * wc.plane + (ri / g.sh) * wc.row_width + col));
      }
  auto lanes = [](int64_t lo, int64_t hi) -> uint16_t {
    uint32_t m = 0;
    for (int64_t t = std::max<int64_t>(lo, 0); t < std::min<int64_t>(hi, 16); ++t) m |= 1u << t;
    return static_cast<uint16_t>(m);
  };
  for (int64_t q0 = 0; q0 < wc.row_width; q0 += 16) {
    int64_t window = -1;  // src of the last loaded window at this q0
    for (int64_t jj = 0; jj < wc.J; ++jj) {
      if (!used[static_cast<std::size_t>(jj)]) continue;
      WideConv::Piece pc;
      pc.dst = static_cast<int32_t>(jj * wc.plane + q0);
      // Source column of lane 0.
      const int64_t c0 = (wc.phase_layout ? jj : jj * g.dw) - g.pad_left + q0 * g.sw;
      pc.src = static_cast<int32_t>(c0);
      pc.lo_mask = lanes(-c0, g.w - c0);
      pc.hi_mask = lanes(-c0 - 16, g.w - c0 - 16);
      pc.store_mask = lanes(0, wc.row_width - q0);
      const int64_t last = std::min<int64_t>(16, wc.row_width - q0) - 1;  // last lane stored
      if (g.sw == 2 && window >= 0 && c0 >= window && c0 - window + 2 * last <= 31) {
        pc.reuse = true;
        pc.shift = static_cast<uint8_t>(c0 - window);
      } else {
        window = c0;
      }
      wc.pieces.push_back(pc);
    }
  }
  if (w) pack_wide_weights(wc, w);
  return wc;
}

void build_wide_planes(const WideConv& wc, const float* x, float* planes) {
  const ConvGeometry& g = wc.g;
  for (int64_t c = 0; c < g.c; ++c) {
    const float* xc = x + c * g.h * g.w;
    for (int64_t a = 0; a < g.sh; ++a) {
      if (!wc.row_phase_used[static_cast<std::size_t>(a)]) continue;  // never read: left as is
      float* pa = planes + (c * g.sh + a) * wc.J * wc.plane;
      for (int64_t r = 0; r < wc.hq; ++r) {
        float* dst = pa + r * wc.row_width;
        const int64_t h = r * g.sh + a - g.pad_top;
        const bool inside = h >= 0 && h < g.h;
        const float* row = xc + (inside ? h : 0) * g.w;
        for (const WideConv::Piece& pc : wc.pieces)
          for (int64_t t = 0; t < 16; ++t) {
            if (!(pc.store_mask >> t & 1)) continue;
            const int64_t col = pc.src + t * g.sw;
            dst[pc.dst + t] = inside && col >= 0 && col < g.w ? row[col] : 0.f;
          }
      }
    }
  }
  std::fill(planes + wc.image_floats - 16, planes + wc.image_floats, 0.f);
}

}  // namespace qpipe::fast
