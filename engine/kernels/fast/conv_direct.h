#pragma once
// Direct (im2col-free) float32 convolution for AVX2+FMA, NCHW, group 1.
//
// The input image is rearranged once per image into zero-padded "phase
// planes": for stride (sh, sw) there are sh*sw planes per channel, plane
// (a, b) holding padded pixels (r*sh + a, q*sw + b). In that layout the input
// of tap (c, i, j) for 8 consecutive output pixels of one row is 8
// consecutive floats at a fixed offset koff[k] (k = (c*kh + i)*kw + j), so the
// GEMM Y[M, P] = W[M, K] x X[K, P] reads its right-hand side straight from
// the planes: the microkernel computes a 4 (channels) x 24 (pixels) tile with
// 12 AVX accumulators, broadcasting packed weights [M/4][K][4] and loading
// three 8-pixel vectors per k. Requires out_w % 8 == 0 (ResNet8's 32, 16, 8);
// other shapes use the portable kernel.
//
// Summation order: every output element is acc = fma(w[k], x[k], acc) for
// k = 0, 1, ..., K-1 starting from +0, then + bias, then the epilogue (see
// epilogue.h). This order does not depend on the tile, the batch size or the
// thread partition, so results are bit-identical for any of them. Against the
// portable (Eigen, SSE2, separate multiply and add) kernel the difference is
// the FMA's single rounding and Eigen's blocking: |diff| <= K * 2^-23 *
// sum_k |w_k x_k| (both are float32 sums of the same K products); tests check
// a tighter empirical bound on ResNet8.

#include <cstdint>
#include <vector>

#include "engine/kernels/fast/epilogue.h"

namespace qpipe::fast {

struct ConvGeometry {
  int64_t c = 0, h = 0, w = 0;  // input channels and spatial size
  int64_t m = 0, kh = 1, kw = 1;  // output channels, kernel
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t out_h = 0, out_w = 0;
};

struct DirectConv {
  ConvGeometry g;
  int64_t K = 0;            // c * kh * kw
  int64_t hq = 0, wq = 0;   // phase plane size
  int64_t plane = 0;        // hq * wq
  int64_t image_floats = 0; // floats of all planes of one image
  int64_t groups = 0;       // output pixel groups of 8 per image
  std::vector<int32_t> koff;
  std::vector<bool> phase_used;  // per phase (a*sw + b): read by some tap
  std::vector<float> packed_w;  // [ceil(m/4)][K][4], zero-padded rows
};

bool direct_conv_applicable(const ConvGeometry& g);
// Plans the conv; `w` is the [m, c, kh, kw] weight.
DirectConv make_direct_conv(const ConvGeometry& g, const float* w);
// Repacks weights (for a non-constant weight input).
void pack_direct_weights(DirectConv& dc, const float* w);
// Builds the phase planes of one image (x: [c, h, w]) into planes[image_floats].
void build_phase_planes(const DirectConv& dc, const float* x, float* planes);
// Computes output pixel groups [g_begin, g_end) of one image into y ([m, P]),
// applying the epilogue; extra[e] is extra tensor e at this image.
void direct_conv_avx2(const DirectConv& dc, const float* planes, float* y, const Epilogue& ep,
                      const float* const* extra, int64_t g_begin, int64_t g_end);

// AVX2 epilogue over a contiguous row of channel c (used by epilogue_tensor).
void epilogue_row_avx2(const Epilogue& e, int64_t c, const float* x, float* y, const float* const* extra,
                       int64_t len);

}  // namespace qpipe::fast
