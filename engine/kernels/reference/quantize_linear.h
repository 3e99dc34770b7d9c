#pragma once
// QuantizeLinear / DequantizeLinear exactly as the ONNX spec defines them:
//   QuantizeLinear:   y = saturate(round_half_to_even(x / y_scale) + y_zero_point)
//   DequantizeLinear: y = (x - x_zero_point) * x_scale
// x / y_scale is computed in the float type of x (float32 for float32 models),
// rounding is to nearest with ties to even (std::nearbyint under the default
// FE_TONEAREST mode), saturation clamps to the output type's range.

#include <cmath>
#include <cstdint>
#include <limits>

namespace qpipe::reference {

template <typename Q, typename F>
inline Q quantize_value(F x, F scale, int32_t zero_point) {
  constexpr double lo = static_cast<double>(std::numeric_limits<Q>::min());
  constexpr double hi = static_cast<double>(std::numeric_limits<Q>::max());
  const F q = std::nearbyint(x / scale);
  double v = static_cast<double>(q) + zero_point;
  if (std::isnan(v)) v = 0;  // NaN has no integer code; ORT (and the spec's reference) give 0 + saturation of zp
  v = v < lo ? lo : (v > hi ? hi : v);
  return static_cast<Q>(v);
}

template <typename Q, typename F>
inline F dequantize_value(Q q, F scale, int32_t zero_point) {
  if constexpr (sizeof(Q) >= 4) {
    return static_cast<F>(static_cast<int64_t>(q) - zero_point) * scale;
  } else {
    return static_cast<F>(static_cast<int32_t>(q) - zero_point) * scale;
  }
}

}  // namespace qpipe::reference
