#include "engine/kernels/fast/epilogue.h"

#include <algorithm>
#include <cmath>

#include "engine/kernels/common.h"
#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/fast/fused.h"

namespace qpipe::fast {

namespace {

// round_half_even(v) exactly as std::nearbyint in the default rounding mode,
// sign of zero included, written so the compiler can vectorise it (SSE2 has
// no rounding instruction): below 2^23, |v| + 2^23 - 2^23 rounds |v| to an
// integer with ties to even (2^23 is even and the sum's ulp is 1); from 2^23
// on every float is an integer, so the constant is 0 there (inf and NaN pass
// through). Selecting the constant, not the result, keeps the loop
// branch-free.
inline float round_half_even(float v) {
  const float a = std::fabs(v);
  const float c = a < 8388608.f ? 8388608.f : 0.f;
  return std::copysign((a + c) - c, v);
}

// Elements per block: ops run one after the other over a block that stays
// in L1 (4 KiB of y), each as a simple loop the compiler vectorises.
constexpr int64_t kBlock = 1024;

}  // namespace

void epilogue_row_scalar(const Epilogue& e, int64_t c, const float* x, float* y, const float* const* extra,
                         int64_t len) {
  const std::size_t ci = static_cast<std::size_t>(c);
  const bool has_bias = !e.bias.empty();
  const float bias = has_bias ? e.bias[ci] : 0.f;
  for (int64_t b0 = 0; b0 < len; b0 += kBlock) {
    const int64_t n = len - b0 < kBlock ? len - b0 : kBlock;
    const float* xb = x + b0;
    float* yb = y + b0;
    if (has_bias) {
      for (int64_t i = 0; i < n; ++i) yb[i] = xb[i] + bias;
    } else if (xb != yb) {
      for (int64_t i = 0; i < n; ++i) yb[i] = xb[i];
    }
    for (const EpilogueOp& op : e.ops) {
      switch (op.kind) {
        case EpilogueOp::Kind::kAddConst: {
          const float a = op.a[ci];
          for (int64_t i = 0; i < n; ++i) yb[i] = yb[i] + a;
          break;
        }
        case EpilogueOp::Kind::kMulConst: {
          const float a = op.a[ci];
          for (int64_t i = 0; i < n; ++i) yb[i] = yb[i] * a;
          break;
        }
        case EpilogueOp::Kind::kRelu:
          for (int64_t i = 0; i < n; ++i) yb[i] = yb[i] > 0.f ? yb[i] : 0.f;
          break;
        case EpilogueOp::Kind::kAddTensor: {
          const float* src = extra[op.extra] + b0;
          for (int64_t i = 0; i < n; ++i) yb[i] = yb[i] + src[i];
          break;
        }
        case EpilogueOp::Kind::kQdq: {
          const float s = op.a[ci], z = op.z[ci], lo = op.lo, hi = op.hi;
          for (int64_t i = 0; i < n; ++i) {
            const float q = round_half_even(yb[i] / s);
            float t = q + z;  // exact while |q| < 2^24; beyond, the clamp saturates either way
            t = t == t ? t : 0.f;  // NaN -> 0
            t = std::min(std::max(t, lo), hi);  // t < lo ? lo : (t > hi ? hi : t)
            yb[i] = (t - z) * s;
          }
          break;
        }
      }
    }
  }
}

void epilogue_tensor(const Epilogue& e, const float* x, float* y, const float* const* extra, int64_t outer,
                     int64_t channels, int64_t inner, Isa isa) {
  kernels::parallel_for_each(outer, [&](int64_t o) {
    const float* ex[16];
    const int n = e.num_extra < 16 ? e.num_extra : 16;
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t off = (o * channels + c) * inner;
      for (int k = 0; k < n; ++k) ex[k] = extra[k] + off;
      if (isa == Isa::kAvx512) epilogue_row_avx512(e, c, x + off, y + off, ex, inner);
      else if (isa == Isa::kAvx2) epilogue_row_avx2(e, c, x + off, y + off, ex, inner);
      else epilogue_row_scalar(e, c, x + off, y + off, ex, inner);
    }
  });
}

void epilogue_tensor(const Epilogue& e, const float* x, float* y, const float* const* extra, int64_t outer,
                     int64_t channels, int64_t inner, bool portable) {
  epilogue_tensor(e, x, y, extra, outer, channels, inner, portable ? Isa::kPortable : Isa::kAvx2);
}

}  // namespace qpipe::fast

namespace qpipe::kernels {

std::unique_ptr<OpKernel> make_epilogue_kernel(fast::Epilogue epilogue, const Shape& shape, bool force_portable) {
  int64_t outer = shape.empty() ? 1 : shape[0], channels = shape.size() > 1 ? shape[1] : 1, inner = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) inner *= shape[i];
  const fast::Isa isa = fast::select_isa(force_portable);
  return make_kernel([epilogue = std::move(epilogue), outer, channels, inner, isa](
                         std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    std::vector<const float*> extra;
    for (std::size_t i = 1; i < in.size(); ++i) extra.push_back(in[i]->data<float>());
    fast::epilogue_tensor(epilogue, in[0]->data<float>(), out[0]->data<float>(), extra.data(), outer, channels, inner,
                          isa);
  });
}

}  // namespace qpipe::kernels
