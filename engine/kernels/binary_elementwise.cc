// Add, Sub, Mul, Div (float32/float64) with numpy broadcasting.

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference/binary.h"

namespace qpipe::kernels {
namespace {

template <typename T, typename F>
std::unique_ptr<OpKernel> binary_kernel(Shape out_shape, Shape a_shape, Shape b_shape, F f) {
  auto sa = broadcast_strides(a_shape, out_shape);
  auto sb = broadcast_strides(b_shape, out_shape);
  if (out_shape.empty()) {
    out_shape = {1};
    sa = {0};
    sb = {0};
  }
  return make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const T* a = in[0]->data<T>();
    const T* b = in[1]->data<T>();
    T* o = out[0]->data<T>();
    const int64_t outer = out_shape[0];
    const bool split = out_shape.size() > 1;
    if (split) {
      parallel_for_each(outer, [&](int64_t i) { reference::broadcast_binary(a, b, o, out_shape, sa, sb, i, i + 1, f); });
    } else {
      reference::broadcast_binary(a, b, o, out_shape, sa, sb, 0, outer, f);
    }
  });
}

template <typename Op>
Prepared prepare_binary(const Node& node, std::span<const ValueDesc> in, Op op) {
  check_attrs(node, {});
  check_arity(node, in, 2, 2);
  check_float(node, in[0], "input A");
  if (in[0].dtype != in[1].dtype)
    unsupported(node, fmt::format("inputs have types {} and {}; both must match", dtype_name(in[0].dtype), dtype_name(in[1].dtype)));
  Shape out = broadcast_shapes(node, in[0].shape, in[1].shape);
  Prepared p;
  p.outputs = {{in[0].dtype, out, nullptr}};
  if (in[0].dtype == DType::kFloat32)
    p.kernel = binary_kernel<float>(out, in[0].shape, in[1].shape, [op](float x, float y) { return op(x, y); });
  else
    p.kernel = binary_kernel<double>(out, in[0].shape, in[1].shape, [op](double x, double y) { return op(x, y); });
  return p;
}

}  // namespace

Prepared prepare_add(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  return prepare_binary(node, in, [](auto x, auto y) { return x + y; });
}
Prepared prepare_sub(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  return prepare_binary(node, in, [](auto x, auto y) { return x - y; });
}
Prepared prepare_mul(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  return prepare_binary(node, in, [](auto x, auto y) { return x * y; });
}
Prepared prepare_div(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  return prepare_binary(node, in, [](auto x, auto y) { return x / y; });
}

}  // namespace qpipe::kernels
