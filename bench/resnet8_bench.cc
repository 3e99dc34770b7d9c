// Whole-model ResNet8 throughput: images/s and GFLOP/s of Session::run on
// real CIFAR-10 test images, for
//   fp32          ../shared/models/resnet8.onnx
//   qdq_ref       ../shared/models/resnet8_int8_ort_reference.onnx, reference
//                 (ONNX spec) QDQ semantics
//   qdq_ort_avx2  the same QDQ model under exec_mode "ort-avx2" (ONNX
//                 Runtime's fused AVX2 integer arithmetic, scalar emulation)
// at batch 1 and 256, with 1 and 2 threads (a tbb::task_arena per benchmark).
// Portable variants (fp32_portable, qdq_ref_portable) force the SSE2/Eigen
// kernels (SessionOptions::force_portable) for comparison with the fast path.
// The fast path is the best ISA the CPU has (AVX-512F, else AVX2+FMA); each
// result is labelled with the ISA that ran. QPIPE_FORCE_ISA=avx2 (or
// portable) caps it for the whole process, e.g. to compare AVX2 with AVX-512:
//   QPIPE_FORCE_ISA=avx2 build/qpipe_bench --benchmark_filter=ResNet8_fp32
//
// FLOPs are 2 x the multiply-adds of every Conv and MatMul, counted from the
// model's own shapes (ResNet8: 12,501,632 MACs per image).
//
// Data: $QPIPE_SHARED if set, else ../shared relative to the current
// directory (run from the repository root), else ../shared beside the source
// tree. A missing model or dataset skips the benchmark with a message.
//
//   build/qpipe_bench --benchmark_filter=ResNet8 --benchmark_min_time=2

#include <benchmark/benchmark.h>
#include <tbb/task_arena.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/io/cifar10.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/session.h"

namespace {

namespace fs = std::filesystem;

fs::path shared_dir() {
  if (const char* env = std::getenv("QPIPE_SHARED"); env && *env) return env;
  if (fs::exists("../shared/models")) return "../shared";
  return fs::path(__FILE__).parent_path() / ".." / ".." / "shared";
}

// Multiply-adds per image of every Conv and MatMul, from the weights' shapes
// (looking through DequantizeLinear for QDQ models) and the outputs' shapes.
int64_t count_macs(const qpipe::Session& s) {
  const qpipe::Model& m = s.model();
  const qpipe::Graph& g = m.graph;
  auto weight_shape = [&](const std::string& name) -> qpipe::Shape {
    std::string n = name;
    for (int hop = 0; hop < 4; ++hop) {
      auto it = g.initializers.find(n);
      if (it != g.initializers.end()) return it->second.shape();
      auto p = g.producer(n);
      if (!p) break;
      n = g.nodes[*p].inputs.at(0);
    }
    return {};
  };
  std::vector<std::string> outs;
  std::vector<const qpipe::Node*> nodes;
  for (const auto& n : g.nodes)
    if (n.op_type == "Conv" || n.op_type == "MatMul" || n.op_type == "Gemm") {
      outs.push_back(n.outputs[0]);
      nodes.push_back(&n);
    }
  const auto& vi = g.value_info.at(s.input_name());
  qpipe::Shape in_shape = vi.shape;
  for (auto& d : in_shape)
    if (d < 0) d = 1;
  auto res = s.run({{s.input_name(), qpipe::Tensor(vi.dtype, in_shape)}}, outs);
  int64_t macs = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const qpipe::Shape w = weight_shape(nodes[i]->inputs[1]);
    if (w.empty()) continue;
    int64_t k = 1;  // reduction length per output element
    if (nodes[i]->op_type == "Conv") {
      for (std::size_t d = 1; d < w.size(); ++d) k *= w[d];
    } else {
      k = nodes[i]->op_type == "Gemm" && nodes[i]->attr_int("transB", 0) ? w[1] : w[0];
    }
    macs += res[i].numel() * k;
  }
  return macs;
}

struct Loaded {
  std::unique_ptr<qpipe::Session> session;
  qpipe::Tensor images;  // the first 256 test images
  int64_t macs = 0;
  std::string error;
};

// Sessions are built once per (model, mode) and shared by the benchmarks.
const Loaded& load(const std::string& model_file, const std::string& exec_mode, bool portable) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<Loaded>> cache;
  std::lock_guard<std::mutex> lock(mu);
  const std::string key = model_file + "|" + exec_mode + (portable ? "|portable" : "");
  auto& slot = cache[key];
  if (slot) return *slot;
  slot = std::make_unique<Loaded>();
  try {
    const fs::path shared = shared_dir();
    qpipe::SessionOptions so;
    so.exec_mode = exec_mode;
    so.force_portable = portable;
    slot->session = std::make_unique<qpipe::Session>(qpipe::load_onnx((shared / "models" / model_file).string()), so);
    auto ds = qpipe::open_cifar10((shared / "data" / "cifar-10-batches-bin").string(), qpipe::Cifar10Split::kTest);
    slot->images = ds.read_batch(0, 256).images;
    slot->macs = count_macs(*slot->session);
  } catch (const qpipe::PtqError& e) {
    slot->error = e.what();
    slot->session.reset();
  }
  return *slot;
}

void run_model(benchmark::State& state, const std::string& model_file, const std::string& exec_mode, bool portable) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const Loaded& l = load(model_file, exec_mode, portable);
  if (!l.session) {
    state.SkipWithError(("cannot load (set QPIPE_SHARED or run from the repository root): " + l.error).c_str());
    return;
  }
  qpipe::Tensor input = l.images;
  if (batch != input.dim(0)) {
    qpipe::Shape s = input.shape();
    s[0] = batch;
    qpipe::Tensor t(input.dtype(), s);
    std::memcpy(t.raw(), input.raw(), t.nbytes());
    input = t;
  }
  state.SetLabel(qpipe::fast::isa_name(qpipe::fast::select_isa(portable)));
  tbb::task_arena arena(threads);
  arena.execute([&] { l.session->run(input); });  // warm-up: plans, buffers
  for (auto _ : state) {
    arena.execute([&] {
      auto out = l.session->run(input);
      benchmark::DoNotOptimize(out[0].raw());
    });
  }
  const double images = static_cast<double>(state.iterations() * batch);
  state.counters["images/s"] = benchmark::Counter(images, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(images * 2.0 * static_cast<double>(l.macs) * 1e-9, benchmark::Counter::kIsRate);
  state.counters["MMAC/img"] = static_cast<double>(l.macs) * 1e-6;
}

void args(benchmark::internal::Benchmark* b) {
  for (int64_t batch : {1, 256})
    for (int64_t threads : {1, 2}) b->Args({batch, threads});
  b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMillisecond);
}

void BM_ResNet8_fp32(benchmark::State& s) { run_model(s, "resnet8.onnx", "reference", false); }
void BM_ResNet8_fp32_portable(benchmark::State& s) { run_model(s, "resnet8.onnx", "reference", true); }
void BM_ResNet8_qdq_ref(benchmark::State& s) { run_model(s, "resnet8_int8_ort_reference.onnx", "reference", false); }
void BM_ResNet8_qdq_ref_portable(benchmark::State& s) {
  run_model(s, "resnet8_int8_ort_reference.onnx", "reference", true);
}
void BM_ResNet8_qdq_ort_avx2(benchmark::State& s) {
  run_model(s, "resnet8_int8_ort_reference.onnx", "ort-avx2", false);
}
BENCHMARK(BM_ResNet8_fp32)->Apply(args);
BENCHMARK(BM_ResNet8_qdq_ort_avx2)->Apply(args);
BENCHMARK(BM_ResNet8_fp32_portable)->Apply(args);
BENCHMARK(BM_ResNet8_qdq_ref)->Apply(args);
BENCHMARK(BM_ResNet8_qdq_ref_portable)->Apply(args);

}  // namespace
