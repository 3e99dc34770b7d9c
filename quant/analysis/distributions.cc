#include "quant/analysis/distributions.h"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "engine/error.h"
#include "engine/session.h"
#include "pipeline/charts/svg.h"

namespace qpipe::analysis {
namespace {

void init(TensorDistribution& t, const std::vector<QuantParams>& ps) {
  t.params = ps.at(0);
  t.per_channel = ps.size() > 1;
  if (t.params.type != QType::kInt32) t.code_hist.assign(static_cast<std::size_t>(t.codes_total()), 0);
  t.min = std::numeric_limits<double>::infinity();
  t.max = -std::numeric_limits<double>::infinity();
  t.grid_min = std::numeric_limits<double>::infinity();
  t.grid_max = -std::numeric_limits<double>::infinity();
  for (const auto& p : ps) {
    t.grid_min = std::min(t.grid_min, double(p.scale) * (p.qmin - p.zero_point));
    t.grid_max = std::max(t.grid_max, double(p.scale) * (p.qmax - p.zero_point));
  }
}

void accumulate(TensorDistribution& t, std::span<const float> x, const QuantParams& p) {
  for (float v : x) {
    t.min = std::min<double>(t.min, v);
    t.max = std::max<double>(t.max, v);
    const double q = static_cast<double>(std::nearbyint(v / p.scale)) + p.zero_point;
    int64_t c;
    if (q < p.qmin) {
      ++t.clipped_low;
      c = p.qmin;
    } else if (q > p.qmax) {
      ++t.clipped_high;
      c = p.qmax;
    } else {
      c = static_cast<int64_t>(q);
    }
    if (t.code_hist.empty()) t.wide_codes.insert(c);
    else ++t.code_hist[static_cast<std::size_t>(c - t.params.qmin)];
  }
  t.count += static_cast<int64_t>(x.size());
}

void merge(TensorDistribution& t, const TensorDistribution& o) {
  t.min = std::min(t.min, o.min);
  t.max = std::max(t.max, o.max);
  t.count += o.count;
  t.clipped_low += o.clipped_low;
  t.clipped_high += o.clipped_high;
  for (std::size_t i = 0; i < t.code_hist.size(); ++i) t.code_hist[i] += o.code_hist[i];
  t.wide_codes.insert(o.wide_codes.begin(), o.wide_codes.end());
}

}  // namespace

int64_t TensorDistribution::codes_used() const {
  if (code_hist.empty()) return static_cast<int64_t>(wide_codes.size());
  return static_cast<int64_t>(std::count_if(code_hist.begin(), code_hist.end(), [](int64_t c) { return c > 0; }));
}

const TensorDistribution* DistributionResult::find(const std::string& name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

DistributionResult analyze_distributions(const Model& fp32, const QdqGraph& qdq, const AnalysisData& data,
                                         const DistributionOptions& options) {
  if (options.batch < 1) fail(ErrorKind::kUsage, "distributions: batch must be >= 1, got {}", options.batch);
  DistributionResult r;
  Session fs(fp32);
  const auto shapes = tensor_shapes(fs);
  std::vector<std::string> fetch;
  for (const auto& a : qdq.activations()) {
    if (!shapes.count(a.tensor)) continue;
    TensorDistribution t;
    t.name = a.tensor;
    t.kind = "activation";
    t.qdq_tensor = a.dq_tensors.at(0);
    init(t, {a.params});
    r.tensors.push_back(std::move(t));
    fetch.push_back(a.tensor);
  }
  const std::size_t na = r.tensors.size();
  for (int64_t first = 0; first < data.size && na; first += options.batch) {
    const int64_t count = std::min(options.batch, data.size - first);
    Cifar10Batch b = data.read(first, count);
    std::vector<Tensor> vals = fs.run({{fs.input_name(), b.images}}, fetch);
    tbb::parallel_for(std::size_t(0), na, [&](std::size_t k) {
      TensorDistribution part = r.tensors[k];
      std::fill(part.code_hist.begin(), part.code_hist.end(), 0);
      part.wide_codes.clear();
      part.count = part.clipped_low = part.clipped_high = 0;
      accumulate(part, vals[k].span<float>(), part.params);
      merge(r.tensors[k], part);
    });
    r.images += count;
  }
  for (const auto& c : qdq.constants()) {
    auto it = fp32.graph.initializers.find(c.fp32_name);
    if (it == fp32.graph.initializers.end() || it->second.dtype() != DType::kFloat32 || it->second.shape() != c.shape)
      continue;
    TensorDistribution t;
    t.name = c.fp32_name;
    t.kind = "constant";
    t.qdq_tensor = c.dq_tensor;
    init(t, c.params);
    for_each_channel_run(it->second.span<float>(), c.shape, c.axis, [&](std::span<const float> s, int64_t ch) {
      accumulate(t, s, c.params[static_cast<std::size_t>(ch)]);
    });
    r.tensors.push_back(std::move(t));
  }
  return r;
}

nlohmann::json distributions_to_json(const DistributionResult& r) {
  nlohmann::json j;
  j["schema"] = "distributions";
  j["schema_version"] = 1;
  j["images"] = r.images;
  j["tensors"] = nlohmann::json::array();
  for (const auto& t : r.tensors) {
    j["tensors"].push_back({{"name", t.name},
                            {"kind", t.kind},
                            {"qdq_tensor", t.qdq_tensor},
                            {"scale", t.params.scale},
                            {"zero_point", t.params.zero_point},
                            {"qmin", t.params.qmin},
                            {"qmax", t.params.qmax},
                            {"per_channel", t.per_channel},
                            {"count", t.count},
                            {"min", json_number(t.min)},
                            {"max", json_number(t.max)},
                            {"grid_min", t.grid_min},
                            {"grid_max", t.grid_max},
                            {"range_used", t.range_used()},
                            {"codes_used", t.codes_used()},
                            {"codes_total", t.codes_total()},
                            {"clipped_low", t.clipped_low},
                            {"clipped_high", t.clipped_high},
                            {"clipped_fraction", t.clipped_fraction()},
                            {"code_histogram", t.code_hist}});
  }
  return j;
}

std::string distributions_markdown(const DistributionResult& r) {
  std::string o = fmt::format("FP32 values against the quantization grid ({} images for activations).\n\n", r.images);
  o += "| tensor | kind | FP32 min | FP32 max | grid min | grid max | range used | codes used | clipped % |\n";
  o += "|---|---|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const auto& t : r.tensors)
    o += fmt::format("| {} | {}{} | {:.4g} | {:.4g} | {:.4g} | {:.4g} | {:.1f}% | {}/{} | {:.4f} |\n", t.name, t.kind,
                     t.per_channel ? " (per ch.)" : "", t.min, t.max, t.grid_min, t.grid_max, 100.0 * t.range_used(),
                     t.codes_used(), t.codes_total(), 100.0 * t.clipped_fraction());
  return o;
}

std::string histogram_chart_svg(const TensorDistribution& t) {
  charts::Histogram h;
  h.title = fmt::format("{} ({}): FP32 values on the {} grid", t.name, t.kind, qtype_name(t.params.type));
  h.subtitle = fmt::format(
      "scale {:.6g}, zero point {}{}; FP32 range [{:.4g}, {:.4g}] of grid [{:.4g}, {:.4g}]; {} of {} codes used; "
      "{:.3f}% clipped",
      t.params.scale, t.params.zero_point, t.per_channel ? " (channel 0; per-channel)" : "", t.min, t.max, t.grid_min,
      t.grid_max, t.codes_used(), t.codes_total(), 100.0 * t.clipped_fraction());
  h.x_label = "quantized code";
  h.y_label = "values (log scale)";
  h.log_y = true;
  h.x_min = t.params.qmin - 0.5;
  h.x_max = t.params.qmax + 0.5;
  if (t.code_hist.empty()) {
    // int32 codes: histogram of the real values over [min, max] instead (64 bins).
    // int32 codes: distinct codes per bin, 64 bins over the used code range.
    h.x_label = "int32 code (64 bins over the used range)";
    h.y_label = "distinct codes (log scale)";
    if (t.wide_codes.empty()) return charts::histogram_svg(h);
    const double lo = double(*t.wide_codes.begin()), hi = double(*t.wide_codes.rbegin()) + 1;
    h.x_min = lo;
    h.x_max = hi > lo ? hi : lo + 1;
    h.counts.assign(64, 0);
    for (int64_t c : t.wide_codes)
      h.counts[std::min<std::size_t>(63, static_cast<std::size_t>((double(c) - h.x_min) / (h.x_max - h.x_min) * 64))] += 1;
    h.markers.clear();
    h.highlight.clear();
    return charts::histogram_svg(h);
  }
  h.counts.assign(t.code_hist.begin(), t.code_hist.end());
  h.highlight.assign(h.counts.size(), false);
  if (t.clipped_low && !h.highlight.empty()) h.highlight.front() = true;
  if (t.clipped_high && !h.highlight.empty()) h.highlight.back() = true;
  if (!t.per_channel && t.count) {
    h.markers.push_back({t.min / t.params.scale + t.params.zero_point, fmt::format("FP32 min {:.4g}", t.min)});
    h.markers.push_back({t.max / t.params.scale + t.params.zero_point, fmt::format("FP32 max {:.4g}", t.max)});
  }
  return charts::histogram_svg(h);
}

}  // namespace qpipe::analysis
