#pragma once
// Fused elementwise epilogues: the chain of cheap per-element ops that follows
// a Conv (or any other producer) in a graph, applied while the producer's
// result is still in registers or cache instead of materialising every
// intermediate tensor.
//
// Ops are applied in order to y[n, c, i] (the producer's output viewed as
// [outer, C, inner]); constants vary at most along the channel axis C:
//   kAddConst   y = y + a[c]
//   kMulConst   y = y * a[c]
//   kRelu       y = y > 0 ? y : 0
//   kQdq        QuantizeLinear then DequantizeLinear with the same scale s[c]
//               and zero point z[c] (ONNX semantics, float32):
//                 q = saturate(round_half_even(y / s) + z)   (NaN -> 0)
//                 y = float(q - z) * s
//   kAddTensor  y = y + extra[e][n, c, i]  (another tensor of y's shape)
// Each step is one IEEE float32 operation in the unfused op's order (no
// contraction into FMA, no reciprocal instead of the division), so a fused
// chain is bit-identical to running the ops one by one.

#include <cstdint>
#include <vector>

#include "engine/kernels/fast/cpu.h"

namespace qpipe::fast {

struct EpilogueOp {
  enum class Kind { kAddConst, kMulConst, kRelu, kQdq, kAddTensor };
  Kind kind = Kind::kRelu;
  std::vector<float> a;   // kAddConst/kMulConst: the constant; kQdq: the scale (per channel)
  std::vector<float> z;   // kQdq: the zero point as float (per channel)
  float lo = 0, hi = 0;   // kQdq: the quantized type's range (-128..127 or 0..255)
  int extra = -1;         // kAddTensor: index of the extra input
};

struct Epilogue {
  std::vector<float> bias;  // added first when not empty (Conv bias), per channel
  std::vector<EpilogueOp> ops;
  int num_extra = 0;
  bool empty() const { return bias.empty() && ops.empty(); }
};

// y[0, len) = epilogue(x[0, len)) for channel c (the portable path: one op
// at a time over L1-sized blocks, loops the compiler vectorises); x may equal
// y. extra[e] points at the same position of extra tensor e.
void epilogue_row_scalar(const Epilogue& e, int64_t c, const float* x, float* y, const float* const* extra,
                         int64_t len);

// y = epilogue(x) for tensors viewed as [outer, channels, inner] (x may equal
// y); extra tensors have the same layout. Parallel over outer, with the
// kernels of `isa` (the caller has checked the CPU supports it). All ISAs
// give the same bits.
void epilogue_tensor(const Epilogue& e, const float* x, float* y, const float* const* extra, int64_t outer,
                     int64_t channels, int64_t inner, Isa isa);
// The same with AVX2 unless `portable`.
void epilogue_tensor(const Epilogue& e, const float* x, float* y, const float* const* extra, int64_t outer,
                     int64_t channels, int64_t inner, bool portable);

}  // namespace qpipe::fast
