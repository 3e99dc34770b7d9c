// MatMul ([..., M, K] x [K, N]) and Gemm (transA/transB, alpha, beta, C
// broadcast from scalar, [N], [1,N], [M,1], [M,N]) against float64 products
// written here, with the float32 accumulation error bound 2 K u sum|terms|.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
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

constexpr double kU = 1.0 / (1 << 24);

TEST(MatMulKernel, InlineGolden) {
  Tensor y = KernelRunner("MatMul")
                 .input("A", f32({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}))
                 .constant("B", f32({3, 2}, std::vector<float>{1, -1, 0, 2, 0.5f, 0}))
                 .run1();
  ASSERT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()), ElementsAre(2.5f, 3.f, 7.f, 6.f));
}

TEST(MatMulKernel, SweepMatchesFloat64Reference) {
  Rng rng(2024);
  for (const Shape& as : std::vector<Shape>{{7, 13}, {1, 64}, {2, 3, 13}, {5, 1, 2, 9}}) {
    const int64_t K = as.back(), N = 5 + K % 4;
    Tensor a = rng.tensor(as, -2.f, 2.f), b = rng.tensor({K, N}, -1.f, 1.f);
    Tensor y = KernelRunner("MatMul").batched_input("A", a).constant("B", b).run1();
    Shape want(as.begin(), as.end() - 1);
    want.push_back(N);
    ASSERT_EQ(y.shape(), want);
    const int64_t M = a.numel() / K;
    std::vector<double> ref, tol;
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0, mag = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double t = static_cast<double>(a.data<float>()[i * K + k]) * b.data<float>()[k * N + j];
          acc += t;
          mag += std::fabs(t);
        }
        ref.push_back(acc);
        tol.push_back(2 * static_cast<double>(K) * kU * mag + 1e-30);
      }
    EXPECT_TRUE(testing::close_to_reference(to_double(y), ref, tol, y.shape(), "MatMul A " + shape_str(as)));
  }
}

struct GemmCase {
  std::string name;
  int64_t M, K, N;
  bool ta, tb;
  float alpha, beta;
  Shape c;  // {-1} = no C
};

TEST(GemmKernel, InlineGolden) {
  // alpha * A' * B + beta * C with A = [[1,2],[3,4]] given transposed.
  Tensor y = KernelRunner("Gemm")
                 .input("A", f32({2, 2}, std::vector<float>{1, 3, 2, 4}))
                 .constant("B", f32({2, 2}, std::vector<float>{1, 0, 0, 1}))
                 .constant("C", f32({2}, std::vector<float>{10, 20}))
                 .attr("transA", int64_t{1})
                 .attr("alpha", 2.f)
                 .attr("beta", 0.5f)
                 .run1();
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()), ElementsAre(7.f, 14.f, 11.f, 18.f));
}

class GemmSweep : public ::testing::TestWithParam<GemmCase> {};

TEST_P(GemmSweep, MatchesFloat64Reference) {
  const GemmCase& g = GetParam();
  Rng rng(99u + static_cast<uint32_t>(g.M * 31 + g.K * 7 + g.N));
  Tensor a = g.ta ? rng.tensor({g.K, g.M}) : rng.tensor({g.M, g.K});
  Tensor b = g.tb ? rng.tensor({g.N, g.K}) : rng.tensor({g.K, g.N});
  const bool has_c = g.c != Shape{-1};
  Tensor c = has_c ? rng.tensor(g.c) : Tensor();
  KernelRunner r("Gemm", "gemm_" + g.name);
  r.input("A", a).constant("B", b);
  if (has_c) r.constant("C", c);
  r.attr("transA", int64_t{g.ta}).attr("transB", int64_t{g.tb}).attr("alpha", g.alpha).attr("beta", g.beta);
  Tensor y = r.run1();
  ASSERT_EQ(y.shape(), (Shape{g.M, g.N}));
  std::vector<double> ref, tol;
  for (int64_t i = 0; i < g.M; ++i)
    for (int64_t j = 0; j < g.N; ++j) {
      double acc = 0, mag = 0;
      for (int64_t k = 0; k < g.K; ++k) {
        const double av = a.data<float>()[g.ta ? k * g.M + i : i * g.K + k];
        const double bv = b.data<float>()[g.tb ? j * g.K + k : k * g.N + j];
        acc += av * bv;
        mag += std::fabs(av * bv);
      }
      double cv = 0;
      if (has_c) {
        // numpy broadcasting of C to [M, N]
        const Shape& cs = g.c;
        const int64_t ci = cs.size() == 2 ? (cs[0] == 1 ? 0 : i) : 0;
        const int64_t cj = cs.empty() ? 0 : (cs.back() == 1 ? 0 : j);
        const int64_t cols = cs.empty() ? 1 : cs.back();
        cv = c.data<float>()[ci * cols + cj];
      }
      ref.push_back(g.alpha * acc + g.beta * cv);
      tol.push_back(2 * static_cast<double>(g.K + 3) * kU * (std::fabs(g.alpha) * mag + std::fabs(g.beta * cv)) + 1e-30);
    }
  EXPECT_TRUE(testing::close_to_reference(to_double(y), ref, tol, y.shape(), g.name));
}

INSTANTIATE_TEST_SUITE_P(Variants, GemmSweep,
                         ::testing::Values(GemmCase{"plain_noC", 7, 13, 5, false, false, 1.f, 1.f, {-1}},
                                           GemmCase{"transB_bias_N", 7, 64, 10, false, true, 1.f, 1.f, {10}},
                                           GemmCase{"transA", 3, 13, 4, true, false, 1.f, 1.f, {3, 4}},
                                           GemmCase{"transA_transB", 5, 9, 6, true, true, 0.5f, 2.f, {1, 6}},
                                           GemmCase{"C_column", 4, 7, 3, false, false, -1.5f, 0.25f, {4, 1}},
                                           GemmCase{"C_scalar", 2, 5, 3, false, true, 1.f, -1.f, {}},
                                           GemmCase{"C_one_one", 2, 5, 3, false, false, 1.f, 3.f, {1, 1}},
                                           GemmCase{"beta_zero", 6, 11, 2, false, false, 2.f, 0.f, {6, 2}},
                                           GemmCase{"batch1", 1, 64, 10, false, false, 1.f, 1.f, {10}}),
                         [](const auto& info) { return info.param.name; });

TEST(GemmKernel, ShapeMismatchesAreReported) {
  Rng rng(5);
  try {
    KernelRunner("Gemm", "gemm_bad").input("A", rng.tensor({2, 3})).constant("B", rng.tensor({4, 2})).run1();
    FAIL() << "inner dimensions 3 vs 4 accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("gemm_bad"));
    EXPECT_THAT(e.what(), HasSubstr("inner dimensions"));
  }
  try {
    KernelRunner("Gemm", "gemm_badc")
        .input("A", rng.tensor({2, 3}))
        .constant("B", rng.tensor({3, 4}))
        .constant("C", rng.tensor({3}))
        .run1();
    FAIL() << "C [3] for a [2,4] result accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("gemm_badc"));
  }
}

}  // namespace
}  // namespace qpipe
