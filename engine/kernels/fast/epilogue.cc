#include "engine/kernels/fast/epilogue.h"

#include <cmath>

#include "engine/kernels/common.h"
#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/fast/fused.h"

namespace qpipe::fast {

void epilogue_row_scalar(const Epilogue& e, int64_t c, const float* x, float* y, const float* const* extra,
                         int64_t len) {
  const std::size_t ci = static_cast<std::size_t>(c);
  const bool has_bias = !e.bias.empty();
  const float bias = has_bias ? e.bias[ci] : 0.f;
  for (int64_t i = 0; i < len; ++i) {
    float v = x[i];
    if (has_bias) v = v + bias;
    for (const EpilogueOp& op : e.ops) {
      switch (op.kind) {
        case EpilogueOp::Kind::kAddConst: v = v + op.a[ci]; break;
        case EpilogueOp::Kind::kMulConst: v = v * op.a[ci]; break;
        case EpilogueOp::Kind::kRelu: v = v > 0.f ? v : 0.f; break;
        case EpilogueOp::Kind::kAddTensor: v = v + extra[op.extra][i]; break;
        case EpilogueOp::Kind::kQdq: {
          const float s = op.a[ci], z = op.z[ci];
          const float q = std::nearbyint(v / s);
          float t = q + z;  // exact while |q| < 2^24; beyond, the clamp saturates either way
          if (std::isnan(t)) t = 0.f;
          t = t < op.lo ? op.lo : (t > op.hi ? op.hi : t);
          v = (t - z) * s;
          break;
        }
      }
    }
    y[i] = v;
  }
}

void epilogue_tensor(const Epilogue& e, const float* x, float* y, const float* const* extra, int64_t outer,
                     int64_t channels, int64_t inner, bool portable) {
  const bool avx2 = !portable;
  kernels::parallel_for_each(outer, [&](int64_t o) {
    std::vector<const float*> ex(static_cast<std::size_t>(e.num_extra));
    for (int64_t c = 0; c < channels; ++c) {
      const int64_t off = (o * channels + c) * inner;
      for (int k = 0; k < e.num_extra; ++k) ex[static_cast<std::size_t>(k)] = extra[k] + off;
      if (avx2) epilogue_row_avx2(e, c, x + off, y + off, ex.data(), inner);
      else epilogue_row_scalar(e, c, x + off, y + off, ex.data(), inner);
    }
  });
}

}  // namespace qpipe::fast

namespace qpipe::kernels {

std::unique_ptr<OpKernel> make_epilogue_kernel(fast::Epilogue epilogue, const Shape& shape, bool force_portable) {
  int64_t outer = shape.empty() ? 1 : shape[0], channels = shape.size() > 1 ? shape[1] : 1, inner = 1;
  for (std::size_t i = 2; i < shape.size(); ++i) inner *= shape[i];
  const bool portable = !fast::use_avx2(force_portable);
  return make_kernel([epilogue = std::move(epilogue), outer, channels, inner, portable](
                         std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    std::vector<const float*> extra;
    for (std::size_t i = 1; i < in.size(); ++i) extra.push_back(in[i]->data<float>());
    fast::epilogue_tensor(epilogue, in[0]->data<float>(), out[0]->data<float>(), extra.data(), outer, channels, inner,
                          portable);
  });
}

}  // namespace qpipe::kernels
