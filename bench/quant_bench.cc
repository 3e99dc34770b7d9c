// Throughput of the offline quantization path: QuantizeLinear/DequantizeLinear
// over 1M floats (per tensor and per axis), calibrator observe() per method,
// and the threshold searches on a finished histogram. Each benchmark runs 5
// repetitions and reports mean, median and min (STYLE.md 14); the
// items_per_second counter is values/s.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <random>
#include <vector>

#include "quant/calibrators/calibrator.h"
#include "quant/calibrators/histogram.h"
#include "quant/qparams.h"

namespace qpipe {
namespace {

constexpr std::size_t kValues = 1 << 20;

const std::vector<float>& activations() {
  static const std::vector<float> v = [] {
    std::mt19937_64 rng(7767517);
    std::normal_distribution<float> d(0.5f, 2.0f);
    std::vector<float> out(kValues);
    for (float& x : out) x = d(rng);
    return out;
  }();
  return v;
}

template <typename Bm>
void with_stats(Bm* b) {
  b->Repetitions(5)
      ->ReportAggregatesOnly(true)
      ->ComputeStatistics("min", [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); })
      ->Unit(benchmark::kMicrosecond);
}

template <typename T>
void BM_Quantize(benchmark::State& state) {
  const auto& x = activations();
  const QType t = std::is_same_v<T, int8_t> ? QType::kInt8 : std::is_same_v<T, uint8_t> ? QType::kUInt8 : QType::kInt32;
  const QuantParams p = t == QType::kInt32 ? make_qparams(1e-4f, 0, t) : choose_qparams(-6.0f, 7.0f, t, false);
  std::vector<T> q(x.size());
  for (auto _ : state) {
    quantize<T>(x, p, q);
    benchmark::DoNotOptimize(q.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(x.size() * (sizeof(float) + sizeof(T))));
}
BENCHMARK_TEMPLATE(BM_Quantize, int8_t)->Apply([](auto* b) { with_stats(b); });
BENCHMARK_TEMPLATE(BM_Quantize, uint8_t)->Apply([](auto* b) { with_stats(b); });
BENCHMARK_TEMPLATE(BM_Quantize, int32_t)->Apply([](auto* b) { with_stats(b); });

template <typename T>
void BM_Dequantize(benchmark::State& state) {
  const auto& x = activations();
  const QType t = std::is_same_v<T, int8_t> ? QType::kInt8 : QType::kUInt8;
  const QuantParams p = choose_qparams(-6.0f, 7.0f, t, false);
  std::vector<T> q(x.size());
  quantize<T>(x, p, q);
  std::vector<float> out(x.size());
  for (auto _ : state) {
    dequantize<T>(q, p, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
}
BENCHMARK_TEMPLATE(BM_Dequantize, int8_t)->Apply([](auto* b) { with_stats(b); });
BENCHMARK_TEMPLATE(BM_Dequantize, uint8_t)->Apply([](auto* b) { with_stats(b); });

// Per-axis along the channel axis of an NCHW activation [16, 64, 32, 32].
void BM_QuantizePerAxis(benchmark::State& state) {
  const auto& x = activations();
  const Shape shape = {16, 64, 32, 32};
  std::vector<QuantParams> ps;
  for (int c = 0; c < 64; ++c) ps.push_back(choose_qparams(-1.0f - c * 0.1f, 2.0f + c * 0.05f, QType::kInt8, false));
  std::vector<int8_t> q(x.size());
  for (auto _ : state) {
    quantize_per_axis<int8_t>(x, shape, 1, ps, q);
    benchmark::DoNotOptimize(q.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
}
BENCHMARK(BM_QuantizePerAxis)->Apply([](auto* b) { with_stats(b); });

// Per-channel symmetric weight quantization (min/max scan + quantize) of a
// [256, 256, 4, 4] Conv weight (1M values).
void BM_QuantizeWeightsPerChannel(benchmark::State& state) {
  const auto& x = activations();
  const Tensor w = Tensor::from<float>({256, 256, 4, 4}, std::span<const float>(x));
  for (auto _ : state) {
    QuantizedTensor q = quantize_weights(w, QType::kInt8, true, 0);
    benchmark::DoNotOptimize(q.codes.raw());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
}
BENCHMARK(BM_QuantizeWeightsPerChannel)->Apply([](auto* b) { with_stats(b); });

// observe() of one 1M-value batch into a fresh calibrator (range already set).
void BM_Observe(benchmark::State& state) {
  const auto& x = activations();
  CalibratorConfig c;
  c.method = static_cast<CalibrationMethod>(state.range(0));
  auto proto = make_calibrator(c);
  if (proto->needs_range_pass()) {
    const auto [mn, mx] = std::minmax_element(x.begin(), x.end());
    proto->set_range(*mn, *mx);
  }
  state.SetLabel(calibration_method_name(c.method));
  for (auto _ : state) {
    auto cal = proto->clone_empty();
    cal->observe(x);
    benchmark::DoNotOptimize(cal.get());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(x.size()));
}
BENCHMARK(BM_Observe)
    ->Arg(static_cast<int>(CalibrationMethod::kMinMax))
    ->Arg(static_cast<int>(CalibrationMethod::kPercentile))
    ->Arg(static_cast<int>(CalibrationMethod::kEntropy))
    ->Arg(static_cast<int>(CalibrationMethod::kMse))
    ->Apply([](auto* b) { with_stats(b); });

// range() on a finished calibrator: the threshold search alone.
void BM_Range(benchmark::State& state) {
  const auto& x = activations();
  CalibratorConfig c;
  c.method = static_cast<CalibrationMethod>(state.range(0));
  c.num_bins = static_cast<int>(state.range(1));
  c.symmetric = state.range(2) != 0;
  const std::vector<std::span<const float>> one = {x};
  auto cal = calibrate_batches(c, one);
  state.SetLabel(c.to_json().dump());
  for (auto _ : state) benchmark::DoNotOptimize(cal->range());
}
BENCHMARK(BM_Range)
    ->Args({static_cast<int>(CalibrationMethod::kPercentile), 2048, 1})
    ->Args({static_cast<int>(CalibrationMethod::kEntropy), 2048, 0})
    ->Args({static_cast<int>(CalibrationMethod::kMse), 2048, 1})
    ->Args({static_cast<int>(CalibrationMethod::kMse), 2048, 0})
    ->Apply([](auto* b) {
      b->Repetitions(3)->ReportAggregatesOnly(true)->Unit(benchmark::kMillisecond);
    });

}  // namespace
}  // namespace qpipe
