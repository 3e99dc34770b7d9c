// Per-kernel benchmarks on ResNet8's real shapes, through the same public
// kernel API the Session uses (prepare once, then OpKernel::eval):
//   Conv_fast / Conv_portable   each of the model's Conv nodes (weights, bias,
//                               geometry and input activations taken from
//                               ../shared/models/resnet8.onnx run on CIFAR-10
//                               test images), prepared with
//                               kernels::prepare_conv_fused and an empty
//                               epilogue (bias only); "fast" is what
//                               fast/cpu.h selects on this CPU (AVX-512 or AVX2+FMA
//                               direct conv), "portable" forces im2col + Eigen;
//                               QPIPE_FORCE_ISA=avx2 caps "fast" at AVX2.
//                               QPIPE_FORCE_ISA=avx2 benchmarks the AVX2
//                               kernels on an AVX-512 machine.
//   QLinearConv_ort_avx2        the same geometries on the ort-avx2 integer
//                               kernel (engine/integer/ort_avx2.h: u8 x s8,
//                               int16 pair saturation, scalar), synthetic codes.
//   ExactConv_fast / _portable  the same geometries on the exact-mode integer
//                               conv (engine/integer/exact.h): the best ISA
//                               (AVX-512 VNNI / AVX2) or scalar.
//   Gemm                        the final MatMul/Gemm (64 -> 10); one path only
//                               (no ISA-specific kernel exists), labelled so.
//   QuantizeLinear / DequantizeLinear
//                               int8 per-tensor over an activation-sized tensor
//                               [B, 16, 32, 32] (ResNet8's largest); one path.
//   QdqEpilogue_fast / _portable
//                               the fused Q->DQ round trip (fast/epilogue.h
//                               kQdq) Session applies to QDQ models, over the
//                               same tensor.
// Arguments: batch (1 or 256) and threads (a tbb::task_arena per benchmark).
// Counters: GFLOP/s = 2 x multiply-adds per second (convs, gemm; integer ops per
// second for the integer convs), items/s = images per second (convs, gemm) or tensor elements
// per second (Q, DQ, QDQ epilogue).
//
// Data: $QPIPE_SHARED if set, else ../shared relative to the current
// directory (run from the repository root), else ../shared beside the source
// tree. Without the CIFAR-10 data the activations are synthetic 0..255
// images pushed through the model; without the model the conv and gemm
// benchmarks are skipped with a message.
//
//   build/qpipe_bench --benchmark_filter='Conv|Gemm|Quantize|Qdq'

#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <tbb/task_arena.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/integer/exact.h"
#include "engine/integer/ort_avx2.h"
#include "engine/io/cifar10.h"
#include "engine/kernel.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/fast/epilogue.h"
#include "engine/kernels/fast/fused.h"
#include "engine/kernels/kernels.h"
#include "engine/session.h"

namespace {

namespace fs = std::filesystem;
using qpipe::DType;
using qpipe::Shape;
using qpipe::Tensor;

constexpr int64_t kMaxBatch = 256;

fs::path shared_dir() {
  if (const char* env = std::getenv("QPIPE_SHARED"); env && *env) return env;
  if (fs::exists("../shared/models")) return "../shared";
  return fs::path(__FILE__).parent_path() / ".." / ".." / "shared";
}

struct ConvCase {
  qpipe::Node node;
  Tensor w, b;      // weight [m, c, kh, kw], bias [m] (empty when absent)
  Tensor x;         // real input activations [kMaxBatch, c, h, w]
  std::string label;
  int64_t macs_per_image = 0;
};

struct GemmCase {
  qpipe::Node node;
  std::vector<Tensor> consts;  // B (and C) as in the model
  Tensor a;                    // real input [kMaxBatch, K]
  std::string label;
  int64_t macs_per_image = 0;
};

struct ResNet8Cases {
  std::vector<ConvCase> convs;
  std::vector<GemmCase> gemms;
  int64_t opset = 13;
  std::string error;
};

// Loads the model once, runs it on kMaxBatch images fetching every Conv's and
// MatMul/Gemm's input, and keeps everything the benchmarks feed.
const ResNet8Cases& cases() {
  static std::once_flag once;
  static ResNet8Cases c;
  std::call_once(once, [] {
    try {
      const fs::path shared = shared_dir();
      qpipe::Model model = qpipe::load_onnx((shared / "models" / "resnet8.onnx").string());
      c.opset = model.opset;
      const qpipe::Graph& g = model.graph;
      std::vector<const qpipe::Node*> convs, gemms;
      std::vector<std::string> fetch;
      for (const auto& n : g.nodes) {
        if (n.op_type == "Conv") convs.push_back(&n);
        if (n.op_type == "MatMul" || n.op_type == "Gemm") gemms.push_back(&n);
      }
      for (auto* n : convs) fetch.push_back(n->inputs[0]);
      for (auto* n : gemms) fetch.push_back(n->inputs[0]);
      qpipe::Session session(model);
      Tensor images;
      try {
        auto ds = qpipe::open_cifar10((shared / "data" / "cifar-10-batches-bin").string(), qpipe::Cifar10Split::kTest);
        images = ds.read_batch(0, kMaxBatch).images;
      } catch (const qpipe::PtqError&) {
        images = Tensor(DType::kFloat32, {kMaxBatch, 32, 32, 3});
        std::mt19937 gen(7);
        for (float& v : images.span<float>()) v = static_cast<float>(gen() & 0xff);
      }
      auto acts = session.run({{session.input_name(), images}}, fetch);
      for (std::size_t i = 0; i < convs.size(); ++i) {
        const qpipe::Node& n = *convs[i];
        ConvCase cc;
        cc.node = n;
        cc.x = acts[i];
        cc.w = g.initializers.at(n.inputs[1]);
        if (n.inputs.size() > 2 && !n.inputs[2].empty()) cc.b = g.initializers.at(n.inputs[2]);
        // Output geometry from a prepare of batch 1 (the kernel's own shape inference).
        std::vector<qpipe::ValueDesc> in = {{DType::kFloat32, {1, cc.x.dim(1), cc.x.dim(2), cc.x.dim(3)}, nullptr},
                                            {DType::kFloat32, cc.w.shape(), &cc.w}};
        if (cc.b.numel() > 0) in.push_back({DType::kFloat32, cc.b.shape(), &cc.b});
        auto p = qpipe::kernels::prepare_conv(n, in, qpipe::PrepareContext{model.path, "reference", model.opset});
        const Shape& ys = p.outputs[0].shape;
        const Shape& ws = cc.w.shape();
        cc.macs_per_image = ys[1] * ys[2] * ys[3] * ws[1] * ws[2] * ws[3];
        const auto strides = n.attr_ints("strides", {1, 1});
        cc.label = fmt::format("{} {}->{} {}x{} s{} {}x{}->{}x{}", n.name, ws[1], ws[0], ws[2], ws[3], strides.at(0),
                               cc.x.dim(2), cc.x.dim(3), ys[2], ys[3]);
        c.convs.push_back(std::move(cc));
      }
      for (std::size_t i = 0; i < gemms.size(); ++i) {
        const qpipe::Node& n = *gemms[i];
        GemmCase gc;
        gc.node = n;
        gc.a = acts[convs.size() + i];
        for (std::size_t k = 1; k < n.inputs.size(); ++k)
          gc.consts.push_back(n.inputs[k].empty() ? Tensor() : g.initializers.at(n.inputs[k]));
        const Shape& bs = gc.consts.at(0).shape();
        gc.macs_per_image = bs[0] * bs[1];
        gc.label = fmt::format("{} {} {}x{}", n.name, n.op_type, gc.a.dim(1), n.attr_int("transB", 0) ? bs[0] : bs[1]);
        c.gemms.push_back(std::move(gc));
      }
    } catch (const qpipe::PtqError& e) {
      c.error = e.what();
    }
  });
  return c;
}

// The first `batch` images of t (dim 0).
Tensor first_images(const Tensor& t, int64_t batch) {
  Shape s = t.shape();
  s[0] = batch;
  Tensor out(t.dtype(), s);
  std::memcpy(out.raw(), t.raw(), out.nbytes());
  return out;
}

// What fast/cpu.h selects in this process (QPIPE_FORCE_ISA caps it).
std::string fast_isa() { return qpipe::fast::isa_name(qpipe::fast::select_isa(false)); }

std::string isa_label(bool portable) {
  if (portable) return "portable (im2col+Eigen)";
  return "fast: " + fast_isa();
}

void set_counters(benchmark::State& state, double flops_per_iter, double items_per_iter) {
  const auto iters = static_cast<double>(state.iterations());
  if (flops_per_iter > 0)
    state.counters["GFLOP/s"] = benchmark::Counter(iters * flops_per_iter * 1e-9, benchmark::Counter::kIsRate);
  state.counters["items/s"] = benchmark::Counter(iters * items_per_iter, benchmark::Counter::kIsRate);
}

// The conv case `layer` of the model, or null after marking the benchmark
// skipped (model missing or fewer convs).
const ConvCase* conv_case(benchmark::State& state, const ResNet8Cases& c, int64_t layer) {
  if (!c.error.empty()) {
    state.SkipWithError(("cannot load resnet8.onnx (set QPIPE_SHARED): " + c.error).c_str());
    return nullptr;
  }
  if (layer >= static_cast<int64_t>(c.convs.size())) {
    state.SkipWithError("the model has fewer convs");
    return nullptr;
  }
  return &c.convs[static_cast<std::size_t>(layer)];
}

void run_conv(benchmark::State& state, bool portable) {
  const int64_t layer = state.range(0), batch = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const ResNet8Cases& c = cases();
  const ConvCase* found = conv_case(state, c, layer);
  if (!found) return;
  const ConvCase& cc = *found;
  const Tensor x = first_images(cc.x, batch);
  std::vector<qpipe::ValueDesc> in = {{DType::kFloat32, x.shape(), nullptr}, {DType::kFloat32, cc.w.shape(), &cc.w}};
  if (cc.b.numel() > 0) in.push_back({DType::kFloat32, cc.b.shape(), &cc.b});
  const qpipe::PrepareContext ctx{"resnet8.onnx", "reference", c.opset};
  qpipe::Prepared p = qpipe::kernels::prepare_conv_fused(cc.node, in, ctx, {}, portable);
  Tensor y(DType::kFloat32, p.outputs[0].shape);
  std::vector<const Tensor*> ins = {&x, &cc.w};
  if (cc.b.numel() > 0) ins.push_back(&cc.b);
  Tensor* outs[] = {&y};
  tbb::task_arena arena(threads);
  arena.execute([&] { p.kernel->eval(ins, outs); });  // warm-up (thread-local scratch)
  for (auto _ : state) {
    arena.execute([&] { p.kernel->eval(ins, outs); });
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetLabel(cc.label + " | " + isa_label(portable));
  set_counters(state, 2.0 * static_cast<double>(cc.macs_per_image * batch), static_cast<double>(batch));
}

// The integer-conv geometry of a model conv at `batch` (the float prepare's
// own shape inference gives the output size).
qpipe::reference::ConvParams int_geometry(const ConvCase& cc, int64_t batch, int64_t opset) {
  const Shape xs = {batch, cc.x.dim(1), cc.x.dim(2), cc.x.dim(3)};
  std::vector<qpipe::ValueDesc> in = {{DType::kFloat32, xs, nullptr}, {DType::kFloat32, cc.w.shape(), &cc.w}};
  const qpipe::Prepared fp =
      qpipe::kernels::prepare_conv(cc.node, in, qpipe::PrepareContext{"resnet8.onnx", "reference", opset});
  const Shape& ys = fp.outputs[0].shape;
  const Shape& ws = cc.w.shape();
  const auto strides = cc.node.attr_ints("strides", {1, 1});
  const auto pads = cc.node.attr_ints("pads", {});
  const int64_t sh = strides.at(0), sw = strides.at(1);
  // Leading pads: recover them from the output size when auto_pad is used.
  const int64_t pt = pads.size() == 4 ? pads[0] : std::max<int64_t>(0, ((ys[2] - 1) * sh + ws[2] - xs[2]) / 2);
  const int64_t pl = pads.size() == 4 ? pads[1] : std::max<int64_t>(0, ((ys[3] - 1) * sw + ws[3] - xs[3]) / 2);
  return {batch, xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], sh, sw, 1, 1, pt, pl, ys[2], ys[3]};
}

// Runs an integer conv kernel on synthetic int8 codes [batch, c, h, w].
void time_int_conv(benchmark::State& state, const qpipe::OpKernel& kernel, const qpipe::reference::ConvParams& g,
                   int threads, const ConvCase& cc, const std::string& path) {
  std::mt19937 gen(13);
  Tensor x(DType::kInt8, {g.n, g.c, g.h, g.w});
  for (int8_t& v : x.span<int8_t>()) v = static_cast<int8_t>(static_cast<int>(gen() & 0xff) - 128);
  Tensor y(DType::kInt8, {g.n, g.m, g.out_h, g.out_w});
  const Tensor* ins[] = {&x};
  Tensor* outs[] = {&y};
  tbb::task_arena arena(threads);
  arena.execute([&] { kernel.eval(ins, outs); });
  for (auto _ : state) {
    arena.execute([&] { kernel.eval(ins, outs); });
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetLabel(cc.label + " | " + path);
  set_counters(state, 2.0 * static_cast<double>(cc.macs_per_image * g.n), static_cast<double>(g.n));
}

std::vector<int8_t> random_weights(int64_t n) {
  std::mt19937 gen(11);
  std::vector<int8_t> w(static_cast<std::size_t>(n));
  for (auto& v : w) v = static_cast<int8_t>(static_cast<int>(gen() % 255) - 127);
  return w;
}

// The ort-avx2 QLinearConv (scalar emulation of ORT's AVX2 kernel) on the
// conv's geometry, synthetic codes, a typical requantization multiplier.
void run_qlinear_conv(benchmark::State& state) {
  const int64_t layer = state.range(0), batch = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const ResNet8Cases& c = cases();
  const ConvCase* found = conv_case(state, c, layer);
  if (!found) return;
  const ConvCase& cc = *found;
  qpipe::integer::QLinearConvParams qp;
  qp.p = int_geometry(cc, batch, c.opset);
  qp.w = random_weights(cc.w.numel());
  qp.bias.assign(static_cast<std::size_t>(qp.p.m), 100);
  qp.zp_x = 128;
  qp.zp_y = 128;
  qp.multiplier.assign(static_cast<std::size_t>(qp.p.m), 1.0f / 4096.f);
  const qpipe::reference::ConvParams g = qp.p;
  auto kernel = qpipe::integer::make_qlinear_conv(std::move(qp));
  time_int_conv(state, *kernel, g, threads, cc, "ort-avx2 integer (scalar, int16 pairs)");
}

// The exact-mode integer conv (engine/integer/exact.h): the best ISA this
// CPU has (fast) or scalar (portable).
void run_exact_conv(benchmark::State& state, bool portable) {
  const int64_t layer = state.range(0), batch = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  const ResNet8Cases& c = cases();
  const ConvCase* found = conv_case(state, c, layer);
  if (!found) return;
  const ConvCase& cc = *found;
  qpipe::integer::ExactConvParams ep;
  ep.p = int_geometry(cc, batch, c.opset);
  const std::vector<int8_t> w = random_weights(cc.w.numel());
  ep.w.assign(reinterpret_cast<const uint8_t*>(w.data()), reinterpret_cast<const uint8_t*>(w.data()) + w.size());
  ep.zp_w.assign(static_cast<std::size_t>(ep.p.m), 0);
  ep.bias.assign(static_cast<std::size_t>(ep.p.m), 100);
  ep.multiplier.assign(static_cast<std::size_t>(ep.p.m), 1.0f / 4096.f);
  ep.out.relu = true;
  const qpipe::integer::ExactIsa isa = qpipe::integer::exact_best_isa(portable);
  const qpipe::reference::ConvParams g = ep.p;
  auto kernel = qpipe::integer::make_exact_conv(std::move(ep), isa);
  if (!kernel) return state.SkipWithError("make_exact_conv: int32 sums could overflow for this shape");
  time_int_conv(state, *kernel, g, threads, cc,
                std::string("exact integer ") + (portable ? "portable: " : "fast: ") + qpipe::integer::exact_isa_name(isa));
}

void run_gemm(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const ResNet8Cases& c = cases();
  if (!c.error.empty()) return state.SkipWithError(("cannot load resnet8.onnx (set QPIPE_SHARED): " + c.error).c_str());
  if (c.gemms.empty()) return state.SkipWithError("the model has no MatMul/Gemm");
  const GemmCase& gc = c.gemms.back();
  const Tensor a = first_images(gc.a, batch);
  std::vector<qpipe::ValueDesc> in = {{DType::kFloat32, a.shape(), nullptr}};
  std::vector<const Tensor*> ins = {&a};
  for (const auto& t : gc.consts) {
    in.push_back({t.dtype(), t.shape(), &t});
    ins.push_back(&t);
  }
  const qpipe::PrepareContext ctx{"resnet8.onnx", "reference", c.opset};
  qpipe::Prepared p = gc.node.op_type == "Gemm" ? qpipe::kernels::prepare_gemm(gc.node, in, ctx)
                                                : qpipe::kernels::prepare_matmul(gc.node, in, ctx);
  Tensor y(DType::kFloat32, p.outputs[0].shape);
  Tensor* outs[] = {&y};
  tbb::task_arena arena(threads);
  for (auto _ : state) {
    arena.execute([&] { p.kernel->eval(ins, outs); });
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetLabel(gc.label + " | one path (scalar rows; same on fast and portable)");
  set_counters(state, 2.0 * static_cast<double>(gc.macs_per_image * batch), static_cast<double>(batch));
}

// Activation-sized tensor [batch, 16, 32, 32] of conv-like values.
Tensor activation(int64_t batch) {
  Tensor t(DType::kFloat32, {batch, 16, 32, 32});
  std::mt19937 gen(5);
  std::normal_distribution<float> dist(0.f, 2.f);
  for (float& v : t.span<float>()) v = dist(gen);
  return t;
}

qpipe::Node qdq_node(const std::string& op) {
  qpipe::Node n;
  n.name = op == "QuantizeLinear" ? "bench_q" : "bench_dq";
  n.op_type = op;
  n.inputs = {"x", "scale", "zero_point"};
  n.outputs = {"y"};
  return n;
}

constexpr float kScale = 0.05f;

void run_quantize(benchmark::State& state, bool dequantize) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const Tensor f = activation(batch);
  const Tensor scale = Tensor::scalar<float>(kScale);
  const Tensor zp = Tensor::scalar<int8_t>(3);
  Tensor q(DType::kInt8, f.shape());
  const std::vector<qpipe::ValueDesc> qin = {{DType::kFloat32, f.shape(), nullptr},
                                             {DType::kFloat32, {}, &scale},
                                             {DType::kInt8, {}, &zp}};
  const qpipe::PrepareContext ctx{"", "reference", 13};
  auto qk = qpipe::kernels::prepare_quantize_linear(qdq_node("QuantizeLinear"), qin, ctx);
  {
    const Tensor* ins[] = {&f, &scale, &zp};
    Tensor* outs[] = {&q};
    qk.kernel->eval(ins, outs);
  }
  Tensor y(dequantize ? DType::kFloat32 : DType::kInt8, f.shape());
  qpipe::Prepared p;
  const Tensor* ins[3];
  if (dequantize) {
    const std::vector<qpipe::ValueDesc> din = {{DType::kInt8, q.shape(), nullptr},
                                               {DType::kFloat32, {}, &scale},
                                               {DType::kInt8, {}, &zp}};
    p = qpipe::kernels::prepare_dequantize_linear(qdq_node("DequantizeLinear"), din, ctx);
    ins[0] = &q;
  } else {
    p = std::move(qk);
    ins[0] = &f;
  }
  ins[1] = &scale;
  ins[2] = &zp;
  Tensor* outs[] = {&y};
  tbb::task_arena arena(threads);
  for (auto _ : state) {
    arena.execute([&] { p.kernel->eval(ins, outs); });
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetLabel(fmt::format("int8 per-tensor [{},16,32,32] | one path (scalar)", batch));
  set_counters(state, 0, static_cast<double>(f.numel()));
}

// The fused QuantizeLinear->DequantizeLinear round trip of fast/epilogue.h.
void run_qdq_epilogue(benchmark::State& state, bool portable) {
  const int64_t batch = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  const Tensor x = activation(batch);
  Tensor y(DType::kFloat32, x.shape());
  qpipe::fast::Epilogue ep;
  qpipe::fast::EpilogueOp op;
  op.kind = qpipe::fast::EpilogueOp::Kind::kQdq;
  op.a.assign(16, kScale);
  op.z.assign(16, 3.f);
  op.lo = -128;
  op.hi = 127;
  ep.ops.push_back(op);
  auto kernel = qpipe::kernels::make_epilogue_kernel(ep, x.shape(), portable);
  const Tensor* ins[] = {&x};
  Tensor* outs[] = {&y};
  tbb::task_arena arena(threads);
  for (auto _ : state) {
    arena.execute([&] { kernel->eval(ins, outs); });
    benchmark::DoNotOptimize(y.raw());
  }
  state.SetLabel(fmt::format("Q->DQ int8 [{},16,32,32] | {}", batch,
                             portable ? "portable (scalar)" : "fast: " + fast_isa()));
  set_counters(state, 0, static_cast<double>(x.numel()));
}

void conv_args(benchmark::internal::Benchmark* b) {
  for (int64_t layer = 0; layer < 9; ++layer)
    for (auto [batch, threads] : {std::pair<int64_t, int64_t>{1, 1}, {256, 1}, {256, 2}})
      b->Args({layer, batch, threads});
  b->ArgNames({"conv", "batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void tensor_args(benchmark::internal::Benchmark* b) {
  for (auto [batch, threads] : {std::pair<int64_t, int64_t>{1, 1}, {256, 1}, {256, 2}}) b->Args({batch, threads});
  b->ArgNames({"batch", "threads"})->UseRealTime()->Unit(benchmark::kMicrosecond);
}

void BM_Conv_fast(benchmark::State& s) { run_conv(s, false); }
void BM_Conv_portable(benchmark::State& s) { run_conv(s, true); }
void BM_QLinearConv_ort_avx2(benchmark::State& s) { run_qlinear_conv(s); }
void BM_ExactConv_fast(benchmark::State& s) { run_exact_conv(s, false); }
void BM_ExactConv_portable(benchmark::State& s) { run_exact_conv(s, true); }
void BM_Gemm(benchmark::State& s) { run_gemm(s); }
void BM_QuantizeLinear(benchmark::State& s) { run_quantize(s, false); }
void BM_DequantizeLinear(benchmark::State& s) { run_quantize(s, true); }
void BM_QdqEpilogue_fast(benchmark::State& s) { run_qdq_epilogue(s, false); }
void BM_QdqEpilogue_portable(benchmark::State& s) { run_qdq_epilogue(s, true); }

BENCHMARK(BM_Conv_fast)->Apply(conv_args);
BENCHMARK(BM_Conv_portable)->Apply(conv_args);
BENCHMARK(BM_QLinearConv_ort_avx2)->Apply(conv_args);
BENCHMARK(BM_ExactConv_fast)->Apply(conv_args);
BENCHMARK(BM_ExactConv_portable)->Apply(conv_args);
BENCHMARK(BM_Gemm)->Apply(tensor_args);
BENCHMARK(BM_QuantizeLinear)->Apply(tensor_args);
BENCHMARK(BM_DequantizeLinear)->Apply(tensor_args);
BENCHMARK(BM_QdqEpilogue_fast)->Apply(tensor_args);
BENCHMARK(BM_QdqEpilogue_portable)->Apply(tensor_args);

}  // namespace
