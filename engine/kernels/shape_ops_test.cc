// Reshape (-1 and 0, allowzero), Flatten (axis), Identity and Transpose
// (perm, default reversal, any element size): shapes from the ONNX
// definitions, values checked by explicit index arithmetic.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/fixtures/kernel_runner.h"

namespace qpipe {
namespace {

using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::f32;
using testing::i64;
using testing::KernelRunner;
using testing::typed;

Tensor iota_f32(const Shape& s) {
  std::vector<float> v(static_cast<std::size_t>(shape_numel(s)));
  std::iota(v.begin(), v.end(), 0.f);
  return f32(s, v);
}

std::vector<float> values(const Tensor& t) { return {t.span<float>().begin(), t.span<float>().end()}; }

TEST(ShapeOpsKernel, ReshapeWithMinusOneAndZero) {
  const Tensor x = iota_f32({2, 3, 4});
  struct Case {
    std::vector<int64_t> target;
    Shape want;
  };
  for (const Case& c : std::vector<Case>{{{0, -1}, {2, 12}},
                                         {{-1, 4}, {6, 4}},
                                         {{0, 0, 2, 2}, {2, 3, 2, 2}},
                                         {{24}, {24}},
                                         {{-1}, {24}},
                                         {{4, 0, -1}, {4, 3, 2}},
                                         {{1, -1, 1}, {1, 24, 1}}}) {
    Tensor y = KernelRunner("Reshape").input("X", x).constant("shape", i64({static_cast<int64_t>(c.target.size())}, c.target)).run1();
    EXPECT_EQ(y.shape(), c.want) << "target [" << fmt::format("{}", fmt::join(c.target, ",")) << "]";
    EXPECT_EQ(values(y), values(x));
  }
  // The batch dimension kept with 0 follows the runtime batch.
  KernelRunner r("Reshape");
  r.batched_input("X", iota_f32({5, 3, 4})).constant("shape", i64({2}, {0, -1}));
  EXPECT_EQ(r.run1().shape(), (Shape{5, 12}));
  // allowzero=1 without zeros in the target behaves like a plain reshape.
  Tensor z = KernelRunner("Reshape")
                 .input("X", x)
                 .constant("shape", i64({2}, {4, 6}))
                 .attr("allowzero", int64_t{1})
                 .run1();
  EXPECT_EQ(z.shape(), (Shape{4, 6}));
}

TEST(ShapeOpsKernel, ReshapeErrorsNameTheNode) {
  auto expect_error = [](std::vector<int64_t> target, const std::string& what) {
    try {
      KernelRunner("Reshape", "bad_reshape")
          .input("X", iota_f32({2, 3, 4}))
          .constant("shape", i64({static_cast<int64_t>(target.size())}, target))
          .run1();
      ADD_FAILURE() << "accepted target " << fmt::format("{}", fmt::join(target, ","));
    } catch (const PtqError& e) {
      EXPECT_THAT(e.what(), HasSubstr("bad_reshape"));
      EXPECT_THAT(e.what(), HasSubstr(what));
    }
  };
  expect_error({-1, -1}, "more than one -1");
  expect_error({5, -1}, "[2,3,4]");
  expect_error({7, 3}, "[2,3,4]");
  expect_error({0, 0, 0, 0}, "no such axis");
}

TEST(ShapeOpsKernel, FlattenAxes) {
  const Tensor x = iota_f32({2, 3, 4, 5});
  for (auto [axis, want] : std::vector<std::pair<int64_t, Shape>>{
           {0, {1, 120}}, {1, {2, 60}}, {2, {6, 20}}, {3, {24, 5}}, {4, {120, 1}}, {-1, {24, 5}}, {-4, {1, 120}}}) {
    Tensor y = KernelRunner("Flatten").input("X", x).attr("axis", axis).run1();
    EXPECT_EQ(y.shape(), want) << "axis " << axis;
    EXPECT_EQ(values(y), values(x));
  }
  EXPECT_EQ(KernelRunner("Flatten").input("X", x).run1().shape(), (Shape{2, 60})) << "default axis 1";
  EXPECT_THROW(KernelRunner("Flatten").input("X", x).attr("axis", int64_t{5}).run1(), PtqError);
}

TEST(ShapeOpsKernel, IdentityKeepsValuesAndType) {
  const Tensor x = iota_f32({3, 2});
  Tensor y = KernelRunner("Identity").input("X", x).run1();
  EXPECT_EQ(y.shape(), x.shape());
  EXPECT_EQ(values(y), values(x));
  Tensor q = KernelRunner("Identity").input("X", typed<int8_t>({3}, {-128, 0, 127})).run1();
  ASSERT_EQ(q.dtype(), DType::kInt8);
  EXPECT_EQ(q.data<int8_t>()[0], -128);
  EXPECT_EQ(q.data<int8_t>()[2], 127);
}

// y[i0..ir] = x[j] with x index along axis perm[k] = i_k.
template <typename T>
std::vector<T> transpose_reference(const std::vector<T>& x, const Shape& xs, const std::vector<int64_t>& perm) {
  const std::size_t r = xs.size();
  Shape ys(r);
  for (std::size_t k = 0; k < r; ++k) ys[k] = xs[static_cast<std::size_t>(perm[k])];
  std::vector<int64_t> xstride(r, 1);
  for (std::size_t d = r; d-- > 1;) xstride[d - 1] = xstride[d] * xs[d];
  std::vector<T> y(x.size());
  for (int64_t flat = 0; flat < static_cast<int64_t>(y.size()); ++flat) {
    int64_t rem = flat, src = 0;
    for (std::size_t k = r; k-- > 0;) {
      src += (rem % ys[k]) * xstride[static_cast<std::size_t>(perm[k])];
      rem /= ys[k];
    }
    y[static_cast<std::size_t>(flat)] = x[static_cast<std::size_t>(src)];
  }
  return y;
}

TEST(ShapeOpsKernel, TransposePermutations) {
  const Shape xs = {2, 3, 4, 5};
  const Tensor x = iota_f32(xs);
  const std::vector<float> xv = values(x);
  for (const auto& perm : std::vector<std::vector<int64_t>>{
           {0, 3, 1, 2}, {0, 2, 3, 1}, {3, 2, 1, 0}, {1, 0, 2, 3}, {0, 1, 2, 3}, {2, 0, 3, 1}}) {
    Tensor y = KernelRunner("Transpose").batched_input("X", x).attr("perm", perm).run1();
    Shape want(4);
    for (std::size_t k = 0; k < 4; ++k) want[k] = xs[static_cast<std::size_t>(perm[k])];
    EXPECT_EQ(y.shape(), want);
    EXPECT_THAT(values(y), ElementsAreArray(transpose_reference(xv, xs, perm)))
        << "perm " << fmt::format("{}", fmt::join(perm, ","));
  }
  // No perm: reverse the axes.
  Tensor rev = KernelRunner("Transpose").input("X", x).run1();
  EXPECT_EQ(rev.shape(), (Shape{5, 4, 3, 2}));
  EXPECT_THAT(values(rev), ElementsAreArray(transpose_reference(xv, xs, {3, 2, 1, 0})));
  // NHWC -> NCHW on int8 and on a 2-D float64-sized (int64) tensor.
  std::vector<int8_t> q(2 * 3 * 3 * 2);
  for (std::size_t i = 0; i < q.size(); ++i) q[i] = static_cast<int8_t>(i * 7 - 60);
  Tensor tq = KernelRunner("Transpose").input("X", typed<int8_t>({2, 3, 3, 2}, q)).attr("perm", std::vector<int64_t>{0, 3, 1, 2}).run1();
  ASSERT_EQ(tq.dtype(), DType::kInt8);
  EXPECT_THAT(std::vector<int8_t>(tq.span<int8_t>().begin(), tq.span<int8_t>().end()),
              ElementsAreArray(transpose_reference(q, {2, 3, 3, 2}, {0, 3, 1, 2})));
  Tensor t64 = KernelRunner("Transpose").input("X", i64({2, 3}, {1, 2, 3, 4, 5, 6})).run1();
  EXPECT_THAT(std::vector<int64_t>(t64.span<int64_t>().begin(), t64.span<int64_t>().end()),
              ElementsAreArray({1, 4, 2, 5, 3, 6}));
}

TEST(ShapeOpsKernel, TransposeBadPermIsRefused) {
  try {
    KernelRunner("Transpose", "bad_perm").input("X", iota_f32({2, 3})).attr("perm", std::vector<int64_t>{0, 0}).run1();
    FAIL() << "perm [0,0] accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad_perm"));
    EXPECT_THAT(e.what(), HasSubstr("permutation"));
  }
}

}  // namespace
}  // namespace qpipe
