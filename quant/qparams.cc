#include "quant/qparams.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "engine/error.h"

namespace qpipe {

namespace {

constexpr int32_t kInt32Min = std::numeric_limits<int32_t>::min();
constexpr int32_t kInt32Max = std::numeric_limits<int32_t>::max();

template <typename T>
constexpr QType qtype_of() {
  if constexpr (std::is_same_v<T, int8_t>) return QType::kInt8;
  else if constexpr (std::is_same_v<T, uint8_t>) return QType::kUInt8;
  else {
    static_assert(std::is_same_v<T, int32_t>, "codes are int8_t, uint8_t or int32_t");
    return QType::kInt32;
  }
}

template <typename T>
void check_type(const QuantParams& p, const char* fn) {
  if (p.type != qtype_of<T>())
    fail(ErrorKind::kRuntime, "{}: quantization parameters are for {} but the code buffer is {}", fn,
         qtype_name(p.type), qtype_name(qtype_of<T>()));
}

void check_sizes(std::size_t a, std::size_t b, const char* fn) {
  if (a != b) fail(ErrorKind::kRuntime, "{}: input has {} values but output has room for {}", fn, a, b);
}

// 1.5 · 2^23: adding and subtracting it rounds a float with |v| ≤ 2^22 to an
// integer, ties to even, under the default rounding mode (FE_TONEAREST).
constexpr float kRoundMagic = 12582912.0f;

// QuantizeLinear for 8-bit codes. Clamping before rounding is equivalent to
// clamping after because the bounds are integers and rounding is monotone;
// it keeps |v| small enough for the magic-number rounding. NaN fails both
// comparisons of the first select and becomes lo (→ qmin).
template <typename T>
void quantize_8bit(const float* x, std::size_t n, float scale, int32_t zp, int32_t qmin, int32_t qmax,
                   T* out) {
  const float lo = static_cast<float>(qmin - zp);
  const float hi = static_cast<float>(qmax - zp);
  for (std::size_t i = 0; i < n; ++i) {
    float v = x[i] / scale;
    v = v >= lo ? v : lo;
    v = v <= hi ? v : hi;
    v = (v + kRoundMagic) - kRoundMagic;
    out[i] = static_cast<T>(static_cast<int32_t>(v) + zp);
  }
}

// int32 codes: float64 division and rounding, as ORT's bias quantization.
int32_t quantize_int32(float x, float scale, int32_t zp, int32_t qmin, int32_t qmax, int64_t* saturated) {
  double v = std::nearbyint(static_cast<double>(x) / static_cast<double>(scale)) + zp;
  if (!(v >= qmin)) {  // also NaN
    if (saturated && !std::isnan(v)) ++*saturated;
    return qmin;
  }
  if (v > qmax) {
    if (saturated) ++*saturated;
    return qmax;
  }
  return static_cast<int32_t>(v);
}

template <typename T>
void quantize_run(const float* x, std::size_t n, const QuantParams& p, T* out) {
  if constexpr (std::is_same_v<T, int32_t>) {
    for (std::size_t i = 0; i < n; ++i)
      out[i] = quantize_int32(x[i], p.scale, p.zero_point, p.qmin, p.qmax, nullptr);
  } else {
    quantize_8bit<T>(x, n, p.scale, p.zero_point, p.qmin, p.qmax, out);
  }
}

template <typename T>
void dequantize_run(const T* q, std::size_t n, const QuantParams& p, float* out) {
  const float scale = p.scale;
  if constexpr (std::is_same_v<T, int32_t>) {
    const int64_t zp = p.zero_point;
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int64_t>(q[i]) - zp) * scale;
  } else {
    const int32_t zp = p.zero_point;
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<float>(static_cast<int32_t>(q[i]) - zp) * scale;
  }
}

// Splits a row-major shape around `axis`: outer · channels · inner.
struct AxisSplit {
  int64_t outer = 1, channels = 1, inner = 1;
  int axis = 0;
};

AxisSplit split_axis(const Shape& shape, int axis, const char* fn) {
  const int rank = static_cast<int>(shape.size());
  int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    fail(ErrorKind::kRuntime, "{}: axis {} is out of range for a tensor of shape {} (rank {})", fn, axis,
         shape_str(shape), rank);
  AxisSplit s;
  s.axis = a;
  for (int i = 0; i < a; ++i) s.outer *= shape[i];
  s.channels = shape[a];
  for (int i = a + 1; i < rank; ++i) s.inner *= shape[i];
  return s;
}

std::string axis_where(const char* fn, std::size_t c) { return fmt::format("{} (channel {})", fn, c); }

}  // namespace

// ---- Types ---------------------------------------------------------------------

const char* qtype_name(QType t) {
  switch (t) {
    case QType::kInt8: return "int8";
    case QType::kUInt8: return "uint8";
    case QType::kInt32: return "int32";
  }
  return "?";
}

DType qtype_dtype(QType t) {
  switch (t) {
    case QType::kInt8: return DType::kInt8;
    case QType::kUInt8: return DType::kUInt8;
    case QType::kInt32: return DType::kInt32;
  }
  return DType::kInt8;
}

QType qtype_from_dtype(DType t) {
  switch (t) {
    case DType::kInt8: return QType::kInt8;
    case DType::kUInt8: return QType::kUInt8;
    case DType::kInt32: return QType::kInt32;
    default: break;
  }
  fail(ErrorKind::kUnsupported, "quantized tensors must be int8, uint8 or int32, got {}", dtype_name(t));
}

QType parse_qtype(std::string_view name) {
  if (name == "int8") return QType::kInt8;
  if (name == "uint8") return QType::kUInt8;
  if (name == "int32") return QType::kInt32;
  fail(ErrorKind::kSpec, "unknown quantized type '{}': expected one of int8, uint8, int32", name);
}

QRange storage_range(QType t) {
  switch (t) {
    case QType::kInt8: return {-128, 127};
    case QType::kUInt8: return {0, 255};
    case QType::kInt32: return {kInt32Min, kInt32Max};
  }
  return {-128, 127};
}

QRange qrange(QType t, bool reduce_range, bool symmetric) {
  switch (t) {
    case QType::kInt8:
      if (reduce_range) return {-64, 64};
      return symmetric ? QRange{-127, 127} : QRange{-128, 127};
    case QType::kUInt8:
      if (reduce_range) return {0, 127};
      return symmetric ? QRange{0, 254} : QRange{0, 255};
    case QType::kInt32:
      if (reduce_range) return {-(1 << 30), 1 << 30};
      return symmetric ? QRange{-kInt32Max, kInt32Max} : QRange{kInt32Min, kInt32Max};
  }
  return {-128, 127};
}

// ---- Parameters ------------------------------------------------------------------

QuantParams choose_qparams(float rmin, float rmax, QType type, bool symmetric, bool reduce_range) {
  if (!std::isfinite(rmin) || !std::isfinite(rmax))
    fail(ErrorKind::kRuntime,
         "choose_qparams: the real range [{}, {}] is not finite; expected finite calibration bounds "
         "(a NaN or infinity reached the calibrator)",
         rmin, rmax);
  const QRange r = qrange(type, reduce_range, symmetric);
  const QRange storage = storage_range(type);

  // Steps 1-2 in float32.
  float lo = std::min(rmin, 0.0f);
  float hi = std::max(rmax, 0.0f);
  if (symmetric) {
    const float m = std::max(std::fabs(lo), std::fabs(hi));
    lo = -m;
    hi = m;
  }
  // Step 3: float32 width, float64 quotient.
  const float width = hi - lo;
  if (!std::isfinite(width))
    fail(ErrorKind::kRuntime, "choose_qparams: the width of the real range [{}, {}] overflows float32", lo, hi);
  const double scale = static_cast<double>(width) / (static_cast<double>(r.max) - static_cast<double>(r.min));

  QuantParams p;
  p.type = type;
  p.qmin = storage.min;
  p.qmax = storage.max;
  if (scale < static_cast<double>(std::numeric_limits<float>::min())) {
    p.scale = 1.0f;
    p.zero_point = 0;
    return p;
  }
  double zp = symmetric ? std::nearbyint((static_cast<double>(r.min) + static_cast<double>(r.max)) / 2.0)
                        : std::nearbyint(static_cast<double>(r.min) - static_cast<double>(lo) / scale);
  zp = std::clamp(zp, static_cast<double>(r.min), static_cast<double>(r.max));
  p.zero_point = static_cast<int32_t>(zp);
  p.scale = static_cast<float>(scale);
  return p;
}

void validate_qparams(const QuantParams& p, std::string_view where) {
  const QRange s = storage_range(p.type);
  if (!std::isfinite(p.scale) || !(p.scale > 0.0f))
    fail(ErrorKind::kInput, "{}: scale {} is invalid; expected a finite value > 0", where, p.scale);
  if (p.zero_point < s.min || p.zero_point > s.max)
    fail(ErrorKind::kInput, "{}: zero point {} is outside the {} range [{}, {}]", where, p.zero_point,
         qtype_name(p.type), s.min, s.max);
  if (p.qmin < s.min || p.qmax > s.max || p.qmin > p.qmax)
    fail(ErrorKind::kInput, "{}: saturation bounds [{}, {}] are not inside the {} range [{}, {}]", where, p.qmin,
         p.qmax, qtype_name(p.type), s.min, s.max);
}

QuantParams make_qparams(float scale, int32_t zero_point, QType type, std::string_view where) {
  const QRange s = storage_range(type);
  QuantParams p{scale, zero_point, s.min, s.max, type};
  validate_qparams(p, where);
  return p;
}

// ---- Values --------------------------------------------------------------------

int32_t quantize_value(float x, const QuantParams& p) {
  if (p.type == QType::kInt32) return quantize_int32(x, p.scale, p.zero_point, p.qmin, p.qmax, nullptr);
  const float v = std::nearbyint(x / p.scale);
  if (!(v >= static_cast<float>(p.qmin - p.zero_point))) return p.qmin;  // also NaN
  if (v > static_cast<float>(p.qmax - p.zero_point)) return p.qmax;
  return static_cast<int32_t>(v) + p.zero_point;
}

float dequantize_value(int32_t q, const QuantParams& p) {
  return static_cast<float>(static_cast<int64_t>(q) - p.zero_point) * p.scale;
}

// ---- Spans -----------------------------------------------------------------------

template <typename T>
void quantize(std::span<const float> x, const QuantParams& p, std::span<T> out) {
  check_type<T>(p, "quantize");
  check_sizes(x.size(), out.size(), "quantize");
  quantize_run<T>(x.data(), x.size(), p, out.data());
}

template <typename T>
void dequantize(std::span<const T> q, const QuantParams& p, std::span<float> out) {
  check_type<T>(p, "dequantize");
  check_sizes(q.size(), out.size(), "dequantize");
  dequantize_run<T>(q.data(), q.size(), p, out.data());
}

template <typename T>
void quantize_per_axis(std::span<const float> x, const Shape& shape, int axis, std::span<const QuantParams> params,
                       std::span<T> out) {
  const AxisSplit s = split_axis(shape, axis, "quantize_per_axis");
  check_sizes(x.size(), out.size(), "quantize_per_axis");
  if (static_cast<int64_t>(x.size()) != shape_numel(shape))
    fail(ErrorKind::kRuntime, "quantize_per_axis: {} values do not match shape {}", x.size(), shape_str(shape));
  if (static_cast<int64_t>(params.size()) != s.channels)
    fail(ErrorKind::kRuntime, "quantize_per_axis: {} parameter sets for axis {} of shape {}; expected {}",
         params.size(), s.axis, shape_str(shape), s.channels);
  for (const QuantParams& p : params) check_type<T>(p, "quantize_per_axis");
  const std::size_t inner = static_cast<std::size_t>(s.inner);
  std::size_t off = 0;
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t c = 0; c < s.channels; ++c, off += inner) quantize_run<T>(x.data() + off, inner, params[c], out.data() + off);
}

template <typename T>
void dequantize_per_axis(std::span<const T> q, const Shape& shape, int axis, std::span<const QuantParams> params,
                         std::span<float> out) {
  const AxisSplit s = split_axis(shape, axis, "dequantize_per_axis");
  check_sizes(q.size(), out.size(), "dequantize_per_axis");
  if (static_cast<int64_t>(q.size()) != shape_numel(shape))
    fail(ErrorKind::kRuntime, "dequantize_per_axis: {} codes do not match shape {}", q.size(), shape_str(shape));
  if (static_cast<int64_t>(params.size()) != s.channels)
    fail(ErrorKind::kRuntime, "dequantize_per_axis: {} parameter sets for axis {} of shape {}; expected {}",
         params.size(), s.axis, shape_str(shape), s.channels);
  for (const QuantParams& p : params) check_type<T>(p, "dequantize_per_axis");
  const std::size_t inner = static_cast<std::size_t>(s.inner);
  std::size_t off = 0;
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t c = 0; c < s.channels; ++c, off += inner)
      dequantize_run<T>(q.data() + off, inner, params[c], out.data() + off);
}

template void quantize<int8_t>(std::span<const float>, const QuantParams&, std::span<int8_t>);
template void quantize<uint8_t>(std::span<const float>, const QuantParams&, std::span<uint8_t>);
template void quantize<int32_t>(std::span<const float>, const QuantParams&, std::span<int32_t>);
template void dequantize<int8_t>(std::span<const int8_t>, const QuantParams&, std::span<float>);
template void dequantize<uint8_t>(std::span<const uint8_t>, const QuantParams&, std::span<float>);
template void dequantize<int32_t>(std::span<const int32_t>, const QuantParams&, std::span<float>);
template void quantize_per_axis<int8_t>(std::span<const float>, const Shape&, int, std::span<const QuantParams>,
                                        std::span<int8_t>);
template void quantize_per_axis<uint8_t>(std::span<const float>, const Shape&, int, std::span<const QuantParams>,
                                         std::span<uint8_t>);
template void quantize_per_axis<int32_t>(std::span<const float>, const Shape&, int, std::span<const QuantParams>,
                                         std::span<int32_t>);
template void dequantize_per_axis<int8_t>(std::span<const int8_t>, const Shape&, int, std::span<const QuantParams>,
                                          std::span<float>);
template void dequantize_per_axis<uint8_t>(std::span<const uint8_t>, const Shape&, int,
                                           std::span<const QuantParams>, std::span<float>);
template void dequantize_per_axis<int32_t>(std::span<const int32_t>, const Shape&, int,
                                           std::span<const QuantParams>, std::span<float>);

// ---- Tensors ---------------------------------------------------------------------

namespace {

void require_float32(const Tensor& x, const char* fn) {
  if (x.dtype() != DType::kFloat32)
    fail(ErrorKind::kRuntime, "{}: expected a float32 tensor, got {} {}", fn, dtype_name(x.dtype()),
         shape_str(x.shape()));
}

template <typename Fn>
decltype(auto) dispatch_code_type(QType t, Fn&& fn) {
  switch (t) {
    case QType::kInt8: return fn(int8_t{});
    case QType::kUInt8: return fn(uint8_t{});
    case QType::kInt32: return fn(int32_t{});
  }
  return fn(int8_t{});
}

}  // namespace

Tensor quantize_tensor(const Tensor& x, const QuantParams& p) {
  require_float32(x, "quantize_tensor");
  Tensor out(qtype_dtype(p.type), x.shape());
  dispatch_code_type(p.type, [&](auto tag) {
    using T = decltype(tag);
    quantize<T>(x.span<float>(), p, out.span<T>());
  });
  return out;
}

Tensor quantize_tensor(const Tensor& x, std::span<const QuantParams> params, int axis) {
  require_float32(x, "quantize_tensor");
  if (params.empty()) fail(ErrorKind::kRuntime, "quantize_tensor: no quantization parameters given");
  Tensor out(qtype_dtype(params[0].type), x.shape());
  dispatch_code_type(params[0].type, [&](auto tag) {
    using T = decltype(tag);
    quantize_per_axis<T>(x.span<float>(), x.shape(), axis, params, out.span<T>());
  });
  return out;
}

Tensor dequantize_tensor(const Tensor& q, const QuantParams& p) {
  const QType t = qtype_from_dtype(q.dtype());
  Tensor out(DType::kFloat32, q.shape());
  dispatch_code_type(t, [&](auto tag) {
    using T = decltype(tag);
    dequantize<T>(q.span<T>(), p, out.span<float>());
  });
  return out;
}

Tensor dequantize_tensor(const Tensor& q, std::span<const QuantParams> params, int axis) {
  const QType t = qtype_from_dtype(q.dtype());
  Tensor out(DType::kFloat32, q.shape());
  dispatch_code_type(t, [&](auto tag) {
    using T = decltype(tag);
    dequantize_per_axis<T>(q.span<T>(), q.shape(), axis, params, out.span<float>());
  });
  return out;
}

Tensor dequantize_tensor(const QuantizedTensor& q) {
  if (q.params.empty()) fail(ErrorKind::kRuntime, "dequantize_tensor: the quantized tensor has no parameters");
  if (q.per_channel()) return dequantize_tensor(q.codes, q.params, q.axis);
  return dequantize_tensor(q.codes, q.params[0]);
}

QuantizedTensor quantize_weights(const Tensor& w, QType type, bool symmetric, int axis, bool reduce_range) {
  require_float32(w, "quantize_weights");
  if (type == QType::kInt32)
    fail(ErrorKind::kRuntime, "quantize_weights: weights are quantized to int8 or uint8, not int32");
  const std::span<const float> data = w.span<float>();
  for (std::size_t i = 0; i < data.size(); ++i)
    if (!std::isfinite(data[i]))
      fail(ErrorKind::kInput, "quantize_weights: weight {} has a non-finite value {} at flat index {}",
           shape_str(w.shape()), data[i], i);

  QuantizedTensor out;
  const QRange storage = storage_range(type);
  auto params_for = [&](auto begin_end_visitor) {
    float lo = std::numeric_limits<float>::infinity(), hi = -std::numeric_limits<float>::infinity();
    bool any = false;
    begin_end_visitor([&](float v) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      any = true;
    });
    if (!any) return QuantParams{1.0f, 0, storage.min, storage.max, type};
    return choose_qparams(lo, hi, type, symmetric, reduce_range);
  };

  if (axis < -1)
    fail(ErrorKind::kRuntime, "quantize_weights: axis {} is invalid; expected -1 (per tensor) or 0..{} for shape {}",
         axis, static_cast<int>(w.rank()) - 1, shape_str(w.shape()));
  if (axis == -1) {
    out.params.push_back(params_for([&](auto&& f) {
      for (float v : data) f(v);
    }));
    out.axis = -1;
    out.codes = quantize_tensor(w, out.params[0]);
    return out;
  }
  const AxisSplit s = split_axis(w.shape(), axis, "quantize_weights");
  out.axis = s.axis;
  for (int64_t c = 0; c < s.channels; ++c) {
    out.params.push_back(params_for([&](auto&& f) {
      for (int64_t o = 0; o < s.outer; ++o) {
        const float* p = data.data() + (o * s.channels + c) * s.inner;
        for (int64_t i = 0; i < s.inner; ++i) f(p[i]);
      }
    }));
  }
  out.codes = quantize_tensor(w, out.params, out.axis);
  return out;
}

QuantizedTensor quantize_bias(const Tensor& bias, float input_scale, std::span<const QuantParams> weight_params) {
  require_float32(bias, "quantize_bias");
  if (!std::isfinite(input_scale) || !(input_scale > 0.0f))
    fail(ErrorKind::kRuntime, "quantize_bias: input scale {} is invalid; expected a finite value > 0", input_scale);
  const std::size_t n = static_cast<std::size_t>(bias.numel());
  if (weight_params.size() != 1 && weight_params.size() != n)
    fail(ErrorKind::kRuntime,
         "quantize_bias: bias {} has {} values but the weight has {} parameter sets; expected 1 (per tensor) "
         "or {} (per channel)",
         shape_str(bias.shape()), n, weight_params.size(), n);
  const bool per_channel = weight_params.size() > 1;
  QuantizedTensor out;
  out.axis = per_channel ? 0 : -1;
  const QRange storage = storage_range(QType::kInt32);
  for (std::size_t c = 0; c < weight_params.size(); ++c) {
    // float32 product, as ORT (both scales are float32 arrays there).
    const float s = input_scale * weight_params[c].scale;
    if (!std::isfinite(s) || !(s > 0.0f))
      fail(ErrorKind::kRuntime, "{}: bias scale {} · {} = {} is not a positive finite float32",
           axis_where("quantize_bias", c), input_scale, weight_params[c].scale, s);
    out.params.push_back(QuantParams{s, 0, storage.min, storage.max, QType::kInt32});
  }
  if (per_channel && bias.rank() != 1)
    fail(ErrorKind::kRuntime, "quantize_bias: per-channel bias must be 1-D, got shape {}", shape_str(bias.shape()));
  out.codes = Tensor(DType::kInt32, bias.shape());
  const float* b = bias.data<float>();
  for (std::size_t i = 0; i < n; ++i)
    if (!std::isfinite(b[i]))
      fail(ErrorKind::kInput, "quantize_bias: bias {} has a non-finite value {} at index {}", shape_str(bias.shape()),
           b[i], i);
  int32_t* q = out.codes.data<int32_t>();
  for (std::size_t i = 0; i < n; ++i) {
    const QuantParams& p = out.params[per_channel ? i : 0];
    q[i] = quantize_int32(b[i], p.scale, 0, p.qmin, p.qmax, &out.saturated);
  }
  return out;
}

// ---- Fixed-point multipliers ---------------------------------------------------------

QuantizedMultiplier quantize_multiplier(double m) {
  if (!std::isfinite(m) || m < 0.0)
    fail(ErrorKind::kRuntime, "quantize_multiplier: multiplier {} is invalid; expected a finite value >= 0", m);
  if (m == 0.0) return {0, 0};
  int shift = 0;
  const double q = std::frexp(m, &shift);  // m = q · 2^shift, q in [0.5, 1)
  // std::round: half away from zero, as TfLiteRound.
  int64_t q_fixed = static_cast<int64_t>(std::round(q * static_cast<double>(int64_t{1} << 31)));
  if (q_fixed == (int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) {
    // Every bit would be shifted out: represent the multiplier as exactly 0
    // rather than use a shift count the integer kernels cannot perform.
    return {0, 0};
  }
  if (shift > 30) return {kInt32Max, 30};
  return {static_cast<int32_t>(q_fixed), shift};
}

double quantized_multiplier_value(QuantizedMultiplier qm) {
  return std::ldexp(static_cast<double>(qm.multiplier), qm.shift - 31);
}

int32_t saturating_rounding_doubling_high_mul(int32_t a, int32_t b) {
  const bool overflow = a == b && a == kInt32Min;
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (int64_t{1} << 30) : (1 - (int64_t{1} << 30));
  // Integer division truncates toward zero; with the sign-aware nudge this is
  // round-to-nearest of ab / 2^31 with ties toward +inf.
  const int32_t high = static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
  return overflow ? kInt32Max : high;
}

int32_t rounding_divide_by_pot(int32_t x, int exponent) {
  if (exponent < 0 || exponent > 31)
    fail(ErrorKind::kRuntime, "rounding_divide_by_pot: exponent {} is outside [0, 31]", exponent);
  const int64_t mask = (int64_t{1} << exponent) - 1;
  const int64_t remainder = static_cast<int64_t>(x) & mask;
  const int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return static_cast<int32_t>((static_cast<int64_t>(x) >> exponent) + (remainder > threshold ? 1 : 0));
}

int32_t multiply_by_quantized_multiplier(int32_t x, QuantizedMultiplier qm) {
  if (qm.shift <= 0)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, qm.multiplier), -qm.shift);
  // Left shift (M >= 1): gemmlowp computes x · 2^shift in int32 first, which
  // may overflow. Do the same arithmetic in 128 bits — identical whenever
  // gemmlowp does not overflow — and saturate the result instead.
  const __int128 prod = (static_cast<__int128>(x) << qm.shift) * qm.multiplier;
  const __int128 nudge = prod >= 0 ? (__int128{1} << 30) : (1 - (__int128{1} << 30));
  const __int128 high = (prod + nudge) / (__int128{1} << 31);  // truncates toward zero
  if (high > kInt32Max) return kInt32Max;
  if (high < kInt32Min) return kInt32Min;
  return static_cast<int32_t>(high);
}

}  // namespace qpipe
