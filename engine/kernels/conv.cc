// Conv (2-D, NCHW, group 1) with optional bias, any kernel/stride/dilation/
// padding (auto_pad included).
//
// float32, three paths chosen at run time (fast/cpu.h, select_isa):
//  - AVX-512F: the direct convolution on column-shifted planes
//    (fast/conv_direct.h WideConv, 8x48 or 4x64 register tiles), any shape;
//  - AVX2+FMA: the direct convolution of fast/conv_direct.h (phase planes,
//    4x24 register-tiled FMA microkernel, no im2col), for out_w % 8 == 0;
//  - portable (any x86-64, or forced): per image, im2col into a
//    [K = C*kh*kw, P = out_h*out_w] buffer and one Eigen GEMM W[M,K] x
//    col[K,P].
// Both add the bias and run an optional fused epilogue (Mul/Add/Relu/QDQ/
// residual Add, see fast/epilogue.h) on the result. Each output element is
// summed in an order fixed by the path alone, never by the batch size or the
// thread partition, so results are bit-identical for any of them.
// float64: the reference seven-loop convolution (engine/kernels/reference).

#include <Eigen/Core>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstdlib>
#include <memory>

#include "engine/kernels/common.h"
#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/fast/fused.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::kernels {

// Fills col[K, P] for one image (declared in common.h).
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
          // Columns ow in [lo, hi) read inside the row (w = ow*sw + w0): zeros,
          // a (contiguous when sw == 1) run, zeros.
          const float* src = xc + h * p.w;
          const int64_t w0 = j * p.dw - p.pad_left;
          int64_t lo = w0 >= 0 ? 0 : (-w0 + p.sw - 1) / p.sw;
          int64_t hi = w0 >= p.w ? 0 : (p.w - w0 + p.sw - 1) / p.sw;
          lo = std::min(lo, p.out_w);
          hi = std::clamp(hi, lo, p.out_w);
          std::fill(dst, dst + lo, 0.f);
          if (p.sw == 1) {
            std::copy(src + lo + w0, src + hi + w0, dst + lo);
          } else {
            for (int64_t ow = lo; ow < hi; ++ow) dst[ow] = src[ow * p.sw + w0];
          }
          std::fill(dst + hi, dst + p.out_w, 0.f);
        }
      }
}

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A per-thread, 64-byte aligned scratch buffer that only grows (plane rows
// then start on cache lines, and the AVX-512 loads of 16-pixel vectors are
// aligned whenever out_w is a multiple of 16).
float* thread_scratch(int64_t floats) {
  struct Buffer {
    std::unique_ptr<float, decltype(&std::free)> p{nullptr, &std::free};
    int64_t size = 0;
  };
  thread_local Buffer buf;
  if (buf.size < floats) {
    const std::size_t bytes = (static_cast<std::size_t>(floats) * sizeof(float) + 63) / 64 * 64;
    buf.p.reset(static_cast<float*>(std::aligned_alloc(64, bytes)));
    if (!buf.p) throw std::bad_alloc();
    buf.size = floats;
  }
  return buf.p.get();
}

// Asks for [p, p + bytes) to be brought into L2. With a large batch every
// activation tensor lives in L3 or DRAM between layers; fetching the next
// image's input, residual inputs and output lines while this image computes
// hides that latency (the plane builder otherwise stalls on each row).
void prefetch_l2(const void* p, int64_t bytes, bool for_write) {
  const char* c = static_cast<const char*>(p);
  for (int64_t b = 0; b < bytes; b += 64) {
    if (for_write) __builtin_prefetch(c + b, 1, 2);
    else __builtin_prefetch(c + b, 0, 2);
  }
}

// Pieces each image's pixel tiles are split into: enough work items for the
// threads of the current arena when the batch is smaller than that, else 1
// (every piece rebuilds the image's planes, so more pieces cost time).
int64_t chunks_per_image(int64_t n, int64_t tiles) {
  const int64_t threads = tbb::this_task_arena::max_concurrency();
  if (threads <= 1 || n >= threads) return 1;
  return std::clamp<int64_t>((threads + n - 1) / n, 1, tiles);
}

// float32 Conv with an optional fused epilogue (fast/epilogue.h). Inputs:
// x, w, bias (may be null), then the epilogue's extra tensors.
class ConvF32 final : public OpKernel {
 public:
  ConvF32(reference::ConvParams p, fast::Epilogue ep, bool bias_in_epilogue, const Tensor* const_w, fast::Isa isa)
      : p_(p), ep_(std::move(ep)), bias_in_epilogue_(bias_in_epilogue) {
    fast::ConvGeometry g{p.c, p.h, p.w, p.m, p.kh, p.kw, p.sh, p.sw, p.dh, p.dw, p.pad_top, p.pad_left, p.out_h, p.out_w};
    const float* w = const_w ? const_w->data<float>() : nullptr;
    packed_ = w != nullptr;
    if (isa == fast::Isa::kAvx512 && p.out_h > 0 && p.out_w > 0) {
      wide_ = fast::make_wide_conv(g, w);
      avx512_ = true;
    } else if (isa >= fast::Isa::kAvx2 && fast::direct_conv_applicable(g)) {
      direct_ = fast::make_direct_conv(g, w);
      avx2_ = true;
    }
  }

  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override {
    const float* x = in[0]->data<float>();
    const float* w = in[1]->data<float>();
    const float* b = in.size() > 2 && in[2] ? in[2]->data<float>() : nullptr;
    float* y = out[0]->data<float>();
    // The epilogue with the bias in front (when the bias is not a constant, it
    // is copied in here; constant biases were baked in at prepare).
    const fast::Epilogue* ep = &ep_;
    fast::Epilogue with_bias;
    if (b && !bias_in_epilogue_) {
      with_bias = ep_;
      with_bias.bias.assign(b, b + p_.m);
      ep = &with_bias;
    }
    std::vector<const float*> extra;
    for (std::size_t i = 3; i < in.size(); ++i) extra.push_back(in[i]->data<float>());
    if (avx512_) {
      const fast::WideConv* wc = &wide_;
      fast::WideConv repacked;
      if (!packed_) {
        repacked = wide_;
        fast::pack_wide_weights(repacked, w);
        wc = &repacked;
      }
      eval_wide(*wc, x, y, *ep, extra);
    } else if (avx2_) {
      const fast::DirectConv* dc = &direct_;
      fast::DirectConv repacked;
      if (!packed_) {
        repacked = direct_;
        fast::pack_direct_weights(repacked, w);
        dc = &repacked;
      }
      eval_direct(*dc, x, y, *ep, extra);
    } else {
      eval_portable(x, w, y, *ep, extra);
    }
  }

 private:
  void eval_direct(const fast::DirectConv& dc, const float* x, float* y, const fast::Epilogue& ep,
                   const std::vector<const float*>& extra) const {
    const int64_t P = p_.out_h * p_.out_w, xs = p_.c * p_.h * p_.w, ys = p_.m * P;
    // Small batches are also split along the output pixels so every thread
    // works; each piece computes whole output elements (no K split), so the
    // partition never changes a bit.
    const int64_t tiles = (dc.groups + 2) / 3;
    const int64_t chunks = chunks_per_image(p_.n, tiles);
    parallel_for_each(p_.n * chunks, [&](int64_t item) {
      const int64_t n = item / chunks, ch = item % chunks;
      if (chunks == 1 && n + 1 < p_.n) prefetch_next(x, y, extra, n + 1, xs, ys);
      float* planes = thread_scratch(dc.image_floats);
      fast::build_phase_planes(dc, x + n * xs, planes);
      const float* ex[16];
      for (std::size_t e = 0; e < extra.size() && e < 16; ++e) ex[e] = extra[e] + n * ys;
      const int64_t t0 = tiles * ch / chunks, t1 = tiles * (ch + 1) / chunks;
      fast::direct_conv_avx2(dc, planes, y + n * ys, ep, ex, t0 * 3, std::min(t1 * 3, dc.groups));
    });
  }

  // Prefetches image n's input, extra tensors and output (see prefetch_l2).
  static void prefetch_next(const float* x, const float* y, const std::vector<const float*>& extra, int64_t n,
                            int64_t xs, int64_t ys) {
    prefetch_l2(x + n * xs, xs * 4, false);
    for (const float* e : extra) prefetch_l2(e + n * ys, ys * 4, false);
    prefetch_l2(y + n * ys, ys * 4, true);
  }

  void eval_wide(const fast::WideConv& wc, const float* x, float* y, const fast::Epilogue& ep,
                 const std::vector<const float*>& extra) const {
    const int64_t xs = p_.c * p_.h * p_.w, ys = p_.m * wc.P;
    // As eval_direct: images x pieces of whole tiles, so a batch of one
    // still uses every thread and no partition changes a bit.
    const int64_t tiles = (wc.vectors + wc.nv - 1) / wc.nv;
    const int64_t chunks = chunks_per_image(p_.n, tiles);
    parallel_for_each(p_.n * chunks, [&](int64_t item) {
      const int64_t n = item / chunks, ch = item % chunks;
      // The next image's input, residual inputs and output, fetched while
      // this one computes.
      fast::PrefetchRanges pf;
      if (chunks == 1 && n + 1 < p_.n) {
        pf.add(x + (n + 1) * xs, xs * 4);
        for (const float* e : extra) pf.add(e + (n + 1) * ys, ys * 4);
        pf.add(y + (n + 1) * ys, ys * 4);
      }
      float* planes = thread_scratch(wc.image_floats);
      fast::build_wide_planes_avx512(wc, x + n * xs, planes);
      const float* ex[16];
      for (std::size_t e = 0; e < extra.size() && e < 16; ++e) ex[e] = extra[e] + n * ys;
      const int64_t t0 = tiles * ch / chunks, t1 = tiles * (ch + 1) / chunks;
      fast::direct_conv_avx512(wc, planes, y + n * ys, ep, ex, t0 * wc.nv, std::min(t1 * wc.nv, wc.vectors), &pf);
    });
  }

  void eval_portable(const float* x, const float* w, float* y, const fast::Epilogue& ep,
                     const std::vector<const float*>& extra) const {
    const int64_t K = p_.c * p_.kh * p_.kw, P = p_.out_h * p_.out_w;
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
      float* yi = y + n * p_.m * P;
      Eigen::Map<RowMajor> Y(yi, p_.m, P);
      Y.noalias() = W * col;
      if (!ep.empty()) {
        const float* ex[16];
        for (int64_t m = 0; m < p_.m; ++m) {
          for (std::size_t e = 0; e < extra.size() && e < 16; ++e) ex[e] = extra[e] + (n * p_.m + m) * P;
          fast::epilogue_row_scalar(ep, m, yi + m * P, yi + m * P, ex, P);
        }
      }
    });
  }

  reference::ConvParams p_;
  fast::Epilogue ep_;
  bool bias_in_epilogue_;
  bool avx512_ = false, avx2_ = false;
  bool packed_ = false;
  fast::DirectConv direct_;
  fast::WideConv wide_;
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

namespace {

reference::ConvParams conv_params(const Node& node, std::span<const ValueDesc> in) {
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
  return {xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], g.sh, g.sw, g.dh, g.dw, g.pad_top, g.pad_left, g.out_h, g.out_w};
}

}  // namespace

Prepared prepare_conv_fused(const Node& node, std::span<const ValueDesc> in, const PrepareContext&,
                            fast::Epilogue epilogue, bool force_portable) {
  const reference::ConvParams p = conv_params(node, in);
  const bool has_bias = in.size() > 2 && !node.inputs[2].empty();
  Prepared out;
  out.outputs = {{in[0].dtype, {p.n, p.m, p.out_h, p.out_w}, nullptr}};
  if (in[0].dtype == DType::kFloat32) {
    bool bias_in_epilogue = false;
    if (has_bias && in[2].constant) {
      const float* b = in[2].constant->data<float>();
      epilogue.bias.assign(b, b + p.m);
      bias_in_epilogue = true;
    }
    out.kernel = std::make_unique<ConvF32>(p, std::move(epilogue), bias_in_epilogue, in[1].constant,
                                           fast::select_isa(force_portable));
  } else {
    if (!epilogue.ops.empty()) unsupported(node, "fused epilogues are float32 only");
    out.kernel = std::make_unique<ConvF64>(p, has_bias);
  }
  return out;
}

Prepared prepare_conv(const Node& node, std::span<const ValueDesc> in, const PrepareContext& ctx) {
  return prepare_conv_fused(node, in, ctx, {}, false);
}

}  // namespace qpipe::kernels
