// Relu, Clip (attribute form, opset < 11, and input form, opset >= 11) and
// Softmax (axis, opset-13 single-axis vs legacy 2-D coercion) against float64
// references written here.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/fixtures/kernel_runner.h"

namespace qpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::f32;
using testing::KernelRunner;
using testing::Rng;

std::vector<float> values(const Tensor& t) { return {t.span<float>().begin(), t.span<float>().end()}; }

TEST(ActivationKernel, ReluGoldenAndSweep) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor y = KernelRunner("Relu").input("X", f32({6}, std::vector<float>{-1.5f, -0.f, 0.f, 2.f, -inf, inf})).run1();
  EXPECT_THAT(values(y), ElementsAre(0.f, 0.f, 0.f, 2.f, 0.f, inf));
  Rng rng(11);
  Tensor x = rng.tensor({7, 13, 3, 5}, -3.f, 3.f);
  Tensor r = KernelRunner("Relu").batched_input("X", x).run1();
  std::vector<double> ref;
  for (float v : x.span<float>()) ref.push_back(v > 0 ? v : 0.0);
  EXPECT_TRUE(testing::close_to_reference(r, ref, 0.0, "Relu [7,13,3,5]"));
}

TEST(ActivationKernel, ClipAttributeFormOpset6) {
  Tensor y = KernelRunner("Clip")
                 .opset(6)
                 .input("X", f32({5}, std::vector<float>{-10, -1, 0.5f, 6, 7}))
                 .attr("min", 0.f)
                 .attr("max", 6.f)
                 .run1();
  EXPECT_THAT(values(y), ElementsAre(0.f, 0.f, 0.5f, 6.f, 6.f));
  // Only max given: min defaults to -inf.
  Tensor m = KernelRunner("Clip").opset(6).input("X", f32({3}, std::vector<float>{-10, 1, 9})).attr("max", 2.f).run1();
  EXPECT_THAT(values(m), ElementsAre(-10.f, 1.f, 2.f));
}

TEST(ActivationKernel, ClipInputFormOpset13) {
  const Tensor x = f32({2, 3}, std::vector<float>{-3, -0.25f, 0, 0.25f, 1, 3});
  Tensor both = KernelRunner("Clip")
                    .input("X", x)
                    .constant("lo", Tensor::scalar<float>(-0.5f))
                    .constant("hi", Tensor::scalar<float>(0.5f))
                    .run1();
  EXPECT_THAT(values(both), ElementsAre(-0.5f, -0.25f, 0.f, 0.25f, 0.5f, 0.5f));
  Tensor only_max = KernelRunner("Clip").input("X", x).omitted().constant("hi", Tensor::scalar<float>(0.f)).run1();
  EXPECT_THAT(values(only_max), ElementsAre(-3.f, -0.25f, 0.f, 0.f, 0.f, 0.f));
  Tensor only_min = KernelRunner("Clip").input("X", x).constant("lo", Tensor::scalar<float>(0.f)).run1();
  EXPECT_THAT(values(only_min), ElementsAre(0.f, 0.f, 0.f, 0.25f, 1.f, 3.f));
  Tensor none = KernelRunner("Clip").input("X", x).run1();
  EXPECT_THAT(values(none), ElementsAre(-3.f, -0.25f, 0.f, 0.25f, 1.f, 3.f));
}

TEST(ActivationKernel, ClipMinAboveMaxGivesMax) {
  // Spec: "When 'min' is greater than 'max', the clip operator sets all the
  // 'input' values to the value of 'max'" (ONNX Runtime 1.30 agrees).
  Tensor y = KernelRunner("Clip")
                 .input("X", f32({5}, std::vector<float>{0, 1, 1.5f, 2, 3}))
                 .constant("lo", Tensor::scalar<float>(2.f))
                 .constant("hi", Tensor::scalar<float>(1.f))
                 .run1();
  EXPECT_THAT(values(y), ElementsAre(1.f, 1.f, 1.f, 1.f, 1.f));
}

TEST(ActivationKernel, ClipWithRuntimeBoundIsRefused) {
  try {
    KernelRunner("Clip", "clip_dynamic")
        .input("X", f32({2}, std::vector<float>{1, 2}))
        .input("lo", Tensor::scalar<float>(0.f))
        .run1();
    FAIL() << "a runtime Clip bound was accepted";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_THAT(e.what(), HasSubstr("clip_dynamic"));
    EXPECT_THAT(e.what(), HasSubstr("'lo'"));
  }
}

// softmax over `extent` elements spaced `inner` apart, for every (outer, inner).
std::vector<double> softmax_reference(const Tensor& x, int64_t outer, int64_t extent, int64_t inner) {
  std::vector<double> y(static_cast<std::size_t>(x.numel()));
  const float* p = x.data<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      double sum = 0;
      for (int64_t k = 0; k < extent; ++k) sum += std::exp(static_cast<double>(p[(o * extent + k) * inner + i]));
      for (int64_t k = 0; k < extent; ++k) {
        const int64_t idx = (o * extent + k) * inner + i;
        y[static_cast<std::size_t>(idx)] = std::exp(static_cast<double>(p[idx])) / sum;
      }
    }
  return y;
}

TEST(ActivationKernel, SoftmaxGolden) {
  // softmax([0, ln 3]) = [1/4, 3/4] (up to ln 3's float32 rounding); a large
  // shift (1000, 1001) must not overflow exp and gives [1/(1+e), e/(1+e)].
  const float ln3 = std::log(3.f);
  Tensor y = KernelRunner("Softmax").input("X", f32({2, 2}, std::vector<float>{0.f, ln3, 1000.f, 1001.f})).run1();
  const double e = std::exp(1.0);
  EXPECT_TRUE(testing::close_to_reference(
      y, {1 / (1 + std::exp(double{ln3})), 1 / (1 + 1 / std::exp(double{ln3})), 1 / (1 + e), e / (1 + e)}, 1e-6,
      "softmax golden"));
}

TEST(ActivationKernel, SoftmaxAxisSweep) {
  Rng rng(12);
  Tensor x = rng.tensor({3, 4, 5}, -6.f, 6.f);
  struct Case {
    int64_t opset;
    int64_t axis;  // 99 = attribute absent
    int64_t outer, extent, inner;
  };
  // opset 13: one axis; opset 11: coerced to 2-D at axis, normalised over the trailing block.
  const std::vector<Case> cases = {
      {13, 99, 12, 5, 1}, {13, -1, 12, 5, 1}, {13, 2, 12, 5, 1}, {13, 1, 3, 4, 5},
      {13, 0, 1, 3, 20},  {13, -3, 1, 3, 20}, {11, 99, 3, 20, 1}, {11, 2, 12, 5, 1},
      {11, 0, 1, 60, 1},
  };
  for (const Case& c : cases) {
    KernelRunner r("Softmax");
    r.opset(c.opset).batched_input("X", x);
    if (c.axis != 99) r.attr("axis", c.axis);
    Tensor y = r.run1();
    EXPECT_EQ(y.shape(), x.shape());
    EXPECT_TRUE(testing::close_to_reference(y, softmax_reference(x, c.outer, c.extent, c.inner), 1e-6,
                                            fmt::format("Softmax opset {} axis {}", c.opset, c.axis)));
  }
}

}  // namespace
}  // namespace qpipe
