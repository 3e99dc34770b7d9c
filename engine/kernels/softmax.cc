// Softmax: y = exp(x - max) / sum(exp(x - max)) along `axis`.
// Opset >= 13: along one axis (default -1). Opset < 13: the input is coerced to
// 2-D at `axis` (default 1) and normalised over the trailing block.

#include <cmath>

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {
template <typename T>
std::unique_ptr<OpKernel> softmax_kernel(int64_t outer, int64_t extent, int64_t inner) {
  return make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const T* x = in[0]->data<T>();
    T* y = out[0]->data<T>();
    parallel_for_each(outer, [&](int64_t o) {
      for (int64_t i = 0; i < inner; ++i) {
        const T* xs = x + o * extent * inner + i;
        T* ys = y + o * extent * inner + i;
        T m = xs[0];
        for (int64_t k = 1; k < extent; ++k) m = std::max(m, xs[k * inner]);
        T sum = 0;
        for (int64_t k = 0; k < extent; ++k) {
          ys[k * inner] = std::exp(xs[k * inner] - m);
          sum += ys[k * inner];
        }
        for (int64_t k = 0; k < extent; ++k) ys[k * inner] = ys[k * inner] / sum;
      }
    });
  });
}
}  // namespace

Prepared prepare_softmax(const Node& node, std::span<const ValueDesc> in, const PrepareContext& ctx) {
  check_attrs(node, {"axis"});
  check_arity(node, in, 1, 1);
  check_float(node, in[0], "input");
  const Shape& s = in[0].shape;
  const auto r = static_cast<int64_t>(s.size());
  const bool legacy = ctx.opset < 13;
  int64_t axis = node.attr_int("axis", legacy ? 1 : -1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis >= r) invalid(node, fmt::format("axis {} out of range for rank {}", node.attr_int("axis", -1), r));
  int64_t outer = 1, extent = 1, inner = 1;
  for (int64_t i = 0; i < r; ++i) {
    auto d = s[static_cast<std::size_t>(i)];
    if (i < axis) outer *= d;
    else if (i == axis || legacy) extent *= d;
    else inner *= d;
  }
  Prepared p;
  p.outputs = {{in[0].dtype, s, nullptr}};
  p.kernel = in[0].dtype == DType::kFloat32 ? softmax_kernel<float>(outer, extent, inner)
                                            : softmax_kernel<double>(outer, extent, inner);
  return p;
}

}  // namespace qpipe::kernels
