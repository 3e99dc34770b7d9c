// Throughput of the offline quantization path: QuantizeLinear/DequantizeLinear
// over 1M floats (per tensor and per axis), calibrator observe() per method,
// and the threshold searches on a finished histogram. Each benchmark runs 5
// repetitions and reports mean, median and min (STYLE.md 14); the
// items_per_second counter is values/s.

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/integer/exact.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"

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


// ---- exec_mode "exact" vs FP32 vs reference QDQ ---------------------------

std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("QPIPE_SHARED"); env && *env) return env;
  if (std::filesystem::exists("../shared/models")) return "../shared";
  return std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "shared";
}

struct LoadedModel {
  std::unique_ptr<Session> session;
  Tensor images;  // the first 256 test images
  std::string error;
};

const LoadedModel& load_model(const std::string& file, const std::string& mode) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<LoadedModel>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[file + "|" + mode];
  if (slot) return *slot;
  slot = std::make_unique<LoadedModel>();
  try {
    SessionOptions so;
    so.exec_mode = mode;
    slot->session = std::make_unique<Session>(load_onnx((shared_dir() / "models" / file).string()), so);
    auto ds = open_cifar10((shared_dir() / "data" / "cifar-10-batches-bin").string(), Cifar10Split::kTest);
    slot->images = ds.read_batch(0, 256).images;
  } catch (const PtqError& e) {
    slot->error = e.what();
    slot->session.reset();
  }
  return *slot;
}

void run_exec_mode(benchmark::State& state, const std::string& file, const std::string& mode) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const LoadedModel& l = load_model(file, mode);
  if (!l.session) {
    state.SkipWithError(("cannot load (set QPIPE_SHARED or run from the repository root): " + l.error).c_str());
    return;
  }
  Shape s = l.images.shape();
  s[0] = batch;
  Tensor input(l.images.dtype(), s);
  std::memcpy(input.raw(), l.images.raw(), input.nbytes());
  tbb::task_arena arena(threads);
  arena.execute([&] { l.session->run(input); });  // warm-up: plans, buffers, scratch
  for (auto _ : state) {
    arena.execute([&] {
      auto out = l.session->run(input);
      benchmark::DoNotOptimize(out[0].raw());
    });
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations() * batch), benchmark::Counter::kIsRate);
}

void exec_mode_args(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {1, 256})
    for (int64_t threads : {1, 2}) b->Args({batch, threads});
  b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond)->MinTime(0.5);
}

void BM_ExecMode_fp32(benchmark::State& s) { run_exec_mode(s, "resnet8.onnx", "reference"); }
void BM_ExecMode_qdq_reference(benchmark::State& s) { run_exec_mode(s, "resnet8_int8_ort_reference.onnx", "reference"); }
void BM_ExecMode_qdq_exact(benchmark::State& s) { run_exec_mode(s, "resnet8_int8_ort_reference.onnx", "exact"); }
BENCHMARK(BM_ExecMode_fp32)->Apply(exec_mode_args);
BENCHMARK(BM_ExecMode_qdq_exact)->Apply(exec_mode_args);
BENCHMARK(BM_ExecMode_qdq_reference)->Apply(exec_mode_args);

// One exact conv layer (conv2d_1: 16->16, 3x3, 32x32, pad 1) per ISA path, batch 64, one thread.
void BM_ExactConv(benchmark::State& state) {
  const auto isa = static_cast<integer::ExactIsa>(state.range(0));
  if (!integer::exact_isa_supported(isa)) {
    state.SkipWithError((std::string("CPU lacks ") + integer::exact_isa_name(isa)).c_str());
    return;
  }
  integer::ExactConvParams q;
  q.p = {64, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 32, 32};
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> byte(0, 255);
  q.w.resize(16 * 16 * 9);
  for (auto& v : q.w) v = static_cast<uint8_t>(byte(rng));
  q.zp_w.assign(16, 0);
  q.bias.assign(16, 100);
  q.multiplier.assign(16, 1.f / 4096.f);
  q.zp_x = -128;
  auto k = integer::make_exact_conv(q, isa);
  Tensor x(DType::kInt8, {64, 16, 32, 32});
  for (int64_t i = 0; i < x.numel(); ++i) static_cast<uint8_t*>(x.raw())[i] = static_cast<uint8_t>(byte(rng));
  Tensor y(DType::kInt8, {64, 16, 32, 32});
  const Tensor* in[] = {&x};
  Tensor* out[] = {&y};
  tbb::task_arena arena(1);
  for (auto _ : state) {
    arena.execute([&] { k->eval(in, out); });
    benchmark::DoNotOptimize(y.raw());
  }
  state.counters["images/s"] = benchmark::Counter(static_cast<double>(state.iterations() * 64), benchmark::Counter::kIsRate);
  state.counters["GMAC/s"] = benchmark::Counter(static_cast<double>(state.iterations()) * 64 * 16 * 16 * 9 * 1024 * 1e-9,
                                                benchmark::Counter::kIsRate);
  state.SetLabel(integer::exact_isa_name(isa));
}
BENCHMARK(BM_ExactConv)->Arg(0)->Arg(1)->Arg(2)->ArgName("isa")->Unit(benchmark::kMicrosecond)->UseRealTime();

}  // namespace
}  // namespace qpipe
