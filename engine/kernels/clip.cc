// Clip: y = min(max(x, lo), hi). Bounds come from inputs 1 and 2 (opset >= 11,
// must be constant) or from the min/max attributes (opset < 11).

#include <limits>

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {
template <typename T>
std::unique_ptr<OpKernel> clip_kernel(T lo, T hi) {
  return make_kernel([lo, hi](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const T* x = in[0]->data<T>();
    T* y = out[0]->data<T>();
    const int64_t n = in[0]->numel();
    // min(max(x, lo), hi): when lo > hi every value becomes hi, as the spec
    // says and ONNX Runtime does. NaN passes through.
    for (int64_t i = 0; i < n; ++i) {
      const T v = x[i] < lo ? lo : x[i];
      y[i] = v > hi ? hi : v;
    }
  });
}

double scalar_bound(const Node& node, std::span<const ValueDesc> in, std::size_t i, double dflt) {
  if (i >= in.size() || node.inputs[i].empty()) return dflt;
  if (!in[i].constant) unsupported(node, fmt::format("bound input '{}' must be a constant", node.inputs[i]));
  if (in[i].constant->numel() != 1) invalid(node, fmt::format("bound input '{}' must be a scalar", node.inputs[i]));
  return to_double(*in[i].constant)[0];
}
}  // namespace

Prepared prepare_clip(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"min", "max"});
  check_arity(node, in, 1, 3);
  check_float(node, in[0], "input");
  double lo = node.attr_float("min", -std::numeric_limits<float>::infinity());
  double hi = node.attr_float("max", std::numeric_limits<float>::infinity());
  lo = scalar_bound(node, in, 1, lo);
  hi = scalar_bound(node, in, 2, hi);
  Prepared p;
  p.outputs = {{in[0].dtype, in[0].shape, nullptr}};
  if (in[0].dtype == DType::kFloat32)
    p.kernel = clip_kernel<float>(static_cast<float>(lo), static_cast<float>(hi));
  else
    p.kernel = clip_kernel<double>(lo, hi);
  return p;
}

}  // namespace qpipe::kernels
