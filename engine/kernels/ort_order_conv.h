#pragma once
// float32 Conv in ONNX Runtime 1.30's CPU summation order (MLAS), for
// calibrating as ORT's quantize_static does.
//
// Why: ORT's MinMax calibration runs the FP32 model in ORT itself (graph
// optimizations off, one image per run). Calibrated ranges are maxima of
// float32 activations, and the last bits of those depend on how each
// convolution sums its K = C*kh*kw products. qpipe's own kernels sum each
// output element in one FMA chain over k = 0..K-1; MLAS cuts K into slices
// (see below) and adds the slices' partial sums. The difference is a few ulp
// of an activation, which is a few ulp of a scale, which moves a handful of
// test images (issue: reproduce the study's scales to 2 ulp).
//
// What MLAS does for one image (MlasConvPrepare / MlasConv / MlasGemm /
// MlasSgemmOperation, onnxruntime/core/mlas/lib/{convolve,sgemm}.cpp, and the
// x86-64 SGEMM kernels):
//  - Algorithm: 1x1, stride 1, no padding → GEMM on the input ("direct");
//    FilterCount > OutputSize → im2col + threaded GEMM; otherwise
//    "ExpandThenGemmSegmented": the output pixels are cut into per-thread
//    segments of ThreadStrideN = ceil(OutputSize / T) rounded up to 16, with
//    T = min(M*N*K / 65536 + 1, 16, intra-op threads) (reduced when a
//    segment would be empty).
//  - Threaded GEMM: T from the same complexity rule; N > M splits N into
//    16-aligned segments, otherwise M is split.
//  - K slicing, from a segment's column count n and K (StrideN = StrideK =
//    128): if n >= K, StrideK halves while StrideK/2 >= K (so K <= 128 is one
//    slice, larger K is sliced by 128); if n < K, StrideK doubles (StrideN
//    halving) while StrideN > 16 and StrideN/2 >= n.
//  - Each slice is one FMA chain from +0 per output element (AVX2/AVX-512
//    kernels: vfmadd231ps, one accumulator per element); the first slice is
//    stored, later slices are added: y = ((s0 + s1) + s2) ...; then y + bias.
//  - A GEMM with a single output row (M == 1) uses MlasSgemmKernelM1Avx:
//    products in groups of 4 (then 2, then 1) with separate multiply and
//    add, g = ((x0 w0 + x1 w1) + x2 w2) + x3 w3, each group added to the
//    running value: y = g + y.
// The order depends on the intra-op thread count T (a SessionOptions value,
// never the machine's): ORT's default is the number of physical cores.
// With these rules qpipe's calibration of ResNet8 on the study's 1000 images
// gives ranges bit-identical to ONNX Runtime 1.30's (intra-op threads 1 and
// 2, graph optimizations off, one image per run) for every calibrated tensor.
// Shapes MLAS handles through special routines not modelled here (1x1
// convolutions over a single pixel; single-channel kernels spanning the
// input's width or height) get the general schedule and may differ from ORT
// in the last bits; grouped convolution is refused as by the regular Conv.

#include <memory>
#include <span>

#include "engine/kernel.h"

namespace qpipe::kernels {

// Prepares `node` (a float32 Conv; inputs as prepare_conv) to run in MLAS
// order for `intra_op_threads` threads.
// force_portable selects the plain C++ path (std::fma) even on AVX2 CPUs;
// both paths give identical bits.
Prepared prepare_conv_ort_order(const Node& node, std::span<const ValueDesc> in, int intra_op_threads,
                                bool force_portable = false);

// MatMul (A [..., M, K] x constant 2-D B) as ORT computes it: B prepacked,
// one FMA chain per 256-deep K slice per output element (the single-row
// kernel is not used for a prepacked B). Checked against ONNX Runtime 1.30:
// ResNet8's logits ranges over the study's calibration images are
// bit-identical.
Prepared prepare_matmul_ort_order(const Node& node, std::span<const ValueDesc> in);

// The K slices of every output pixel, as [begin, end) pairs, for tests and
// documentation: result[p] lists the slices for output pixel p (a GEMM with
// one output row is reported as one slice per group of products).
struct OrtConvSchedule {
  enum class Algorithm { kGemmDirect, kExpandThenGemm, kExpandThenGemmSegmented };
  Algorithm algorithm = Algorithm::kExpandThenGemmSegmented;
  int threads = 1;  // segments actually used
  struct Segment {
    int64_t begin = 0, end = 0;            // output pixels [begin, end)
    int64_t m_begin = 0, m_end = 0;        // output channels [m_begin, m_end)
    std::vector<int64_t> k_bounds;         // slice boundaries: 0 = b0 < b1 < ... < bn = K
    bool m1 = false;                       // single-row GEMM kernel (groups of 4, no FMA)
  };
  std::vector<Segment> segments;
};
OrtConvSchedule ort_conv_schedule(int64_t filters, int64_t channels, int64_t kh, int64_t kw, int64_t output_size,
                                  bool pointwise, int intra_op_threads);

}  // namespace qpipe::kernels
