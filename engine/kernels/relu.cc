// Relu: y = max(x, 0).

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {
template <typename T>
std::unique_ptr<OpKernel> relu_kernel() {
  return make_kernel([](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const T* x = in[0]->data<T>();
    T* y = out[0]->data<T>();
    const int64_t n = in[0]->numel();
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : T(0);
  });
}
}  // namespace

Prepared prepare_relu(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {});
  check_arity(node, in, 1, 1);
  check_float(node, in[0], "input");
  Prepared p;
  p.outputs = {{in[0].dtype, in[0].shape, nullptr}};
  p.kernel = in[0].dtype == DType::kFloat32 ? relu_kernel<float>() : relu_kernel<double>();
  return p;
}

}  // namespace qpipe::kernels
