// ONNX Runtime (MLAS) summation order for float32 Conv: the K slicing worked
// out by hand from MLAS's rules for ResNet8's convolutions, and the kernel
// against a scalar evaluation of the same formula (exact bits) and against
// float64 (a bound).

#include "engine/kernels/ort_order_conv.h"

#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cmath>
#include <random>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/kernels/reference/conv.h"
#include "engine/session.h"

namespace qpipe::kernels {
namespace {

using Bounds = std::vector<int64_t>;

// Every segment of the schedule must cover its pixels with the same slicing;
// returns the bounds of the segment holding pixel p.
Bounds bounds_at(const OrtConvSchedule& s, int64_t p) {
  for (const auto& seg : s.segments)
    if (p >= seg.begin && p < seg.end) return seg.k_bounds;
  return {};
}

TEST(OrtConvSchedule, ResNet8ConvsWithTwoThreads) {
  // First conv 3->16, 32x32, K = 27: one slice.
  auto s = ort_conv_schedule(16, 3, 3, 3, 1024, false, 2);
  EXPECT_EQ(s.algorithm, OrtConvSchedule::Algorithm::kExpandThenGemmSegmented);
  EXPECT_EQ(s.threads, 2);
  EXPECT_EQ(bounds_at(s, 0), (Bounds{0, 27}));
  // 16->16 3x3 on 32x32: K = 144 > 128 with 512 columns per thread: 128 + 16.
  s = ort_conv_schedule(16, 16, 3, 3, 1024, false, 2);
  EXPECT_EQ(bounds_at(s, 700), (Bounds{0, 128, 144}));
  // 32->32 3x3 on 16x16: K = 288, 128 columns per thread: 128 + 128 + 32.
  s = ort_conv_schedule(32, 32, 3, 3, 256, false, 2);
  EXPECT_EQ(bounds_at(s, 5), (Bounds{0, 128, 256, 288}));
  // 32->64 3x3 stride 2 to 8x8: K = 288, 32 columns per thread: StrideK 512, one slice.
  s = ort_conv_schedule(64, 32, 3, 3, 64, false, 2);
  EXPECT_EQ(s.threads, 2);
  EXPECT_EQ(bounds_at(s, 40), (Bounds{0, 288}));
  // 64->64 3x3 on 8x8: K = 576: 512 + 64.
  s = ort_conv_schedule(64, 64, 3, 3, 64, false, 2);
  EXPECT_EQ(bounds_at(s, 0), (Bounds{0, 512, 576}));
  // 1x1 stride-2 shortcut 16->32: K = 16, one slice.
  s = ort_conv_schedule(32, 16, 1, 1, 256, false, 2);
  EXPECT_EQ(bounds_at(s, 255), (Bounds{0, 16}));
}

TEST(OrtConvSchedule, DependsOnTheModelledThreadCount) {
  // 64->64 on 8x8: one thread sees 64 columns (StrideK 256), four threads 16 (StrideK 1024).
  EXPECT_EQ(bounds_at(ort_conv_schedule(64, 64, 3, 3, 64, false, 1), 0), (Bounds{0, 256, 512, 576}));
  EXPECT_EQ(bounds_at(ort_conv_schedule(64, 64, 3, 3, 64, false, 4), 0), (Bounds{0, 576}));
  EXPECT_EQ(ort_conv_schedule(64, 64, 3, 3, 64, false, 4).threads, 4);
  // Small work stays on one thread whatever the pool: 8*16*9 products.
  EXPECT_EQ(ort_conv_schedule(8, 1, 3, 3, 16, false, 8).threads, 1);
}

TEST(OrtConvSchedule, PointwiseAndWideFilterBanksUseTheThreadedGemm) {
  auto s = ort_conv_schedule(32, 16, 1, 1, 256, true, 2);
  EXPECT_EQ(s.algorithm, OrtConvSchedule::Algorithm::kGemmDirect);
  EXPECT_EQ(bounds_at(s, 3), (Bounds{0, 16}));
  // More filters than pixels: im2col + GEMM, split along M.
  s = ort_conv_schedule(256, 64, 3, 3, 16, false, 2);
  EXPECT_EQ(s.algorithm, OrtConvSchedule::Algorithm::kExpandThenGemm);
  ASSERT_EQ(s.segments.size(), 2u);
  EXPECT_EQ(s.segments[0].m_end, 128);
  EXPECT_EQ(s.segments[1].m_begin, 128);
  // N = 16 < K = 576: StrideK 1024, one slice.
  EXPECT_EQ(s.segments[0].k_bounds, (Bounds{0, 576}));
  // A single filter row uses the M = 1 kernel: groups of 4, then 2, then 1.
  s = ort_conv_schedule(1, 7, 1, 1, 64, true, 1);
  ASSERT_EQ(s.segments.size(), 1u);
  EXPECT_TRUE(s.segments[0].m1);
  EXPECT_EQ(s.segments[0].k_bounds, (Bounds{0, 4, 6, 7}));
}

// A one-Conv model: x [n, c, h, w] -> Conv(w, b) -> y.
Model conv_model(int64_t c, int64_t m, int64_t k, int64_t stride, int64_t pad, const std::vector<float>& w,
                 const std::vector<float>& b) {
  Model model;
  model.opset = 13;
  Graph& g = model.graph;
  g.name = "conv";
  g.inputs = {"x"};
  g.outputs = {"y"};
  g.value_info["x"] = ValueInfo{DType::kFloat32, {-1, c, -1, -1}, true};
  Tensor wt(DType::kFloat32, {m, c, k, k});
  std::copy(w.begin(), w.end(), wt.data<float>());
  Tensor bt(DType::kFloat32, {m});
  std::copy(b.begin(), b.end(), bt.data<float>());
  g.initializers["w"] = std::move(wt);
  g.initializers["b"] = std::move(bt);
  Node n;
  n.op_type = "Conv";
  n.name = "conv";
  n.inputs = {"x", "w", "b"};
  n.outputs = {"y"};
  n.attrs["kernel_shape"] = Attribute::Ints({k, k});
  n.attrs["strides"] = Attribute::Ints({stride, stride});
  n.attrs["pads"] = Attribute::Ints({pad, pad, pad, pad});
  g.nodes.push_back(n);
  return model;
}

// The formula of ort_order_conv.h evaluated one element at a time.
float mlas_element(const std::vector<float>& x, const std::vector<float>& w, float bias, const Bounds& bounds,
                   int64_t c, int64_t h, int64_t wd, int64_t k, int64_t stride, int64_t pad, int64_t m, int64_t oh,
                   int64_t ow) {
  const int64_t K = c * k * k;
  auto product_inputs = [&](int64_t kk, float* xv, float* wv) {
    const int64_t ci = kk / (k * k), i = kk / k % k, j = kk % k;
    const int64_t hh = oh * stride - pad + i, ww = ow * stride - pad + j;
    *xv = (hh >= 0 && hh < h && ww >= 0 && ww < wd) ? x[static_cast<std::size_t>((ci * h + hh) * wd + ww)] : 0.0f;
    *wv = w[static_cast<std::size_t>(m * K + kk)];
  };
  float y = 0.0f;
  for (std::size_t s = 0; s + 1 < bounds.size(); ++s) {
    float acc = 0.0f;
    for (int64_t kk = bounds[s]; kk < bounds[s + 1]; ++kk) {
      float xv, wv;
      product_inputs(kk, &xv, &wv);
      acc = std::fma(wv, xv, acc);
    }
    y = s == 0 ? acc : y + acc;
  }
  return y + bias;
}

TEST(OrtOrderConv, MatchesTheSlicedFormulaBitForBitAndFloat64WithinABound) {
  struct Case {
    int64_t c, m, hw, k, stride, pad;
  };
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const Case cs : {Case{16, 16, 32, 3, 1, 1}, Case{32, 64, 16, 3, 2, 1}, Case{64, 64, 8, 3, 1, 1},
                        Case{16, 32, 32, 1, 2, 0}, Case{3, 16, 32, 3, 1, 1}, Case{5, 7, 9, 3, 1, 1},
                        Case{20, 6, 7, 1, 1, 0}}) {
    SCOPED_TRACE(testing::Message() << "c=" << cs.c << " m=" << cs.m << " hw=" << cs.hw << " k=" << cs.k);
    std::vector<float> w(static_cast<std::size_t>(cs.m * cs.c * cs.k * cs.k)), b(static_cast<std::size_t>(cs.m));
    for (auto& v : w) v = nd(rng) * 0.1f;
    for (auto& v : b) v = nd(rng);
    const int64_t n = 2;
    Tensor x(DType::kFloat32, {n, cs.c, cs.hw, cs.hw});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::max(0.0f, nd(rng)) * 3.0f;
    SessionOptions so;
    so.conv_order = "ort";
    so.ort_intra_op_threads = 2;
    const Session s(conv_model(cs.c, cs.m, cs.k, cs.stride, cs.pad, w, b), so);
    const Tensor y = s.run(x)[0];
    SessionOptions f64;
    f64.float64 = true;
    const Tensor y64 = Session(conv_model(cs.c, cs.m, cs.k, cs.stride, cs.pad, w, b), f64).run(x)[0];
    const int64_t oh = y.dim(2), ow = y.dim(3), P = oh * ow;
    const OrtConvSchedule sched = ort_conv_schedule(cs.m, cs.c, cs.k, cs.k, P, cs.k == 1 && cs.stride == 1, 2);
    const int64_t in_floats = cs.c * cs.hw * cs.hw;
    int mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      std::vector<float> xi(x.data<float>() + i * in_floats, x.data<float>() + (i + 1) * in_floats);
      for (int64_t m = 0; m < cs.m; ++m)
        for (int64_t p = 0; p < P; ++p) {
          const float expect = mlas_element(xi, w, b[static_cast<std::size_t>(m)], bounds_at(sched, p), cs.c, cs.hw,
                                            cs.hw, cs.k, cs.stride, cs.pad, m, p / ow, p % ow);
          const int64_t at = (i * cs.m + m) * P + p;
          const float got = y.data<float>()[at];
          if (got != expect && ++mismatches < 5) ADD_FAILURE() << "element " << at << ": " << got << " vs " << expect;
          // float32 sum of K products: |error| <= K * 2^-23 * sum |w x| (loose but certain).
          double mag = std::fabs(static_cast<double>(b[static_cast<std::size_t>(m)]));
          const int64_t K = cs.c * cs.k * cs.k;
          for (int64_t kk = 0; kk < K; ++kk) mag += 10.0 * std::fabs(w[static_cast<std::size_t>(m * K + kk)]);
          EXPECT_NEAR(got, y64.data<double>()[at], static_cast<double>(K + 1) * std::ldexp(mag, -23));
        }
    }
    EXPECT_EQ(mismatches, 0);
  }
}

TEST(OrtOrderConv, BatchSizeAndThreadsOfTheCallerDoNotMatter) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-1.0f, 1.0f);
  std::vector<float> w(64 * 64 * 9), b(64);
  for (auto& v : w) v = ud(rng);
  for (auto& v : b) v = ud(rng);
  Tensor x(DType::kFloat32, {3, 64, 8, 8});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = ud(rng) * 5.0f;
  SessionOptions so;
  so.conv_order = "ort";
  const Session s(conv_model(64, 64, 3, 1, 1, w, b), so);
  const Tensor all = s.run(x)[0];
  for (int64_t i = 0; i < 3; ++i) {
    Tensor one(DType::kFloat32, {1, 64, 8, 8});
    std::copy(x.data<float>() + i * 4096, x.data<float>() + (i + 1) * 4096, one.data<float>());
    const Tensor y = s.run(one)[0];
    for (int64_t j = 0; j < 4096; ++j) ASSERT_EQ(y.data<float>()[j], all.data<float>()[i * 4096 + j]);
  }
}

TEST(OrtOrderConv, PortableAndAvx2PathsGiveIdenticalBits) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (const auto [c, m, hw, k, stride, pad] : {std::array<int64_t, 6>{16, 32, 16, 3, 2, 1},
                                                std::array<int64_t, 6>{64, 64, 8, 3, 1, 1},
                                                std::array<int64_t, 6>{5, 7, 9, 3, 1, 1}}) {
    std::vector<float> w(static_cast<std::size_t>(m * c * k * k)), b(static_cast<std::size_t>(m));
    for (auto& v : w) v = nd(rng) * 0.1f;
    for (auto& v : b) v = nd(rng);
    Tensor x(DType::kFloat32, {2, c, hw, hw});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = std::max(0.0f, nd(rng)) * 3.0f;
    SessionOptions so;
    so.conv_order = "ort";
    const Tensor fast = Session(conv_model(c, m, k, stride, pad, w, b), so).run(x)[0];
    so.force_portable = true;
    const Tensor portable = Session(conv_model(c, m, k, stride, pad, w, b), so).run(x)[0];
    ASSERT_EQ(fast.numel(), portable.numel());
    for (int64_t i = 0; i < fast.numel(); ++i)
      ASSERT_EQ(std::bit_cast<uint32_t>(fast.data<float>()[i]), std::bit_cast<uint32_t>(portable.data<float>()[i]))
          << "element " << i << " c=" << c << " m=" << m;
  }
}

TEST(OrtOrderConv, BadOptionsAreUsageErrors) {
  SessionOptions so;
  so.conv_order = "mlas";
  try {
    Session s(conv_model(1, 1, 1, 1, 0, {1.0f}, {0.0f}), so);
    FAIL() << "accepted conv_order 'mlas'";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("qpipe, ort"), std::string::npos);
  }
  so.conv_order = "ort";
  so.ort_intra_op_threads = 0;
  EXPECT_THROW(Session(conv_model(1, 1, 1, 1, 0, {1.0f}, {0.0f}), so), PtqError);
}

}  // namespace
}  // namespace qpipe::kernels
