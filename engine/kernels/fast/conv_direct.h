#pragma once
// Direct (im2col-free) float32 convolution for AVX2+FMA and AVX-512F, NCHW,
// group 1.
//
// AVX2 (DirectConv):
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
// AVX-512F (WideConv): planes of hq rows of row_width floats per input
// channel c, row phase a (< sh) and column plane jj (< J), in one of two
// layouts, whichever writes fewer floats per image:
//  - column-shifted (any shape): J = kw, row_width = out_w, plane (c, a, j)
//    row r column q holds padded pixel (r*sh + a, q*sw + j*dw). Output pixel
//    p = oh*out_w + ow reads tap (c, i, j) at koff[k] + p, contiguous in p
//    across row boundaries, so 16-pixel vectors work for any out_w (8x8
//    outputs included); a last partial vector is stored under a mask.
//  - phase (out_w % 16 == 0): J = sw column phases b, row_width = out_w +
//    ((kw-1)*dw)/sw, plane (c, a, b) row r column q holds padded pixel
//    (r*sh + a, q*sw + b), as the AVX2 layout; tap (c, i, j) of pixel
//    (oh, ow) is at koff[k] + oh*row_width + ow, and a vector never leaves
//    its row. For stride 1 this writes one copy of each row instead of kw.
// The tile is MR output channels (8 or 4, weights packed [M/MR][K][MR],
// broadcast) x NV vectors of 16 pixels (MR*NV <= 24 zmm accumulators).
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

struct WideConv {
  ConvGeometry g;
  int mr = 8;               // output channels per tile (8 or 4)
  int nv = 3;               // 16-pixel vectors per tile (1..6, mr * nv <= 24)
  int64_t K = 0;            // c * kh * kw
  int64_t P = 0;            // out_h * out_w
  int64_t vectors = 0;      // ceil(P / 16): 16-pixel vectors per image
  bool phase_layout = false;  // see above; false: column-shifted
  int64_t J = 0;            // column planes per (c, a): kw or sw
  int64_t row_width = 0;    // floats per plane row: out_w or out_w + ((kw-1)*dw)/sw
  int64_t hq = 0;           // rows per plane
  int64_t plane = 0;        // hq * row_width
  int64_t image_floats = 0; // floats of all planes of one image, plus 16 of slack
  std::vector<int32_t> koff;
  std::vector<bool> row_phase_used;  // per a: read by some tap
  std::vector<float> packed_w;       // [ceil(m/mr)][K][mr], zero-padded rows
  // Offset in the planes of 16-pixel vector v (pixel 16v) of one image.
  int64_t vector_offset(int64_t v) const {
    if (!phase_layout) return v * 16;
    const int64_t p = v * 16;
    return (p / g.out_w) * row_width + p % g.out_w;
  }
  // Plane-building recipe, the same for every source row: 16-float pieces
  // of the J destination rows. Piece lane t reads source column
  // src + t * sw (src relative to the row start, masks drop the padding:
  // lo_mask for columns src + [0, 16), hi_mask for src + [16, 32)) and is
  // stored at dst (relative to plane (c, a, 0) row r) under store_mask.
  // Column planes that no tap reads have no pieces.
  // With stride 2, pieces are ordered by q0 and a piece whose columns lie in
  // the previous loaded 32-column window has `shift` = src - that window's
  // src and `reuse` set: the AVX-512 builder then permutes the loaded pair
  // again instead of loading (same values; the portable builder ignores it).
  struct Piece {
    int32_t dst = 0, src = 0;
    uint16_t lo_mask = 0, hi_mask = 0, store_mask = 0;
    uint8_t shift = 0;
    bool reuse = false;
  };
  std::vector<Piece> pieces;
};

// Plans the AVX-512 conv (any group-1 2-D geometry); `w` is the [m, c, kh, kw]
// weight or null (then call pack_wide_weights before computing). mr = 0
// picks the tile from the shape.
WideConv make_wide_conv(const ConvGeometry& g, const float* w, int mr = 0, int nv = 0);
void pack_wide_weights(WideConv& wc, const float* w);
// Builds the column-shifted planes of one image (x: [c, h, w]) into
// planes[image_floats] (portable code; the slack is zeroed).
void build_wide_planes(const WideConv& wc, const float* x, float* planes);
// The same planes built with AVX-512 masked loads (requires cpu_has_avx512f()).
void build_wide_planes_avx512(const WideConv& wc, const float* x, float* planes);
// Memory to bring into cache while a conv computes (the next image's input,
// residual inputs and output: with a large batch they are in L3 or DRAM).
// The kernel spreads the prefetches over its pixel tiles, a few lines per
// tile, so they neither burst past the miss buffers nor arrive too late.
struct PrefetchRanges {
  const char* begin[6] = {};
  int64_t bytes[6] = {};
  int n = 0;
  void add(const void* p, int64_t nbytes) {
    if (n < 6) {
      begin[n] = static_cast<const char*>(p);
      bytes[n++] = nbytes;
    }
  }
};

// Computes the 16-pixel vectors [v_begin, v_end) of one image into y ([m, P]),
// applying the epilogue; extra[e] is extra tensor e at this image; pf (may
// be null) is prefetched along the way. Requires cpu_has_avx512f().
void direct_conv_avx512(const WideConv& wc, const float* planes, float* y, const Epilogue& ep,
                        const float* const* extra, int64_t v_begin, int64_t v_end,
                        const PrefetchRanges* pf = nullptr);
// AVX-512 epilogue over a contiguous row of channel c (bit-identical to the
// AVX2 and scalar ones).
void epilogue_row_avx512(const Epilogue& e, int64_t c, const float* x, float* y, const float* const* extra,
                         int64_t len);

}  // namespace qpipe::fast
