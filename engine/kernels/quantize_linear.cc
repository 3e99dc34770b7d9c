// QuantizeLinear and DequantizeLinear, per-tensor and per-axis, to/from
// int8, uint8 and int32, exactly as the ONNX spec defines them (see
// engine/kernels/reference/quantize_linear.h). Scale and zero point must be
// constants (they always are in QDQ models); prepare validates them: scale
// positive and finite, zero point within the quantized type, matching sizes.

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"
#include "engine/kernels/reference/quantize_linear.h"

namespace qpipe::kernels {
namespace {

struct AxisParams {
  std::vector<double> scale;     // one per channel (1 for per-tensor)
  std::vector<int32_t> zero_point;
  int64_t outer = 1, channels = 1, inner = 1;  // x viewed as [outer, channels, inner]
};

AxisParams axis_params(const Node& node, std::span<const ValueDesc> in, const Shape& xs, DType qtype) {
  AxisParams ap;
  if (!in[1].constant) unsupported(node, fmt::format("scale '{}' must be a constant", node.inputs[1]));
  const bool has_zp = in.size() > 2 && !node.inputs[2].empty();
  if (has_zp && !in[2].constant) unsupported(node, fmt::format("zero point '{}' must be a constant", node.inputs[2]));
  ap.scale = to_double(*in[1].constant);
  const int64_t n = static_cast<int64_t>(ap.scale.size());
  if (has_zp) {
    if (in[2].constant->numel() != n)
      invalid(node, fmt::format("scale has {} values, zero point {}", n, in[2].constant->numel()));
    for (double v : to_double(*in[2].constant)) ap.zero_point.push_back(static_cast<int32_t>(v));
  } else {
    ap.zero_point.assign(static_cast<std::size_t>(n), 0);
  }
  for (std::size_t i = 0; i < ap.scale.size(); ++i)
    if (!(ap.scale[i] > 0) || !std::isfinite(ap.scale[i]))
      invalid(node, fmt::format("scale[{}] = {} is not a positive finite number", i, ap.scale[i]));
  double lo = 0, hi = 0;
  switch (qtype) {
    case DType::kInt8: lo = -128; hi = 127; break;
    case DType::kUInt8: lo = 0; hi = 255; break;
    case DType::kInt32: lo = -2147483648.0; hi = 2147483647.0; break;
    default: unsupported(node, fmt::format("quantized type {} is not int8, uint8 or int32", dtype_name(qtype)));
  }
  for (std::size_t i = 0; i < ap.zero_point.size(); ++i)
    if (ap.zero_point[i] < lo || ap.zero_point[i] > hi)
      invalid(node, fmt::format("zero point[{}] = {} is outside the {} range", i, ap.zero_point[i], dtype_name(qtype)));
  if (in[1].constant->rank() > 1) unsupported(node, "blocked quantization (scale of rank > 1) is not supported");
  // A 1-D scale of more than one value is per-axis; a scalar or a single value is per-tensor.
  if (in[1].constant->rank() == 1 && n != 1) {
    int64_t axis = node.attr_int("axis", 1);
    const auto r = static_cast<int64_t>(xs.size());
    if (axis < 0) axis += r;
    if (axis < 0 || axis >= r) invalid(node, fmt::format("axis {} out of range for input {}", node.attr_int("axis", 1), shape_str(xs)));
    if (xs[static_cast<std::size_t>(axis)] != n)
      invalid(node, fmt::format("per-axis scale has {} values but input {} has {} along axis {}", n, shape_str(xs),
                                xs[static_cast<std::size_t>(axis)], axis));
    for (int64_t i = 0; i < r; ++i) {
      const int64_t d = xs[static_cast<std::size_t>(i)];
      if (i < axis) ap.outer *= d;
      else if (i > axis) ap.inner *= d;
    }
    ap.channels = n;
  } else {
    ap.inner = shape_numel(xs);
  }
  return ap;
}

template <typename F, typename Q>
std::unique_ptr<OpKernel> quantize_kernel(AxisParams ap) {
  std::vector<F> scale(ap.scale.begin(), ap.scale.end());
  return make_kernel([ap, scale](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const F* x = in[0]->data<F>();
    Q* y = static_cast<Q*>(out[0]->raw());
    parallel_for_each(ap.outer, [&](int64_t o) {
      for (int64_t c = 0; c < ap.channels; ++c) {
        const int64_t base = (o * ap.channels + c) * ap.inner;
        const F s = scale[static_cast<std::size_t>(c)];
        const int32_t zp = ap.zero_point[static_cast<std::size_t>(c)];
        for (int64_t i = 0; i < ap.inner; ++i) y[base + i] = reference::quantize_value<Q, F>(x[base + i], s, zp);
      }
    });
  });
}

template <typename F, typename Q>
std::unique_ptr<OpKernel> dequantize_kernel(AxisParams ap) {
  std::vector<F> scale(ap.scale.begin(), ap.scale.end());
  return make_kernel([ap, scale](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    const Q* x = static_cast<const Q*>(in[0]->raw());
    F* y = out[0]->data<F>();
    parallel_for_each(ap.outer, [&](int64_t o) {
      for (int64_t c = 0; c < ap.channels; ++c) {
        const int64_t base = (o * ap.channels + c) * ap.inner;
        const F s = scale[static_cast<std::size_t>(c)];
        const int32_t zp = ap.zero_point[static_cast<std::size_t>(c)];
        for (int64_t i = 0; i < ap.inner; ++i) y[base + i] = reference::dequantize_value<Q, F>(x[base + i], s, zp);
      }
    });
  });
}

template <typename F>
std::unique_ptr<OpKernel> quantize_for(DType q, const AxisParams& ap) {
  switch (q) {
    case DType::kInt8: return quantize_kernel<F, int8_t>(ap);
    case DType::kUInt8: return quantize_kernel<F, uint8_t>(ap);
    default: return quantize_kernel<F, int32_t>(ap);
  }
}

template <typename F>
std::unique_ptr<OpKernel> dequantize_for(DType q, const AxisParams& ap) {
  switch (q) {
    case DType::kInt8: return dequantize_kernel<F, int8_t>(ap);
    case DType::kUInt8: return dequantize_kernel<F, uint8_t>(ap);
    default: return dequantize_kernel<F, int32_t>(ap);
  }
}

}  // namespace

Prepared prepare_quantize_linear(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"axis", "saturate"});
  check_arity(node, in, 2, 3);
  check_float(node, in[0], "input x");
  const bool has_zp = in.size() > 2 && !node.inputs[2].empty();
  const DType q = has_zp ? in[2].dtype : DType::kUInt8;
  if (!is_float(in[1].dtype)) invalid(node, "scale must be float");
  AxisParams ap = axis_params(node, in, in[0].shape, q);
  Prepared p;
  p.outputs = {{q, in[0].shape, nullptr}};
  p.kernel = in[0].dtype == DType::kFloat32 ? quantize_for<float>(q, ap) : quantize_for<double>(q, ap);
  return p;
}

Prepared prepare_dequantize_linear(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"axis"});
  check_arity(node, in, 2, 3);
  const DType q = in[0].dtype;
  if (!is_float(in[1].dtype)) invalid(node, "scale must be float");
  const bool has_zp = in.size() > 2 && !node.inputs[2].empty();
  if (has_zp && in[2].dtype != q)
    invalid(node, fmt::format("zero point type {} differs from input type {}", dtype_name(in[2].dtype), dtype_name(q)));
  AxisParams ap = axis_params(node, in, in[0].shape, q);
  Prepared p;
  const DType f = in[1].dtype;  // float32 normally; float64 under float64 evaluation
  p.outputs = {{f, in[0].shape, nullptr}};
  p.kernel = f == DType::kFloat32 ? dequantize_for<float>(q, ap) : dequantize_for<double>(q, ap);
  return p;
}

}  // namespace qpipe::kernels
