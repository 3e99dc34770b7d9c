#pragma once
// Reference 2-D convolution (NCHW, group 1): the textbook seven-loop form,
// accumulating in the element type in (c, kh, kw) order. Used for float64
// evaluation and as the golden for the fast kernels' tests.

#include <cstdint>

namespace qpipe::reference {

struct ConvParams {
  int64_t n, c, h, w;        // input
  int64_t m, kh, kw;         // output channels and kernel
  int64_t sh, sw, dh, dw;    // strides and dilations
  int64_t pad_top, pad_left; // leading pads (trailing pads only shape out_h/out_w)
  int64_t out_h, out_w;
};

template <typename T>
void conv2d(const ConvParams& p, const T* x, const T* w, const T* bias, T* y, int64_t image) {
  const T* xi = x + image * p.c * p.h * p.w;
  T* yi = y + image * p.m * p.out_h * p.out_w;
  for (int64_t m = 0; m < p.m; ++m)
    for (int64_t oh = 0; oh < p.out_h; ++oh)
      for (int64_t ow = 0; ow < p.out_w; ++ow) {
        T acc = bias ? bias[m] : T(0);
        for (int64_t c = 0; c < p.c; ++c)
          for (int64_t i = 0; i < p.kh; ++i) {
            const int64_t h = oh * p.sh - p.pad_top + i * p.dh;
            if (h < 0 || h >= p.h) continue;
            for (int64_t j = 0; j < p.kw; ++j) {
              const int64_t ww = ow * p.sw - p.pad_left + j * p.dw;
              if (ww < 0 || ww >= p.w) continue;
              acc += xi[(c * p.h + h) * p.w + ww] * w[((m * p.c + c) * p.kh + i) * p.kw + j];
            }
          }
        yi[(m * p.out_h + oh) * p.out_w + ow] = acc;
      }
}

}  // namespace qpipe::reference
