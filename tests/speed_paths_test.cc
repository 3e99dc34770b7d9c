// Whole-model checks of the fast paths on ResNet8 (needs ../shared):
//  - fused vs unfused plans: bit-identical outputs (FP32 and the QDQ model
//    under reference semantics), on the first 1000 test images;
//  - AVX2 vs portable kernels: FP32 softmax within 1e-5, accuracy 8719 on both;
//  - taps of fused-away tensors equal the unfused values;
//  - batch size and thread count never change a bit.

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cstring>

#include "engine/evaluate.h"
#include "engine/graph.h"
#include "engine/io/cifar10.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/session.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

struct Shared {
  std::string models, data;
};

Tensor slice(const Tensor& t, int64_t first, int64_t count) {
  Shape s = t.shape();
  const int64_t row = t.numel() / s[0];
  s[0] = count;
  Tensor out(t.dtype(), s);
  std::memcpy(out.raw(), static_cast<const char*>(t.raw()) + first * row * 4, out.nbytes());
  return out;
}

void expect_identical(const Tensor& a, const Tensor& b, const std::string& what) {
  ASSERT_EQ(a.shape(), b.shape()) << what;
  ASSERT_EQ(0, std::memcmp(a.raw(), b.raw(), a.nbytes())) << what << ": fused and unfused results differ";
}

std::vector<Tensor> run_all(const Session& s, const Tensor& images, int64_t batch, int threads,
                            const std::vector<std::string>& fetch) {
  std::vector<Tensor> parts;
  tbb::task_arena arena(threads);
  for (int64_t i = 0; i < images.dim(0); i += batch) {
    const int64_t n = std::min(batch, images.dim(0) - i);
    arena.execute([&] {
      auto r = s.run({{s.input_name(), slice(images, i, n)}}, fetch);
      parts.insert(parts.end(), r.begin(), r.end());
    });
  }
  // Concatenate per fetched tensor.
  std::vector<Tensor> out;
  for (std::size_t f = 0; f < fetch.size(); ++f) {
    Shape shp = parts[f].shape();
    shp[0] = images.dim(0);
    Tensor t(parts[f].dtype(), shp);
    std::size_t off = 0;
    for (std::size_t p = f; p < parts.size(); p += fetch.size()) {
      std::memcpy(static_cast<char*>(t.raw()) + off, parts[p].raw(), parts[p].nbytes());
      off += parts[p].nbytes();
    }
    out.push_back(t);
  }
  return out;
}

TEST(SpeedPaths, FusedEqualsUnfusedBitForBit) {
  QPIPE_REQUIRE_SHARED(shared);
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  const Tensor images = ds.read_batch(0, 1000).images;
  for (const char* file : {"resnet8.onnx", "resnet8_int8_ort_reference.onnx"}) {
    for (bool portable : {false, true}) {
      const Model m = load_onnx(shared + "/models/" + file);
      SessionOptions fused, unfused;
      fused.force_portable = unfused.force_portable = portable;
      unfused.fuse = false;
      Session a(m, fused), b(m, unfused);
      const std::vector<std::string> out = m.graph.outputs;
      auto ya = run_all(a, images, 256, 2, out);
      auto yb = run_all(b, images, 256, 2, out);
      expect_identical(ya[0], yb[0], std::string(file) + (portable ? " portable" : " avx2"));
      EXPECT_EQ(argmax_rows(ya[0]), argmax_rows(yb[0]));
    }
  }
}

TEST(SpeedPaths, TapsOfFusedTensorsSeeUnfusedValues) {
  QPIPE_REQUIRE_SHARED(shared);
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  const Tensor images = ds.read_batch(0, 64).images;
  const Model m = load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx");
  SessionOptions unfused;
  unfused.fuse = false;
  Session a(m), b(m, unfused);
  // Intermediates inside fused chains (conv output, BN Mul, a Q code tensor).
  const std::vector<std::string> taps = {"conv2d", "batch_normalization/mul", "conv2d_2_q", "activation_2_dq", "dense_dq"};
  auto ta = a.run({{a.input_name(), images}}, taps);
  auto tb = b.run({{b.input_name(), images}}, taps);
  for (std::size_t i = 0; i < taps.size(); ++i) expect_identical(ta[i], tb[i], taps[i]);
  // And the plain output is unchanged by having fetched taps before.
  expect_identical(a.run(images)[0], b.run(images)[0], "output after taps");
}

TEST(SpeedPaths, BatchAndThreadsNeverChangeABit) {
  QPIPE_REQUIRE_SHARED(shared);
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  const Tensor images = ds.read_batch(0, 21).images;
  for (const char* file : {"resnet8.onnx", "resnet8_int8_ort_reference.onnx"}) {
    const Model m = load_onnx(shared + "/models/" + file);
    Session s(m);
    const auto ref = run_all(s, images, 21, 1, m.graph.outputs);
    for (int64_t batch : {1, 7, 16})
      for (int threads : {1, 2}) {
        const auto y = run_all(s, images, batch, threads, m.graph.outputs);
        expect_identical(ref[0], y[0], std::string(file) + " batch " + std::to_string(batch) + " threads " +
                                           std::to_string(threads));
      }
  }
}

TEST(SpeedPaths, Avx2AndPortableAgreeAndScore8719) {
  QPIPE_REQUIRE_SHARED(shared);
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  const Model m = load_onnx(shared + "/models/resnet8.onnx");
  SessionOptions portable;
  portable.force_portable = true;
  Session fast(m), slow(m, portable);
  const Tensor images = ds.read_batch(0, 500).images;
  const Tensor a = fast.run(images)[0], b = slow.run(images)[0];
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, static_cast<double>(std::abs(a.data<float>()[i] - b.data<float>()[i])));
  // Documented bound (engine/kernels/fast/conv_direct.h): FMA rounding and
  // summation blocking only; softmax outputs differ by far less than 1e-5.
  EXPECT_LT(worst, 1e-5) << "AVX2 vs portable softmax outputs";
  if (!fast::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2: both sessions ran the portable path";
  tbb::task_arena arena(2);
  EvalResult ra, rb;
  arena.execute([&] {
    ra = evaluate(fast, ds);
    rb = evaluate(slow, ds);
  });
  EXPECT_EQ(ra.correct, 8719);
  EXPECT_EQ(rb.correct, 8719);
}

}  // namespace
}  // namespace qpipe
