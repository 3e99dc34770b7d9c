// AVX-512 kernels against the summation-order contract (conv_direct.h) and
// the other ISAs:
//  - the AVX-512 direct conv equals a scalar std::fma reference in k order
//    bit for bit (ResNet8's nine conv shapes with its epilogues, plus odd
//    geometries: partial vectors, 8-wide rows, strides 2 and 3, dilation,
//    asymmetric pads, both plane layouts, every tile shape);
//  - AVX-512 equals AVX2 bit for bit wherever AVX2 applies, and is within
//    float32 rounding of the float64 convolution;
//  - the AVX-512 plane builder equals the portable one;
//  - the AVX-512 epilogue equals the AVX2 and scalar ones bit for bit.
// Tests skip with a message on CPUs without AVX-512F (or AVX2 for the
// AVX2 comparisons).

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/fast/epilogue.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::fast {
namespace {

#define REQUIRE_AVX512()                                                                                    \
  if (!cpu_has_avx512f()) {                                                                                 \
    GTEST_SKIP() << "CPU without AVX-512F (or the OS does not enable it): the AVX2 and portable paths are " \
                    "tested elsewhere";                                                                     \
  }

struct Shape2D {
  const char* name;
  int64_t n, c, h, w, m, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr;
};

// ResNet8's convolutions (TF 'same' padding: stride 2 pads bottom/right),
// then geometries that exercise the corners of the kernel.
const Shape2D kResNet8[] = {
    {"conv2d 3->16 32x32", 2, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    {"conv2d_1 16->16 32x32", 2, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    {"conv2d_3 16->32 s2", 2, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1},
    {"conv2d_4 32->32 16x16", 2, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    {"conv2d_5 1x1 16->32 s2", 2, 16, 32, 32, 32, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},
    {"conv2d_6 32->64 s2", 2, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1, 0, 0, 1, 1},
    {"conv2d_7 64->64 8x8", 2, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
    {"conv2d_8 1x1 32->64 s2", 2, 32, 16, 16, 64, 1, 1, 2, 2, 1, 1, 0, 0, 0, 0},
};
const Shape2D kOdd[] = {
    {"dilation 2, odd channels, M % 4 != 0", 1, 5, 9, 16, 7, 3, 3, 1, 1, 2, 2, 2, 1, 2, 1},
    {"5x5 stride 2, out 9x12 (partial vector)", 2, 13, 17, 22, 9, 5, 5, 2, 2, 1, 1, 2, 2, 3, 3},
    {"stride 3 (portable plane builder)", 1, 4, 20, 25, 6, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1},
    {"1x7 rectangular kernel, stride (1,2)", 1, 3, 11, 40, 5, 1, 7, 1, 2, 1, 1, 0, 3, 0, 3},
    {"3 pixels in all, M = 1", 1, 2, 1, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0},
    {"out_w 48 (phase layout, 3 vectors per row)", 1, 3, 6, 48, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1},
};

std::vector<Shape2D> all_shapes() {
  std::vector<Shape2D> v(std::begin(kResNet8), std::end(kResNet8));
  v.insert(v.end(), std::begin(kOdd), std::end(kOdd));
  return v;
}

ConvGeometry geometry(const Shape2D& s) {
  ConvGeometry g;
  g.c = s.c; g.h = s.h; g.w = s.w; g.m = s.m; g.kh = s.kh; g.kw = s.kw;
  g.sh = s.sh; g.sw = s.sw; g.dh = s.dh; g.dw = s.dw; g.pad_top = s.pt; g.pad_left = s.pl;
  g.out_h = (s.h + s.pt + s.pb - ((s.kh - 1) * s.dh + 1)) / s.sh + 1;
  g.out_w = (s.w + s.pl + s.pr - ((s.kw - 1) * s.dw + 1)) / s.sw + 1;
  return g;
}

struct Data {
  std::vector<float> x, w, residual;
  Epilogue ep;
};

// ResNet8-like data and epilogue: bias, BatchNorm Mul/Add, residual Add,
// Relu, then a QDQ round trip (what the QDQ model fuses).
Data make_data(const Shape2D& s, const ConvGeometry& g, uint32_t seed, bool qdq) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Data d;
  d.x.resize(static_cast<std::size_t>(s.n * s.c * s.h * s.w));
  d.w.resize(static_cast<std::size_t>(s.m * s.c * s.kh * s.kw));
  d.residual.resize(static_cast<std::size_t>(s.n * s.m * g.out_h * g.out_w));
  for (auto& v : d.x) v = dist(rng);
  for (auto& v : d.w) v = dist(rng) * 0.5f;
  for (auto& v : d.residual) v = dist(rng);
  EpilogueOp mul{EpilogueOp::Kind::kMulConst, {}, {}, 0, 0, -1}, add{EpilogueOp::Kind::kAddConst, {}, {}, 0, 0, -1};
  EpilogueOp q{EpilogueOp::Kind::kQdq, {}, {}, -128.f, 127.f, -1};
  for (int64_t m = 0; m < s.m; ++m) {
    d.ep.bias.push_back(dist(rng));
    mul.a.push_back(1.f + dist(rng) * 0.5f);
    add.a.push_back(dist(rng));
    q.a.push_back(0.03125f + 0.01f * static_cast<float>(m % 3));
    q.z.push_back(static_cast<float>(m % 5) - 2.f);
  }
  d.ep.ops = {mul, add, {EpilogueOp::Kind::kAddTensor, {}, {}, 0, 0, 0}, {EpilogueOp::Kind::kRelu, {}, {}, 0, 0, -1}};
  if (qdq) d.ep.ops.push_back(q);
  d.ep.num_extra = 1;
  return d;
}

// The contract, literally: acc = fma(w[k], x[k], acc) for k = 0..K-1 from
// +0 (k = (c*kh + i)*kw + j, padding reads 0), then the scalar epilogue.
std::vector<float> contract_reference(const Shape2D& s, const ConvGeometry& g, const Data& d) {
  const int64_t P = g.out_h * g.out_w;
  std::vector<float> y(static_cast<std::size_t>(s.n * s.m * P));
  for (int64_t n = 0; n < s.n; ++n)
    for (int64_t m = 0; m < s.m; ++m) {
      float* row = y.data() + (n * s.m + m) * P;
      for (int64_t oh = 0; oh < g.out_h; ++oh)
        for (int64_t ow = 0; ow < g.out_w; ++ow) {
          float acc = 0.f;
          for (int64_t c = 0; c < s.c; ++c)
            for (int64_t i = 0; i < s.kh; ++i)
              for (int64_t j = 0; j < s.kw; ++j) {
                const int64_t h = oh * s.sh - s.pt + i * s.dh, w = ow * s.sw - s.pl + j * s.dw;
                const float xv = h >= 0 && h < s.h && w >= 0 && w < s.w ? d.x[static_cast<std::size_t>(((n * s.c + c) * s.h + h) * s.w + w)] : 0.f;
                acc = std::fma(d.w[static_cast<std::size_t>(((m * s.c + c) * s.kh + i) * s.kw + j)], xv, acc);
              }
          row[oh * g.out_w + ow] = acc;
        }
      const float* ex[] = {d.residual.data() + (n * s.m + m) * P};
      epilogue_row_scalar(d.ep, m, row, row, ex, P);
    }
  return y;
}

std::vector<float> run_avx512(const Shape2D& s, const ConvGeometry& g, const Data& d, int mr, int nv, int pieces) {
  const WideConv wc = make_wide_conv(g, d.w.data(), mr, nv);
  const int64_t P = g.out_h * g.out_w;
  std::vector<float> y(static_cast<std::size_t>(s.n * s.m * P), std::nanf("")), planes(static_cast<std::size_t>(wc.image_floats));
  for (int64_t n = 0; n < s.n; ++n) {
    build_wide_planes_avx512(wc, d.x.data() + n * s.c * s.h * s.w, planes.data());
    const float* ex[] = {d.residual.data() + n * s.m * P};
    // Uneven pieces: the result must not depend on the partition.
    for (int k = 0; k < pieces; ++k) {
      const int64_t v0 = wc.vectors * k * k / (pieces * pieces), v1 = wc.vectors * (k + 1) * (k + 1) / (pieces * pieces);
      direct_conv_avx512(wc, planes.data(), y.data() + n * s.m * P, d.ep, ex, v0, v1);
    }
  }
  return y;
}

void expect_bits(const std::vector<float>& a, const std::vector<float>& b, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (std::size_t i = 0; i < a.size(); ++i) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a[i], 4);
    std::memcpy(&ub, &b[i], 4);
    ASSERT_EQ(ua, ub) << what << ": element " << i << " " << a[i] << " vs " << b[i];
  }
}

TEST(Avx512Conv, EqualsTheFmaContractBitForBit) {
  REQUIRE_AVX512();
  uint32_t seed = 1;
  {
    for (const Shape2D& s : all_shapes()) {
      const ConvGeometry g = geometry(s);
      for (bool qdq : {false, true}) {
        const Data d = make_data(s, g, seed++, qdq);
        const std::vector<float> want = contract_reference(s, g, d);
        const std::string what = std::string(s.name) + (qdq ? " +qdq" : "");
        expect_bits(run_avx512(s, g, d, 0, 0, 1), want, what + " (auto tile)");
        for (auto [mr, nv] : {std::pair{8, 3}, {8, 2}, {8, 1}, {4, 6}, {4, 4}, {4, 1}})
          expect_bits(run_avx512(s, g, d, mr, nv, 3), want,
                      what + " (tile " + std::to_string(mr) + "x" + std::to_string(nv) + ", 3 pieces)");
      }
    }
  }
}

TEST(Avx512Conv, UsesBothPlaneLayoutsOnResNet8) {
  // Stride-1 3x3 layers with out_w % 16 == 0 use the phase layout (one copy
  // of each row), the 8x8 layers the column-shifted one.
  EXPECT_TRUE(make_wide_conv(geometry(kResNet8[1]), nullptr).phase_layout);
  EXPECT_TRUE(make_wide_conv(geometry(kResNet8[3]), nullptr).phase_layout);
  EXPECT_FALSE(make_wide_conv(geometry(kResNet8[6]), nullptr).phase_layout);
  EXPECT_FALSE(make_wide_conv(geometry(kResNet8[5]), nullptr).phase_layout);
  // Stride-2 3x3 layers permute one loaded window for several planes.
  for (int layer : {2, 5}) {
    int reused = 0;
    for (const auto& pc : make_wide_conv(geometry(kResNet8[layer]), nullptr).pieces) reused += pc.reuse;
    EXPECT_GT(reused, 0) << kResNet8[layer].name;
  }
}

TEST(Avx512Conv, EqualsAvx2BitForBitOnResNet8Shapes) {
  REQUIRE_AVX512();
  uint32_t seed = 100;
  {
    for (const Shape2D& s : all_shapes()) {
      const ConvGeometry g = geometry(s);
      if (!direct_conv_applicable(g)) continue;  // AVX2 needs out_w % 8 == 0
      const Data d = make_data(s, g, seed++, true);
      const DirectConv dc = make_direct_conv(g, d.w.data());
      const int64_t P = g.out_h * g.out_w;
      std::vector<float> y2(static_cast<std::size_t>(s.n * s.m * P)), planes(static_cast<std::size_t>(dc.image_floats));
      for (int64_t n = 0; n < s.n; ++n) {
        build_phase_planes(dc, d.x.data() + n * s.c * s.h * s.w, planes.data());
        const float* ex[] = {d.residual.data() + n * s.m * P};
        direct_conv_avx2(dc, planes.data(), y2.data() + n * s.m * P, d.ep, ex, 0, dc.groups);
      }
      expect_bits(run_avx512(s, g, d, 0, 0, 2), y2, std::string(s.name) + " avx512 vs avx2");
    }
  }
}

TEST(Avx512Conv, WithinFloat32RoundingOfFloat64) {
  REQUIRE_AVX512();
  // The FMA chain is a float32 sum of K products: within K ulps-ish of the
  // float64 convolution (as the portable Eigen path is; tests/
  // speed_paths_test.cc compares the two on the whole model). Conv only: QDQ
  // rounding would amplify one-ulp differences into one code.
  uint32_t seed = 200;
  for (const Shape2D& s : kResNet8) {
    const ConvGeometry g = geometry(s);
    Data d = make_data(s, g, seed++, false);
    d.ep = Epilogue{};
    const std::vector<float> y = run_avx512(s, g, d, 0, 0, 1);
    std::vector<double> xd(d.x.begin(), d.x.end()), wd(d.w.begin(), d.w.end()), yd(y.size()),
        bd(static_cast<std::size_t>(s.m), 0.0);
    reference::ConvParams p{s.n, s.c, s.h, s.w, s.m, s.kh, s.kw, s.sh, s.sw, s.dh, s.dw, s.pt, s.pl, g.out_h, g.out_w};
    for (int64_t n = 0; n < s.n; ++n) reference::conv2d(p, xd.data(), wd.data(), bd.data(), yd.data(), n);
    const double K = static_cast<double>(s.c * s.kh * s.kw);
    double worst = 0;
    for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(y[i]) - yd[i]));
    // |x| <= 1, |w| <= 0.5: a float32 sum of K products is within K * 2^-24 * K / 2.
    EXPECT_LT(worst, K * K * 0.5 * std::ldexp(1.0, -24)) << s.name;
  }
}

TEST(Avx512Conv, PlaneBuilderEqualsPortable) {
  REQUIRE_AVX512();
  uint32_t seed = 300;
  {
    for (const Shape2D& s : all_shapes()) {
      const ConvGeometry g = geometry(s);
      const Data d = make_data(s, g, seed++, false);
      const WideConv wc = make_wide_conv(g, nullptr);
      // Planes of unused row phases are never written: start both equal.
      std::vector<float> a(static_cast<std::size_t>(wc.image_floats), -7.f), b = a;
      build_wide_planes(wc, d.x.data(), a.data());
      build_wide_planes_avx512(wc, d.x.data(), b.data());
      expect_bits(a, b, std::string(s.name) + " planes");
    }
  }
}

TEST(Avx512Epilogue, EqualsAvx2AndScalarBitForBit) {
  REQUIRE_AVX512();
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> specials = {0.f, -0.f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.25f, 63.75f, 64.25f, 1e30f, -1e30f,
                                       inf, -inf, nan, 16777216.f, -16777217.f, 127.5f, -128.5f, 255.5f, 1e-40f,
                                       -1e-40f, 8388607.5f, -8388608.5f};
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-200.f, 200.f);
  const int64_t C = 3, inner = 53;  // 3 vectors of 16 and a 5-lane tail
  std::vector<float> x(static_cast<std::size_t>(2 * C * inner)), extra(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = i < specials.size() ? specials[i] : (i % 5 == 0 ? std::round(dist(rng)) + 0.5f : dist(rng));
    extra[i] = i % 13 == 0 ? specials[i % specials.size()] : dist(rng) * 0.01f;
  }
  for (bool u8 : {false, true}) {
    Epilogue ep;
    EpilogueOp qdq{EpilogueOp::Kind::kQdq, {}, {}, u8 ? 0.f : -128.f, u8 ? 255.f : 127.f, -1};
    EpilogueOp mul{EpilogueOp::Kind::kMulConst, {}, {}, 0, 0, -1};
    for (int64_t c = 0; c < C; ++c) {
      ep.bias.push_back(0.5f * static_cast<float>(c) - 0.25f);
      mul.a.push_back(c % 2 ? 1.25f : -0.5f);
      qdq.a.push_back(c == 1 ? 0.0390625f : 0.5f);
      qdq.z.push_back(u8 ? 128.f : static_cast<float>(c) - 1.f);
    }
    ep.ops = {qdq, mul, {EpilogueOp::Kind::kAddTensor, {}, {}, 0, 0, 0}, {EpilogueOp::Kind::kRelu, {}, {}, 0, 0, -1}, qdq};
    ep.num_extra = 1;
    const float* ex[] = {extra.data()};
    std::vector<float> y512(x.size()), y2(x.size()), ys(x.size());
    epilogue_tensor(ep, x.data(), y512.data(), ex, 2, C, inner, Isa::kAvx512);
    epilogue_tensor(ep, x.data(), ys.data(), ex, 2, C, inner, Isa::kPortable);
    expect_bits(y512, ys, u8 ? "avx512 vs scalar (uint8)" : "avx512 vs scalar (int8)");
    if (cpu_has_avx2_fma()) {
      epilogue_tensor(ep, x.data(), y2.data(), ex, 2, C, inner, Isa::kAvx2);
      expect_bits(y512, y2, u8 ? "avx512 vs avx2 (uint8)" : "avx512 vs avx2 (int8)");
    }
  }
}

TEST(CpuDispatch, SelectionRespectsTheCpuAndForcePortable) {
  EXPECT_EQ(select_isa(true), Isa::kPortable);
  const Isa isa = select_isa(false);
  if (isa == Isa::kAvx512) {
    EXPECT_TRUE(cpu_has_avx512f());
  }
  if (isa >= Isa::kAvx2) {
    EXPECT_TRUE(cpu_has_avx2_fma());
  }
  EXPECT_LE(isa, env_isa_ceiling());
  EXPECT_STREQ(isa_name(Isa::kAvx512), "avx512");
  EXPECT_STREQ(isa_name(Isa::kAvx2), "avx2");
  EXPECT_STREQ(isa_name(Isa::kPortable), "portable");
}

}  // namespace
}  // namespace qpipe::fast
