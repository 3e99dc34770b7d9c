// Add/Sub/Mul/Div with numpy broadcasting. For float32 inputs a single IEEE
// operation is correctly rounded, and the float64 result of +,-,*,/ on two
// float32 values rounds to the same float32 (53 >= 2*24 + 2), so the golden
// here is float(a op b) computed in double and the comparison is exact.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
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

double apply(const std::string& op, double a, double b) {
  if (op == "Add") return a + b;
  if (op == "Sub") return a - b;
  if (op == "Mul") return a * b;
  return a / b;
}

// Numpy broadcasting written out: output index -> input index per operand.
std::vector<double> broadcast_reference(const std::string& op, const Tensor& a, const Tensor& b, Shape* out_shape,
                                        bool round_to_float = true) {
  const std::size_t r = std::max(a.rank(), b.rank());
  auto padded = [r](const Shape& s) {
    Shape p(r - s.size(), 1);
    p.insert(p.end(), s.begin(), s.end());
    return p;
  };
  const Shape pa = padded(a.shape()), pb = padded(b.shape());
  Shape out(r);
  for (std::size_t i = 0; i < r; ++i) out[i] = std::max(pa[i], pb[i]);
  *out_shape = out;
  const int64_t n = shape_numel(out);
  std::vector<double> y(static_cast<std::size_t>(n));
  for (int64_t flat = 0; flat < n; ++flat) {
    int64_t rem = flat, ia = 0, ib = 0, sa = 1, sb = 1;
    for (std::size_t d = r; d-- > 0;) {
      const int64_t idx = rem % out[d];
      rem /= out[d];
      ia += (pa[d] == 1 ? 0 : idx) * sa;
      ib += (pb[d] == 1 ? 0 : idx) * sb;
      sa *= pa[d];
      sb *= pb[d];
    }
    const double v = apply(op, a.data<float>()[ia], b.data<float>()[ib]);
    y[static_cast<std::size_t>(flat)] = round_to_float ? static_cast<double>(static_cast<float>(v)) : v;
  }
  return y;
}

TEST(BinaryElementwiseKernel, InlineGoldens) {
  const Tensor a = f32({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  const Tensor b = f32({3}, std::vector<float>{10, 20, 40});
  auto run = [&](const char* op) {
    Tensor y = KernelRunner(op).input("A", a).input("B", b).run1();
    EXPECT_EQ(y.shape(), (Shape{2, 3}));
    return std::vector<float>(y.span<float>().begin(), y.span<float>().end());
  };
  EXPECT_THAT(run("Add"), ElementsAre(11, 22, 43, 14, 25, 46));
  EXPECT_THAT(run("Sub"), ElementsAre(-9, -18, -37, -6, -15, -34));
  EXPECT_THAT(run("Mul"), ElementsAre(10, 40, 120, 40, 100, 240));
  EXPECT_THAT(run("Div"), ElementsAre(0.1f, 0.1f, 0.075f, 0.4f, 0.25f, 0.15f));
}

struct BroadcastCase {
  std::string name;
  Shape a, b;
  bool b_constant;
};

class BinaryBroadcast : public ::testing::TestWithParam<std::tuple<std::string, BroadcastCase>> {};

TEST_P(BinaryBroadcast, MatchesFloat64Reference) {
  const auto& [op, c] = GetParam();
  Rng rng(4242u + static_cast<uint32_t>(shape_numel(c.a) * 7 + shape_numel(c.b)));
  Tensor a = rng.tensor(c.a, -3.f, 3.f);
  Tensor b = rng.tensor(c.b, 0.5f, 2.f);  // away from 0 so Div is finite
  for (auto& v : b.span<float>())
    if (rng.integer(0, 1)) v = -v;
  Shape out;
  const std::vector<double> ref = broadcast_reference(op, a, b, &out);
  KernelRunner r(op, op + "_" + c.name);
  r.input("A", a);
  if (c.b_constant) r.constant("B", b);
  else r.input("B", b);
  Tensor y = r.run1();
  ASSERT_EQ(y.shape(), out) << c.name;
  const std::string params = fmt::format("{} {} x {}", op, shape_str(c.a), shape_str(c.b));
  EXPECT_TRUE(testing::close_to_reference(y, ref, 0.0, params));

  // float64 mode: double arithmetic on the widened inputs, no float rounding.
  SessionOptions o64;
  o64.float64 = true;
  Tensor y64 = r.run1(o64);
  EXPECT_EQ(y64.dtype(), DType::kFloat64);
  const std::vector<double> ref64 = broadcast_reference(op, a, b, &out, /*round_to_float=*/false);
  EXPECT_TRUE(testing::close_to_reference(y64, ref64, 0.0, params + " (float64 mode)"));
}

std::vector<BroadcastCase> broadcast_cases() {
  return {
      {"nchw_with_c11", {2, 3, 4, 5}, {3, 1, 1}, true},
      {"nchw_with_c11_runtime", {7, 13, 3, 3}, {13, 1, 1}, false},
      {"nchw_with_1c11", {2, 3, 4, 5}, {1, 3, 1, 1}, true},
      {"nchw_with_scalar", {2, 3, 4, 5}, {}, true},
      {"nchw_with_one", {2, 3, 4, 5}, {1}, true},
      {"nchw_with_last_axis", {2, 3, 4, 5}, {5}, true},
      {"same_shape", {7, 13, 5}, {7, 13, 5}, false},
      {"two_sided", {2, 1, 4, 5}, {3, 1, 1}, false},
      {"two_sided_rank2", {4, 1}, {1, 6}, false},
      {"rank1", {17}, {17}, false},
      {"scalar_scalar", {}, {}, false},
  };
}

INSTANTIATE_TEST_SUITE_P(Shapes, BinaryBroadcast,
                         ::testing::Combine(::testing::Values("Add", "Sub", "Mul", "Div"),
                                            ::testing::ValuesIn(broadcast_cases())),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_" + std::get<1>(info.param).name;
                         });

TEST(BinaryElementwiseKernel, SmallerOperandFirstKeepsOperandOrder) {
  // [C,1,1] - [N,C,H,W] and [C,1,1] / [N,C,H,W]: the broadcast operand is A.
  Rng rng(99);
  Tensor a = rng.tensor({3, 1, 1}, 1.f, 2.f), b = rng.tensor({2, 3, 2, 2}, 1.f, 2.f);
  for (const char* op : {"Sub", "Div"}) {
    Shape out;
    auto ref = broadcast_reference(op, a, b, &out);
    Tensor y = KernelRunner(op).constant("A", a).input("B", b).run1();
    ASSERT_EQ(y.shape(), out);
    EXPECT_TRUE(testing::close_to_reference(y, ref, 0.0, op));
  }
}

TEST(BinaryElementwiseKernel, IncompatibleShapesNameNodeAndShapes) {
  Rng rng(3);
  try {
    KernelRunner("Add", "bad_add").input("A", rng.tensor({2, 3})).input("B", rng.tensor({4})).run1();
    FAIL() << "[2,3] + [4] was accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad_add"));
    EXPECT_THAT(e.what(), HasSubstr("[2,3]"));
    EXPECT_THAT(e.what(), HasSubstr("[4]"));
  }
}

}  // namespace
}  // namespace qpipe
