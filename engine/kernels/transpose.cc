// Transpose with an arbitrary permutation (default: reverse the axes). Works
// on any dtype by moving elements of its size.

#include <numeric>

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {

template <typename T>
void transpose_rows(const T* x, T* y, const Shape& out_shape, const std::vector<int64_t>& src_strides, int64_t o) {
  // Output axis 0 fixed at o; iterate the remaining output axes in order.
  const std::size_t r = out_shape.size();
  int64_t rest = 1;
  for (std::size_t i = 1; i < r; ++i) rest *= out_shape[i];
  T* dst = y + o * rest;
  const int64_t base = o * src_strides[0];
  std::vector<int64_t> idx(r, 0);
  const int64_t inner = r > 1 ? out_shape[r - 1] : 1;
  const int64_t inner_stride = r > 1 ? src_strides[r - 1] : 0;
  for (int64_t k = 0; k < rest; k += inner) {
    int64_t off = base;
    for (std::size_t ax = 1; ax + 1 < r; ++ax) off += idx[ax] * src_strides[ax];
    for (int64_t j = 0; j < inner; ++j) dst[k + j] = x[off + j * inner_stride];
    for (std::size_t ax = r - 1; ax-- > 1;) {  // increment multi-index over axes 1..r-2
      if (++idx[ax] < out_shape[ax]) break;
      idx[ax] = 0;
    }
  }
}

template <typename T>
std::unique_ptr<OpKernel> transpose_kernel(Shape out_shape, std::vector<int64_t> src_strides) {
  return make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const T* x = static_cast<const T*>(in[0]->raw());
    T* y = static_cast<T*>(out[0]->raw());
    if (out_shape.empty()) {
      y[0] = x[0];
      return;
    }
    parallel_for_each(out_shape[0], [&](int64_t o) { transpose_rows(x, y, out_shape, src_strides, o); });
  });
}

}  // namespace

Prepared prepare_transpose(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"perm"});
  check_arity(node, in, 1, 1);
  const Shape& xs = in[0].shape;
  const std::size_t r = xs.size();
  std::vector<int64_t> perm(r);
  std::iota(perm.rbegin(), perm.rend(), 0);
  if (node.has_attr("perm")) perm = node.attr_ints("perm");
  if (perm.size() != r) invalid(node, fmt::format("perm has {} entries for an input of rank {}", perm.size(), r));
  std::vector<bool> seen(r, false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(r) || seen[static_cast<std::size_t>(p)])
      invalid(node, fmt::format("perm [{}] is not a permutation of 0..{}", fmt::join(perm, ","), r - 1));
    seen[static_cast<std::size_t>(p)] = true;
  }
  std::vector<int64_t> in_strides(r, 1);
  for (std::size_t i = r; i-- > 1;) in_strides[i - 1] = in_strides[i] * xs[i];
  Shape out_shape(r);
  std::vector<int64_t> src_strides(r);
  for (std::size_t i = 0; i < r; ++i) {
    out_shape[i] = xs[static_cast<std::size_t>(perm[i])];
    src_strides[i] = in_strides[static_cast<std::size_t>(perm[i])];
  }
  Prepared p;
  p.outputs = {{in[0].dtype, out_shape, nullptr}};
  switch (dtype_size(in[0].dtype)) {
    case 1: p.kernel = transpose_kernel<uint8_t>(out_shape, src_strides); break;
    case 4: p.kernel = transpose_kernel<uint32_t>(out_shape, src_strides); break;
    case 8: p.kernel = transpose_kernel<uint64_t>(out_shape, src_strides); break;
    default: unsupported(node, "unsupported element size");
  }
  return p;
}

}  // namespace qpipe::kernels
