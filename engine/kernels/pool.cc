// AveragePool, MaxPool and GlobalAveragePool over NCHW inputs.
// AveragePool sums in the element type in (kh, kw) order and divides by the
// window count (count_include_pad decides whether padding counts); this is
// the float path ONNX Runtime uses for unfused AveragePool.

#include <algorithm>
#include <limits>

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {

template <typename T, bool kMax>
std::unique_ptr<OpKernel> pool_kernel(Geometry2D g, int64_t channels, bool count_include_pad) {
  return make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const T* x = in[0]->data<T>();
    T* y = out[0]->data<T>();
    const int64_t planes = in[0]->dim(0) * channels;
    // Work items of at least ~16K window reads: ResNet8's 8x8 average pool
    // has 64 reads per plane, and one task per plane would cost more in
    // scheduling than in arithmetic.
    const int64_t per_plane = std::max<int64_t>(1, g.out_h * g.out_w * g.kh * g.kw);
    const int64_t grain = std::max<int64_t>(1, 16384 / per_plane);
    parallel_for_each(planes, [&](int64_t pl) {
      const T* xp = x + pl * g.in_h * g.in_w;
      T* yp = y + pl * g.out_h * g.out_w;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          const int64_t h0 = oh * g.sh - g.pad_top, w0 = ow * g.sw - g.pad_left;
          T acc = kMax ? -std::numeric_limits<T>::infinity() : T(0);
          if (h0 >= 0 && w0 >= 0 && h0 + (g.kh - 1) * g.dh < g.in_h && w0 + (g.kw - 1) * g.dw < g.in_w) {
            // Window entirely inside: the same (i, j) order without the
            // per-element tests (ResNet8's 8x8 average pool).
            for (int64_t i = 0; i < g.kh; ++i) {
              const T* row = xp + (h0 + i * g.dh) * g.in_w + w0;
              for (int64_t j = 0; j < g.kw; ++j) {
                const T v = row[j * g.dw];
                if constexpr (kMax) acc = v > acc ? v : acc;
                else acc += v;
              }
            }
            if constexpr (kMax) yp[oh * g.out_w + ow] = acc;
            else yp[oh * g.out_w + ow] = acc / static_cast<T>(g.kh * g.kw);
            continue;
          }
          int64_t count = 0;
          for (int64_t i = 0; i < g.kh; ++i) {
            const int64_t h = h0 + i * g.dh;
            for (int64_t j = 0; j < g.kw; ++j) {
              const int64_t w = w0 + j * g.dw;
              const bool inside = h >= 0 && h < g.in_h && w >= 0 && w < g.in_w;
              if (!inside) {
                // count_include_pad counts pads, not the part of a ceil_mode
                // window that hangs past the padded input.
                if (!kMax && count_include_pad && h < g.in_h + g.pad_bottom && w < g.in_w + g.pad_right) ++count;
                continue;
              }
              const T v = xp[h * g.in_w + w];
              if constexpr (kMax) acc = v > acc ? v : acc;
              else acc += v;
              ++count;
            }
          }
          if constexpr (kMax) yp[oh * g.out_w + ow] = acc;
          else yp[oh * g.out_w + ow] = count ? acc / static_cast<T>(count) : T(0);
        }
      }
    }, grain);
  });
}

template <bool kMax>
Prepared prepare_pool(const Node& node, std::span<const ValueDesc> in) {
  if (kMax) check_attrs(node, {"kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "dilations", "storage_order"});
  else check_attrs(node, {"kernel_shape", "strides", "pads", "auto_pad", "ceil_mode", "count_include_pad", "dilations"});
  check_arity(node, in, 1, 1);
  check_float(node, in[0], "input");
  if (node.outputs.size() > 1 && !node.outputs[1].empty())
    unsupported(node, "the Indices output of MaxPool is not supported");
  auto k = node.attr_ints("kernel_shape");
  if (k.size() != 2) unsupported(node, "kernel_shape must have 2 entries (2-D pooling only)");
  const Geometry2D g = conv_geometry(node, in[0].shape, k[0], k[1], node.attr_int("ceil_mode", 0) != 0);
  const bool cip = node.attr_int("count_include_pad", 0) != 0;
  Prepared p;
  p.outputs = {{in[0].dtype, {in[0].shape[0], in[0].shape[1], g.out_h, g.out_w}, nullptr}};
  if (in[0].dtype == DType::kFloat32) p.kernel = pool_kernel<float, kMax>(g, in[0].shape[1], cip);
  else p.kernel = pool_kernel<double, kMax>(g, in[0].shape[1], cip);
  return p;
}

}  // namespace

Prepared prepare_average_pool(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  return prepare_pool<false>(node, in);
}

Prepared prepare_max_pool(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  return prepare_pool<true>(node, in);
}

Prepared prepare_global_average_pool(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {});
  check_arity(node, in, 1, 1);
  check_float(node, in[0], "input");
  const Shape& s = in[0].shape;
  if (s.size() < 3) invalid(node, fmt::format("input {} needs rank >= 3", shape_str(s)));
  Shape out = {s[0], s[1]};
  int64_t spatial = 1;
  for (std::size_t i = 2; i < s.size(); ++i) {
    spatial *= s[i];
    out.push_back(1);
  }
  Prepared p;
  p.outputs = {{in[0].dtype, out, nullptr}};
  auto make = [&](auto tag) {
    using T = decltype(tag);
    return make_kernel([spatial](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
      const T* x = in[0]->data<T>();
      T* y = out[0]->data<T>();
      const int64_t planes = in[0]->dim(0) * in[0]->dim(1);
      for (int64_t pl = 0; pl < planes; ++pl) {
        T acc = 0;
        for (int64_t i = 0; i < spatial; ++i) acc += x[pl * spatial + i];
        y[pl] = acc / static_cast<T>(spatial);
      }
    });
  };
  p.kernel = in[0].dtype == DType::kFloat32 ? make(float{}) : make(double{});
  return p;
}

}  // namespace qpipe::kernels
