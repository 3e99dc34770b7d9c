// Conv (2-D, NCHW, group 1) with optional bias, any kernel/stride/dilation/
// padding (auto_pad included).
//
// float32: per image, im2col into a [K = C*kh*kw, P = out_h*out_w] buffer and
// one Eigen GEMM W[M,K] x col[K,P], then the bias. Every image is an
// independent GEMM of identical dimensions, so results do not depend on the
// batch size or on how images are spread over threads.
// float64: the reference seven-loop convolution (engine/kernels/reference).

#include <Eigen/Core>

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::kernels {
namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Fills col[K, P] for one image.
void im2col(const reference::ConvParams& p, const float* x, float* col) {
  const int64_t P = p.out_h * p.out_w;
  for (int64_t c = 0; c < p.c; ++c)
    for (int64_t i = 0; i < p.kh; ++i)
      for (int64_t j = 0; j < p.kw; ++j) {
        float* row = col + ((c * p.kh + i) * p.kw + j) * P;
        const float* xc = x + c * p.h * p.w;
        for (int64_t oh = 0; oh < p.out_h; ++oh) {
          const int64_t h = oh * p.sh - p.pad_top + i * p.dh;
          float* dst = row + oh * p.out_w;
          if (h < 0 || h >= p.h) {
            std::fill(dst, dst + p.out_w, 0.f);
            continue;
          }
          const float* src = xc + h * p.w;
          for (int64_t ow = 0; ow < p.out_w; ++ow) {
            const int64_t w = ow * p.sw - p.pad_left + j * p.dw;
            dst[ow] = (w >= 0 && w < p.w) ? src[w] : 0.f;
          }
        }
      }
}

class ConvF32 final : public OpKernel {
 public:
  ConvF32(reference::ConvParams p, bool has_bias) : p_(p), has_bias_(has_bias) {}
  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override {
    const int64_t K = p_.c * p_.kh * p_.kw, P = p_.out_h * p_.out_w;
    const float* x = in[0]->data<float>();
    const float* w = in[1]->data<float>();
    const float* b = has_bias_ ? in[2]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    const bool pointwise = p_.kh == 1 && p_.kw == 1 && p_.sh == 1 && p_.sw == 1 && p_.pad_top == 0 &&
                           p_.pad_left == 0 && p_.out_h == p_.h && p_.out_w == p_.w;
    Eigen::Map<const RowMajor> W(w, p_.m, K);
    parallel_for_each(p_.n, [&](int64_t n) {
      thread_local std::vector<float> scratch;
      const float* xi = x + n * p_.c * p_.h * p_.w;
      const float* colp = xi;
      if (!pointwise) {
        scratch.resize(static_cast<std::size_t>(K * P));
        im2col(p_, xi, scratch.data());
        colp = scratch.data();
      }
      Eigen::Map<const RowMajor> col(colp, K, P);
      Eigen::Map<RowMajor> Y(y + n * p_.m * P, p_.m, P);
      Y.noalias() = W * col;
      if (b)
        for (int64_t m = 0; m < p_.m; ++m) Y.row(m).array() += b[m];
    });
  }

 private:
  reference::ConvParams p_;
  bool has_bias_;
};

class ConvF64 final : public OpKernel {
 public:
  ConvF64(reference::ConvParams p, bool has_bias) : p_(p), has_bias_(has_bias) {}
  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override {
    const double* b = has_bias_ ? in[2]->data<double>() : nullptr;
    parallel_for_each(p_.n, [&](int64_t n) {
      reference::conv2d(p_, in[0]->data<double>(), in[1]->data<double>(), b, out[0]->data<double>(), n);
    });
  }

 private:
  reference::ConvParams p_;
  bool has_bias_;
};

}  // namespace

Prepared prepare_conv(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  check_arity(node, in, 2, 3);
  check_float(node, in[0], "input X");
  const bool has_bias = in.size() > 2 && !node.inputs[2].empty();
  for (std::size_t i = 1; i < in.size(); ++i)
    if (!node.inputs[i].empty() && in[i].dtype != in[0].dtype)
      unsupported(node, fmt::format("input #{} has type {}, X has {}", i, dtype_name(in[i].dtype), dtype_name(in[0].dtype)));
  if (node.attr_int("group", 1) != 1)
    unsupported(node, fmt::format("group={} (grouped/depthwise convolution) is not supported; only group=1", node.attr_int("group", 1)));
  const Shape& xs = in[0].shape;
  const Shape& ws = in[1].shape;
  if (ws.size() != 4) unsupported(node, fmt::format("weight shape {} is not 2-D convolution [M,C,kh,kw]", shape_str(ws)));
  auto ks = node.attr_ints("kernel_shape", {ws[2], ws[3]});
  if (ks.size() != 2 || ks[0] != ws[2] || ks[1] != ws[3])
    invalid(node, fmt::format("kernel_shape [{}] disagrees with weight shape {}", fmt::join(ks, ","), shape_str(ws)));
  const Geometry2D g = conv_geometry(node, xs, ws[2], ws[3]);
  if (ws[1] != xs[1])
    invalid(node, fmt::format("weight {} expects {} input channels, input {} has {}", shape_str(ws), ws[1], shape_str(xs), xs[1]));
  if (has_bias && (in[2].shape.size() != 1 || in[2].shape[0] != ws[0]))
    invalid(node, fmt::format("bias shape {} does not match {} output channels", shape_str(in[2].shape), ws[0]));
  reference::ConvParams p{xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], g.sh, g.sw, g.dh, g.dw,
                          g.pad_top, g.pad_left, g.out_h, g.out_w};
  Prepared out;
  out.outputs = {{in[0].dtype, {xs[0], ws[0], g.out_h, g.out_w}, nullptr}};
  if (in[0].dtype == DType::kFloat32) out.kernel = std::make_unique<ConvF32>(p, has_bias);
  else out.kernel = std::make_unique<ConvF64>(p, has_bias);
  return out;
}

}  // namespace qpipe::kernels
