#pragma once
// Helpers shared by kernel prepare functions: attribute checking, error
// messages, spatial geometry (pads/strides/auto_pad) and broadcasting.

#include <fmt/format.h>
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <initializer_list>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/kernel.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::kernels {

[[noreturn]] void unsupported(const Node& node, const std::string& why);
[[noreturn]] void invalid(const Node& node, const std::string& why);

// Rejects attributes outside `allowed` (so a model relying on an attribute we
// ignore fails loudly instead of computing something else).
void check_attrs(const Node& node, std::initializer_list<const char*> allowed);
// Input-count check: at least `min`, at most `max`, present (non-empty) ones.
void check_arity(const Node& node, std::span<const ValueDesc> in, std::size_t min, std::size_t max);
void check_float(const Node& node, const ValueDesc& v, const char* what);
bool is_float(DType t);

// Spatial geometry of Conv/Pool for 2-D (NCHW) inputs.
struct Geometry2D {
  int64_t kh = 1, kw = 1;
  int64_t sh = 1, sw = 1;
  int64_t dh = 1, dw = 1;
  int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
  int64_t in_h = 0, in_w = 0, out_h = 0, out_w = 0;
};
Geometry2D conv_geometry(const Node& node, const Shape& x, int64_t kh, int64_t kw, bool ceil_mode = false);

// im2col of one NCHW image for a group-1 convolution: col[K, P] with rows
// k = (c, i, j) and columns the output pixels in row-major order, zeros where
// the tap falls in the padding (engine/kernels/conv.cc). MLAS uses the same
// layout, so the ORT-order kernels share it.
void im2col(const reference::ConvParams& p, const float* x, float* col);

// Numpy broadcasting: the output shape, or an error naming both shapes.
Shape broadcast_shapes(const Node& node, const Shape& a, const Shape& b);
// Strides of `s` when broadcast to `out` (0 on broadcast axes), left-padded.
std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out);

// Parallel loop over [0, n) with a fixed grain; each index is independent.
template <typename F>
void parallel_for_each(int64_t n, F&& f, int64_t grain = 1) {
  if (n <= 0) return;
  if (n == 1) {
    f(int64_t{0});
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain), [&](const tbb::blocked_range<int64_t>& r) {
    for (int64_t i = r.begin(); i != r.end(); ++i) f(i);
  });
}

// An OpKernel built from a lambda.
template <typename F>
class LambdaKernel final : public OpKernel {
 public:
  explicit LambdaKernel(F f) : f_(std::move(f)) {}
  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override { f_(in, out); }

 private:
  F f_;
};
template <typename F>
std::unique_ptr<OpKernel> make_kernel(F f) {
  return std::make_unique<LambdaKernel<F>>(std::move(f));
}

}  // namespace qpipe::kernels
