// The ort-avx2 kernels on tiny hand-checked cases (int16 pair saturation,
// zero-point padding, requantization ties, integer pooling, softmax table),
// and on the study's int8 model (needs ../shared): ONNX Runtime's published
// 8558/10000 (see the note in the test).

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include "engine/evaluate.h"
#include "engine/graph.h"
#include "engine/integer/ort_avx2.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "tests/test_support.h"

namespace qpipe::integer {
namespace {

Tensor codes(Shape s, std::vector<int8_t> v) { return Tensor::from<int8_t>(std::move(s), v); }

int8_t run1(const OpKernel& k, const Tensor& x, Shape out_shape) {
  Tensor y(DType::kInt8, std::move(out_shape));
  const Tensor* in[] = {&x};
  Tensor* out[] = {&y};
  k.eval(in, out);
  return y.data<int8_t>()[0];
}

QLinearConvParams one_output_conv(std::vector<int8_t> w, bool saturate) {
  QLinearConvParams q;
  // 1x1 output from a 2-channel 1x2 input with a 1x2 kernel: K = (kw, c) = 4.
  q.p = {1, 2, 1, 2, 1, 1, 2, 1, 1, 1, 1, 0, 0, 1, 1};
  q.w = std::move(w);
  q.bias = {0};
  q.zp_x = 0;
  q.zp_y = 0;
  q.multiplier = {1.f / 256.f};
  q.saturate = saturate;
  return q;
}

TEST(OrtAvx2Kernels, PairSumsSaturateToInt16InKhKwCOrder) {
  // x (u8) = 255 everywhere (s8 code 127); weights [m][c][kh][kw] = c0: {100, 1}, c1: {100, 1}.
  // (kh, kw, c) order pairs (kw0 c0, kw0 c1) = 255*100 + 255*100 = 51000 -> 32767, and
  // (kw1 c0, kw1 c1) = 510: acc = 33277 saturated vs 51510 exact.
  const Tensor x = codes({1, 2, 1, 2}, {127, 127, 127, 127});
  auto sat = make_qlinear_conv(one_output_conv({100, 1, 100, 1}, true));
  auto exact = make_qlinear_conv(one_output_conv({100, 1, 100, 1}, false));
  // y = clamp(round(acc / 256), 0, 255) - 128.
  EXPECT_EQ(run1(*sat, x, {1, 1, 1, 1}), static_cast<int8_t>(130 - 128));   // 33277/256 = 129.99 -> 130
  EXPECT_EQ(run1(*exact, x, {1, 1, 1, 1}), static_cast<int8_t>(201 - 128)); // 51510/256 = 201.2 -> 201
}

TEST(OrtAvx2Kernels, RequantizationRoundsHalfToEven) {
  // acc = 255 * 1 + 255 * 1 + ... choose acc = 384 = 1.5 * 256 -> 2; acc = 640 = 2.5 * 256 -> 2.
  const Tensor x = codes({1, 2, 1, 2}, {-128 + 128, -128, -128 + 128, -128 + 128});  // u8 128, 0, 128, 128
  auto k1 = make_qlinear_conv(one_output_conv({1, 0, 1, 1}, true));  // 128*1 + 0 + 128*1 + 128*1 = 384
  EXPECT_EQ(run1(*k1, x, {1, 1, 1, 1}), static_cast<int8_t>(2 - 128));
  auto k2 = make_qlinear_conv(one_output_conv({2, 0, 1, 2}, true));  // 256 + 0 + 128 + 256 = 640
  EXPECT_EQ(run1(*k2, x, {1, 1, 1, 1}), static_cast<int8_t>(2 - 128));
}

TEST(OrtAvx2Kernels, GlobalAveragePoolSumsIntegers) {
  // Planes of 4 u8 values: 1,2,2,1 -> 6/4 = 1.5 -> 2 (even); 1,1,1,2 -> 1.25 -> 1; 3,3,3,4 -> 3.25 -> 3.
  const Tensor x = codes({1, 3, 2, 2}, {1 - 128, 2 - 128, 2 - 128, 1 - 128, 1 - 128, 1 - 128, 1 - 128, 2 - 128,
                                        3 - 128, 3 - 128, 3 - 128, 4 - 128});
  auto k = make_qlinear_global_avgpool(4, 0, 0, 0.5f, 0.5f);
  Tensor y(DType::kInt8, {1, 3, 1, 1});
  const Tensor* in[] = {&x};
  Tensor* out[] = {&y};
  k->eval(in, out);
  EXPECT_EQ(y.data<int8_t>()[0] + 128, 2);
  EXPECT_EQ(y.data<int8_t>()[1] + 128, 1);
  EXPECT_EQ(y.data<int8_t>()[2] + 128, 3);
}

TEST(OrtAvx2Kernels, SoftmaxFromLookupTable) {
  // Equal inputs share the probability: 1/3 each -> (t*255 + S/2) / S = 85.
  const Tensor x = codes({1, 3}, {0, 0, 0});
  auto k = make_qlinear_softmax(3, 0.1f, 1.f / 255.f, 0);
  Tensor y(DType::kInt8, {1, 3});
  const Tensor* in[] = {&x};
  Tensor* out[] = {&y};
  k->eval(in, out);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(y.data<int8_t>()[i] + 128, 85);
}

// ../shared/reference/ort_fused_int8_numerics.md: ORT 1.30 at its default level
// gives 8558/10000 (dog 0.680), exact arithmetic 8613. qpipe's emulation
// reproduces both exactly: the fused groups in integer arithmetic, and the
// convs ORT leaves unfused in MLAS's float32 summation order
// (engine/kernels/ort_order_conv.h; with qpipe's own order it was 8559, dog
// 0.681 — one image decided by float32 rounding).
TEST(OrtAvx2Model, ReproducesOrtDefaultAccuracyExactly) {
  QPIPE_REQUIRE_SHARED(shared);
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  SessionOptions so;
  so.exec_mode = "ort-avx2";
  Session s(load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx"), so);
  tbb::task_arena arena(2);
  EvalResult r;
  arena.execute([&] { r = evaluate(s, ds); });
  EXPECT_EQ(r.correct, 8558);
  EXPECT_EQ(r.class_correct[5], 680);
  // Blocking nothing vs the reference: the conv2d saturation must be visible.
  EXPECT_LT(r.correct, 8600);
}

}  // namespace
}  // namespace qpipe::integer
