#include "quant/analysis/common.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace qpipe::analysis {

AnalysisData AnalysisData::from_cifar10(const Cifar10Dataset& d) {
  AnalysisData a;
  a.size = d.size();
  a.class_names = d.class_names();
  a.read = [d](int64_t first, int64_t count) { return d.read_batch(first, count); };
  return a;
}

void ErrorStats::add(std::span<const float> x, std::span<const float> xhat) {
  if (x.size() != xhat.size())
    fail(ErrorKind::kRuntime, "ErrorStats::add: reference has {} values, approximation {}", x.size(), xhat.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double a = x[i], b = xhat[i], e = a - b;
    sum_x2 += a * a;
    sum_e2 += e * e;
    sum_xy += a * b;
    sum_y2 += b * b;
    max_abs = std::max(max_abs, std::fabs(e));
  }
  count += static_cast<int64_t>(x.size());
}

void ErrorStats::add_clipping(std::span<const float> x, const QuantParams& p) {
  for (float v : x) {
    const float r = std::nearbyint(v / p.scale);  // default rounding mode: half to even
    const double q = static_cast<double>(r) + p.zero_point;
    if (q < p.qmin) ++clipped_low;
    else if (q > p.qmax) ++clipped_high;
  }
}

void ErrorStats::merge(const ErrorStats& o) {
  sum_x2 += o.sum_x2;
  sum_e2 += o.sum_e2;
  sum_xy += o.sum_xy;
  sum_y2 += o.sum_y2;
  max_abs = std::max(max_abs, o.max_abs);
  count += o.count;
  clipped_low += o.clipped_low;
  clipped_high += o.clipped_high;
}

double ErrorStats::sqnr_db() const {
  if (count == 0) return std::numeric_limits<double>::quiet_NaN();
  if (sum_e2 == 0) return std::numeric_limits<double>::infinity();
  if (sum_x2 == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sum_x2 / sum_e2);
}

double ErrorStats::cosine() const {
  if (sum_x2 == 0 || sum_y2 == 0) return std::numeric_limits<double>::quiet_NaN();
  return sum_xy / std::sqrt(sum_x2 * sum_y2);
}

std::map<std::string, Shape> tensor_shapes(const Session& s) {
  const Graph& g = s.model().graph;
  std::map<std::string, Tensor> feeds;
  for (const auto& in : g.inputs) {
    const ValueInfo& vi = g.value_info.at(in);
    Shape sh = vi.shape;
    for (auto& d : sh)
      if (d < 0) d = 1;
    feeds[in] = Tensor(vi.dtype, sh);
  }
  std::vector<std::string> names = g.inputs;
  for (const auto& n : s.computed_tensors())
    if (!g.is_constant(n)) names.push_back(n);
  std::vector<Tensor> vals = s.run(feeds, names);
  std::map<std::string, Shape> out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    Shape sh = vals[i].shape();
    if (!sh.empty()) sh[0] = -1;
    out[names[i]] = sh;
  }
  return out;
}

void for_each_channel_run(std::span<const float> values, const Shape& shape, int axis,
                          const std::function<void(std::span<const float>, int64_t)>& fn) {
  if (axis < 0) {
    fn(values, 0);
    return;
  }
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[static_cast<std::size_t>(i)];
  for (std::size_t i = static_cast<std::size_t>(axis) + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t c = shape[static_cast<std::size_t>(axis)];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < c; ++k)
      fn(values.subspan(static_cast<std::size_t>((o * c + k) * inner), static_cast<std::size_t>(inner)), k);
}

nlohmann::json json_number(double v) {
  if (!std::isfinite(v)) return nullptr;
  return v;
}

std::string fmt_db(double v, int decimals) {
  if (std::isnan(v)) return "-";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.{}f}", v, decimals);
}

nlohmann::json ErrorStats::to_json(bool with_clipping) const {
  nlohmann::json j;
  const double s = sqnr_db();
  j["sqnr_db"] = json_number(s);
  j["exact"] = count > 0 && sum_e2 == 0;
  j["cosine"] = json_number(cosine());
  j["max_abs_error"] = max_abs;
  j["count"] = count;
  j["signal_power"] = count ? sum_x2 / double(count) : 0.0;
  j["noise_power"] = count ? sum_e2 / double(count) : 0.0;
  if (with_clipping) {
    j["clipped_low"] = clipped_low;
    j["clipped_high"] = clipped_high;
    j["clipped_fraction"] = clipped_fraction();
  }
  return j;
}

}  // namespace qpipe::analysis
