// Fast kernels against references: the AVX2 direct convolution against the
// float64 seven-loop convolution (awkward strides, pads, dilations, odd
// channel counts), and the AVX2 epilogue against the scalar one bit for bit
// (ties, NaN, infinities, signed zeros, saturation).

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "engine/kernels/fast/conv_direct.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/kernels/fast/epilogue.h"
#include "engine/kernels/reference/conv.h"

namespace qpipe::fast {
namespace {

struct Case {
  int64_t n, c, h, w, m, k, s, d, pt, pl, pb, pr;
};

TEST(FastConv, DirectMatchesFloat64Reference) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "CPU without AVX2+FMA: the portable path is covered elsewhere";
  const Case cases[] = {
      {2, 3, 32, 32, 16, 3, 1, 1, 1, 1, 1, 1},   // first ResNet8 conv
      {1, 16, 32, 32, 32, 3, 2, 1, 0, 0, 1, 1},  // stride 2, TF 'same' (pad bottom/right only)
      {3, 16, 32, 32, 32, 1, 2, 1, 0, 0, 0, 0},  // 1x1 stride 2
      {1, 5, 9, 16, 7, 3, 1, 2, 2, 1, 2, 1},     // dilation 2, odd channels, M not a multiple of 4
      {7, 13, 17, 22, 9, 5, 2, 1, 2, 2, 3, 3},   // 5x5 stride 2, odd everything (out_w 12 -> not direct)
      {1, 64, 8, 8, 64, 3, 1, 1, 1, 1, 1, 1},    // last ResNet8 block
  };
  std::mt19937 rng(7767517);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Case& cs : cases) {
    ConvGeometry g;
    g.c = cs.c; g.h = cs.h; g.w = cs.w; g.m = cs.m; g.kh = g.kw = cs.k;
    g.sh = g.sw = cs.s; g.dh = g.dw = cs.d; g.pad_top = cs.pt; g.pad_left = cs.pl;
    const int64_t ek = (cs.k - 1) * cs.d + 1;
    g.out_h = (cs.h + cs.pt + cs.pb - ek) / cs.s + 1;
    g.out_w = (cs.w + cs.pl + cs.pr - ek) / cs.s + 1;
    if (!direct_conv_applicable(g)) {
      EXPECT_NE(g.out_w % 8, 0);
      continue;
    }
    std::vector<float> x(static_cast<std::size_t>(cs.n * cs.c * cs.h * cs.w)), w(static_cast<std::size_t>(cs.m * cs.c * cs.k * cs.k)),
        b(static_cast<std::size_t>(cs.m));
    for (auto& v : x) v = dist(rng);
    for (auto& v : w) v = dist(rng);
    for (auto& v : b) v = dist(rng);
    DirectConv dc = make_direct_conv(g, w.data());
    Epilogue ep;
    ep.bias = b;
    const int64_t P = g.out_h * g.out_w;
    std::vector<float> y(static_cast<std::size_t>(cs.n * cs.m * P)), planes(static_cast<std::size_t>(dc.image_floats));
    for (int64_t n = 0; n < cs.n; ++n) {
      build_phase_planes(dc, x.data() + n * cs.c * cs.h * cs.w, planes.data());
      // Split the groups unevenly: results must not depend on the partition.
      const int64_t mid = dc.groups / 3;
      direct_conv_avx2(dc, planes.data(), y.data() + n * cs.m * P, ep, nullptr, 0, mid);
      direct_conv_avx2(dc, planes.data(), y.data() + n * cs.m * P, ep, nullptr, mid, dc.groups);
    }
    std::vector<double> xd(x.begin(), x.end()), wd(w.begin(), w.end()), bd(b.begin(), b.end()), yd(y.size());
    reference::ConvParams p{cs.n, cs.c, cs.h, cs.w, cs.m, cs.k, cs.k, cs.s, cs.s, cs.d, cs.d, cs.pt, cs.pl, g.out_h, g.out_w};
    for (int64_t n = 0; n < cs.n; ++n) reference::conv2d(p, xd.data(), wd.data(), bd.data(), yd.data(), n);
    // float32 sum of K products (|x|,|w| <= 1): |error| <= K * 2^-23 * K bound; use a safe empirical margin.
    const double K = static_cast<double>(dc.K);
    double worst = 0;
    for (std::size_t i = 0; i < y.size(); ++i) worst = std::max(worst, std::abs(static_cast<double>(y[i]) - yd[i]));
    EXPECT_LT(worst, K * 1e-6) << "case c=" << cs.c << " h=" << cs.h << " w=" << cs.w << " m=" << cs.m << " k=" << cs.k
                               << " s=" << cs.s << " d=" << cs.d;
    // Bit-identical when the same image is computed again in one piece.
    std::vector<float> y2(static_cast<std::size_t>(cs.m * P));
    build_phase_planes(dc, x.data(), planes.data());
    direct_conv_avx2(dc, planes.data(), y2.data(), ep, nullptr, 0, dc.groups);
    for (std::size_t i = 0; i < y2.size(); ++i) ASSERT_EQ(y2[i], y[i]);
  }
}

Epilogue all_ops(int64_t channels, bool uint8) {
  Epilogue ep;
  for (int64_t c = 0; c < channels; ++c) ep.bias.push_back(0.25f * static_cast<float>(c) - 0.5f);
  EpilogueOp mul{EpilogueOp::Kind::kMulConst, {}, {}, 0, 0, -1};
  EpilogueOp add{EpilogueOp::Kind::kAddConst, {}, {}, 0, 0, -1};
  EpilogueOp qdq{EpilogueOp::Kind::kQdq, {}, {}, uint8 ? 0.f : -128.f, uint8 ? 255.f : 127.f, -1};
  for (int64_t c = 0; c < channels; ++c) {
    mul.a.push_back(c % 2 ? 1.5f : -0.75f);
    add.a.push_back(0.125f * static_cast<float>(c));
    qdq.a.push_back(c % 3 ? 0.5f : 0.0390625f);
    qdq.z.push_back(uint8 ? 128.f : static_cast<float>(c % 5) - 2.f);
  }
  ep.ops = {mul, add, qdq, {EpilogueOp::Kind::kAddTensor, {}, {}, 0, 0, 0}, {EpilogueOp::Kind::kRelu, {}, {}, 0, 0, -1},
            qdq};
  ep.num_extra = 1;
  return ep;
}

TEST(FastEpilogue, Avx2EqualsScalarBitForBit) {
  if (!cpu_has_avx2_fma()) GTEST_SKIP() << "CPU without AVX2+FMA";
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> specials = {0.f, -0.f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 0.25f, 63.75f, 64.25f, 1e30f, -1e30f,
                                 inf, -inf, nan, 16777216.f, -16777217.f, 127.5f, -128.5f, 255.5f, 1e-40f};
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-200.f, 200.f);
  const int64_t C = 5, inner = 37;  // odd: vector body plus scalar tail
  std::vector<float> x(static_cast<std::size_t>(2 * C * inner)), extra(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = i < specials.size() ? specials[i] : (i % 7 == 0 ? std::round(dist(rng)) + 0.5f : dist(rng));
    extra[i] = i % 11 == 0 ? specials[i % specials.size()] : dist(rng) * 0.01f;
  }
  for (bool u8 : {false, true}) {
    const Epilogue ep = all_ops(C, u8);
    std::vector<float> ya(x.size()), ys(x.size());
    const float* ex[] = {extra.data()};
    epilogue_tensor(ep, x.data(), ya.data(), ex, 2, C, inner, /*portable=*/false);
    epilogue_tensor(ep, x.data(), ys.data(), ex, 2, C, inner, /*portable=*/true);
    for (std::size_t i = 0; i < x.size(); ++i) {
      uint32_t a, b;
      std::memcpy(&a, &ya[i], 4);
      std::memcpy(&b, &ys[i], 4);
      ASSERT_EQ(a, b) << "element " << i << " x=" << x[i] << " avx2=" << ya[i] << " scalar=" << ys[i];
    }
  }
}

// The per-element form of the epilogue (all ops for one element, then the
// next), with std::nearbyint: what the blocked, vectorised portable loop
// must reproduce bit for bit.
float per_element(const Epilogue& e, int64_t c, float v, const float* const* extra, int64_t i) {
  const std::size_t ci = static_cast<std::size_t>(c);
  if (!e.bias.empty()) v = v + e.bias[ci];
  for (const EpilogueOp& op : e.ops) {
    switch (op.kind) {
      case EpilogueOp::Kind::kAddConst: v = v + op.a[ci]; break;
      case EpilogueOp::Kind::kMulConst: v = v * op.a[ci]; break;
      case EpilogueOp::Kind::kRelu: v = v > 0.f ? v : 0.f; break;
      case EpilogueOp::Kind::kAddTensor: v = v + extra[op.extra][i]; break;
      case EpilogueOp::Kind::kQdq: {
        float t = std::nearbyint(v / op.a[ci]) + op.z[ci];
        if (std::isnan(t)) t = 0.f;
        t = t < op.lo ? op.lo : (t > op.hi ? op.hi : t);
        v = (t - op.z[ci]) * op.a[ci];
        break;
      }
    }
  }
  return v;
}

TEST(FastEpilogue, PortableBlockedLoopEqualsPerElementForm) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> specials = {0.f, -0.f, 0.5f, -0.5f, -0.25f, 1.5f, 2.5f, -2.5f, 1e30f, -1e30f, inf, -inf, nan,
                                       8388607.5f, 8388608.f, 8388609.f, -8388607.5f, 16777215.f, 1e-40f, -1e-40f,
                                       127.5f, -128.5f, 255.5f, 4194303.5f};
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-300.f, 300.f);
  const int64_t C = 2, inner = 2500;  // several 1024-element blocks and a tail
  std::vector<float> x(static_cast<std::size_t>(C * inner)), extra(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = i < specials.size() ? specials[i] : (i % 3 == 0 ? std::round(dist(rng)) + 0.5f : dist(rng));
    extra[i] = i % 17 == 0 ? specials[i % specials.size()] : dist(rng) * 0.01f;
  }
  for (bool u8 : {false, true}) {
    const Epilogue ep = all_ops(C, u8);
    // Scales 1 and 2^-20 reach the 2^23 boundary of the rounding trick.
    Epilogue wide = ep;
    wide.ops.push_back({EpilogueOp::Kind::kQdq, {1.f, 0x1p-20f}, {0.f, 3.f}, -8388608.f * 4, 8388608.f * 4, -1});
    for (const Epilogue* e : std::vector<const Epilogue*>{&ep, &wide}) {
      std::vector<float> y(x.size()), in_place = x;
      const float* ex[] = {extra.data()};
      epilogue_tensor(*e, x.data(), y.data(), ex, 1, C, inner, /*portable=*/true);
      epilogue_tensor(*e, in_place.data(), in_place.data(), ex, 1, C, inner, /*portable=*/true);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < inner; ++i) {
          const std::size_t at = static_cast<std::size_t>(c * inner + i);
          const float* exc[] = {extra.data() + c * inner};
          const float want = per_element(*e, c, x[at], exc, i);
          uint32_t a, b, w;
          std::memcpy(&a, &y[at], 4);
          std::memcpy(&b, &in_place[at], 4);
          std::memcpy(&w, &want, 4);
          ASSERT_EQ(a, w) << "c=" << c << " i=" << i << " x=" << x[at] << " got " << y[at] << " want " << want;
          ASSERT_EQ(b, w) << "in place, c=" << c << " i=" << i;
        }
    }
  }
}

TEST(FastEpilogue, QdqRoundTripFollowsOnnxRounding) {
  Epilogue ep;
  ep.ops.push_back({EpilogueOp::Kind::kQdq, {0.5f}, {-3.f}, -128.f, 127.f, -1});
  const std::vector<float> x = {0.25f, 0.75f, -0.25f, -0.75f, 1000.f, -1000.f, std::nanf("")};
  // x / 0.5 = 0.5 -> 0 (even), 1.5 -> 2, -0.5 -> -0, -1.5 -> -2; saturation at 127 / -128; NaN -> code 0.
  const std::vector<float> want = {0.f, 1.f, 0.f, -1.f, (127.f + 3.f) * 0.5f, (-128.f + 3.f) * 0.5f, 3.f * 0.5f};
  for (bool portable : {true, false}) {
    if (!portable && !cpu_has_avx2_fma()) continue;
    std::vector<float> y(x.size());
    epilogue_tensor(ep, x.data(), y.data(), nullptr, 1, 1, static_cast<int64_t>(x.size()), portable);
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], want[i]) << "x=" << x[i] << " portable=" << portable;
  }
}

}  // namespace
}  // namespace qpipe::fast
