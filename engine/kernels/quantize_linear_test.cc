// QuantizeLinear / DequantizeLinear exactly as the ONNX spec defines them:
//   q = saturate(round_half_to_even(x / scale) + zero_point), x / scale in float32
//   x = (q - zero_point) * scale
// Inline goldens at exact .5 ties, saturation for int8 and uint8 (incl. +-inf),
// per-axis along axis 0 and 1, int32 DequantizeLinear (biases), and a seeded
// sweep against a reference written here (its own round-half-even, not
// std::nearbyint). Also pins that x / scale is divided in float32, as ONNX
// Runtime and the spec's numpy reference do: a quotient that is just above k.5
// in exact arithmetic but rounds to k.5 in float32 must round to even.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/fixtures/kernel_runner.h"

namespace qpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::f32;
using testing::KernelRunner;
using testing::Rng;
using testing::typed;

// Round half to even on a double, from floor (independent of fenv / nearbyint).
double round_half_even(double v) {
  const double f = std::floor(v), d = v - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

template <typename Q>
Q quantize_ref(float x, float scale, int zp) {
  const float r = x / scale;  // float32 division, as the spec's reference and ORT compute it
  double v = std::isinf(r) ? (r > 0 ? 1e300 : -1e300) : round_half_even(r) + zp;
  v = std::min<double>(std::max<double>(v, std::numeric_limits<Q>::min()), std::numeric_limits<Q>::max());
  return static_cast<Q>(v);
}

template <typename Q>
std::vector<int> ints(const Tensor& t) {
  std::vector<int> out;
  for (Q v : t.span<Q>()) out.push_back(static_cast<int>(v));
  return out;
}

Tensor quantize(const Tensor& x, const Tensor& scale, std::optional<Tensor> zp, int64_t axis = 1,
                bool has_axis = false) {
  KernelRunner r("QuantizeLinear", "q");
  r.input("x", x).constant("scale", scale);
  if (zp) r.constant("zp", *zp);
  if (has_axis) r.attr("axis", axis);
  return r.run1();
}

// -------------------------------------------------------------------- ties

TEST(QuantizeLinearKernel, ExactTiesRoundHalfToEven) {
  // scale 0.5: x / scale is exact, so x = k.5 * scale is an exact tie.
  const std::vector<float> x = {1.25f, 1.75f, -1.25f, -1.75f, 0.25f, -0.25f, 0.75f, 2.25f, -0.75f, 63.25f};
  //                       2.5 -> 2, 3.5 -> 4, -2.5 -> -2, -3.5 -> -4, 0.5 -> 0, -0.5 -> -0, 1.5 -> 2, 4.5 -> 4, -1.5 -> -2, 126.5 -> 126
  const Tensor s = Tensor::scalar<float>(0.5f);
  const Tensor zp0 = Tensor::scalar<int8_t>(0);
  EXPECT_THAT(ints<int8_t>(quantize(f32({10}, x), s, zp0)), ElementsAre(2, 4, -2, -4, 0, 0, 2, 4, -2, 126));
  // The zero point is added after rounding: same ties with zp = 3 (odd).
  const Tensor zp3 = Tensor::scalar<int8_t>(3);
  EXPECT_THAT(ints<int8_t>(quantize(f32({10}, x), s, zp3)), ElementsAre(5, 7, 1, -1, 3, 3, 5, 7, 1, 127));
  // uint8 with zp 128.
  const Tensor zp128 = Tensor::scalar<uint8_t>(128);
  EXPECT_THAT(ints<uint8_t>(quantize(f32({10}, x), s, zp128)),
              ElementsAre(130, 132, 126, 124, 128, 128, 130, 132, 126, 254));
}

TEST(QuantizeLinearKernel, TieWithNonPowerOfTwoScale) {
  // x = 2.5 * scale etc. built so that x / scale is exactly k.5 in float32.
  const float s = 0.1f;
  for (float k : {2.5f, 3.5f, -2.5f, -3.5f, 16.5f, 17.5f}) {
    float x = k * s;
    // Walk to an x whose float32 quotient is exactly the tie.
    for (int step = 0; step < 64 && x / s != k; ++step) x = std::nextafter(x, x / s < k ? 1e9f : -1e9f);
    ASSERT_EQ(x / s, k) << "no float32 x gives an exact tie " << k;
    const int want = static_cast<int>(round_half_even(k));
    Tensor q = quantize(f32({1}, std::vector<float>{x}), Tensor::scalar<float>(s), std::nullopt);
    // No zero point: uint8 output, zp 0; negative ties saturate to 0.
    EXPECT_EQ(ints<uint8_t>(q)[0], std::max(want, 0)) << "x = " << x << ", x/scale = " << k;
    const Tensor zp = Tensor::scalar<int8_t>(0);
    EXPECT_EQ(ints<int8_t>(quantize(f32({1}, std::vector<float>{x}), Tensor::scalar<float>(s), zp))[0], want)
        << "x = " << x << ", x/scale = " << k;
  }
}

TEST(QuantizeLinearKernel, DividesInFloat32LikeTheSpec) {
  // Find x whose exact quotient x/s is slightly above k.5 (k even) while the
  // float32 quotient is exactly k.5: the spec (float32 division, then round
  // half to even) gives k; a division in double would give k + 1.
  const float s = 0.108340368f;  // conv2d_3_q's scale in the int8 reference model
  bool found = false;
  for (float k = 16.5f; k < 60.f && !found; k += 2.f) {
    float x = k * s;
    for (int step = 0; step < 400; ++step, x = std::nextafter(x, 1e9f)) {
      if (!(x / s == k && static_cast<double>(x) / static_cast<double>(s) > k)) continue;
      found = true;
      const Tensor zp = Tensor::scalar<int8_t>(0);
      EXPECT_EQ(ints<int8_t>(quantize(f32({1}, std::vector<float>{x}), Tensor::scalar<float>(s), zp))[0],
                static_cast<int>(k - 0.5f))
          << "x = " << x << ": exact quotient " << static_cast<double>(x) / s << ", float32 quotient " << k;
      break;
    }
  }
  ASSERT_TRUE(found) << "no float32 x with a float32 tie above an exact k.5 was found";
}

// -------------------------------------------------------------- saturation

TEST(QuantizeLinearKernel, SaturatesInt8AndUint8) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> x = {127.4f, 127.5f, 1000.f, -128.5f, -129.f, -1e9f, inf, -inf, 126.5f};
  const Tensor one = Tensor::scalar<float>(1.f);
  const Tensor zp0 = Tensor::scalar<int8_t>(0);
  EXPECT_THAT(ints<int8_t>(quantize(f32({9}, x), one, zp0)), ElementsAre(127, 127, 127, -128, -128, -128, 127, -128, 126));
  // Saturation applies after adding the zero point.
  const Tensor zpm = Tensor::scalar<int8_t>(-100);
  EXPECT_THAT(ints<int8_t>(quantize(f32({3}, std::vector<float>{-30, -28, 230}), one, zpm)), ElementsAre(-128, -128, 127));
  const Tensor two = Tensor::scalar<float>(2.f);
  const Tensor zpu = Tensor::scalar<uint8_t>(10);
  // -100/2+10 = -40 -> 0; 500/2+10 = 260 -> 255; 490/2+10 = 255; 489/2 = 244.5 -> 244 +10 = 254; 0 -> 10.
  EXPECT_THAT(ints<uint8_t>(quantize(f32({6}, std::vector<float>{-100, 500, 490, 489, 0, -inf}), two, zpu)),
              ElementsAre(0, 255, 255, 254, 10, 0));
}

TEST(QuantizeLinearKernel, DefaultZeroPointIsUint8Zero) {
  Tensor q = quantize(f32({4}, std::vector<float>{-1.f, 0.4f, 2.6f, 300.f}), Tensor::scalar<float>(1.f), std::nullopt);
  ASSERT_EQ(q.dtype(), DType::kUInt8);
  EXPECT_THAT(ints<uint8_t>(q), ElementsAre(0, 0, 3, 255));
}

// -------------------------------------------------------------- per-axis

TEST(QuantizeLinearKernel, PerAxisAlongAxis1And0) {
  Rng rng(21);
  const Shape xs = {2, 3, 2, 2};
  Tensor x = rng.tensor(xs, -60.f, 60.f);
  const std::vector<float> s1 = {0.5f, 0.25f, 2.f};
  const std::vector<int8_t> z1 = {0, -3, 5};
  Tensor q = quantize(x, f32({3}, s1), typed<int8_t>({3}, z1), 1, true);
  std::vector<int> want;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const auto c = static_cast<std::size_t>((i / 4) % 3);
    want.push_back(quantize_ref<int8_t>(x.data<float>()[i], s1[c], z1[c]));
  }
  EXPECT_THAT(ints<int8_t>(q), ElementsAreArray(want)) << "axis 1";
  // The default axis is 1.
  Tensor qd = quantize(x, f32({3}, s1), typed<int8_t>({3}, z1));
  EXPECT_THAT(ints<int8_t>(qd), ElementsAreArray(want)) << "default axis";

  const std::vector<float> s0 = {0.75f, 0.3f};
  const std::vector<uint8_t> z0 = {128, 7};
  Tensor q0 = quantize(x, f32({2}, s0), typed<uint8_t>({2}, z0), 0, true);
  want.clear();
  for (int64_t i = 0; i < x.numel(); ++i) {
    const auto n = static_cast<std::size_t>(i / 12);
    want.push_back(quantize_ref<uint8_t>(x.data<float>()[i], s0[n], z0[n]));
  }
  EXPECT_THAT(ints<uint8_t>(q0), ElementsAreArray(want)) << "axis 0";

  // Negative axis: -1 on [4,3] means the last axis.
  Tensor x2 = rng.tensor({4, 3}, -10.f, 10.f);
  Tensor qn = quantize(x2, f32({3}, s1), typed<int8_t>({3}, z1), -1, true);
  want.clear();
  for (int64_t i = 0; i < x2.numel(); ++i)
    want.push_back(quantize_ref<int8_t>(x2.data<float>()[i], s1[static_cast<std::size_t>(i % 3)], z1[static_cast<std::size_t>(i % 3)]));
  EXPECT_THAT(ints<int8_t>(qn), ElementsAreArray(want)) << "axis -1";
}

TEST(DequantizeLinearKernel, PerTensorAndPerAxis) {
  // int8 per tensor with zp.
  Tensor y = KernelRunner("DequantizeLinear")
                 .input("q", typed<int8_t>({5}, {-128, -1, 0, 5, 127}))
                 .constant("s", Tensor::scalar<float>(0.5f))
                 .constant("zp", Tensor::scalar<int8_t>(5))
                 .run1();
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()), ElementsAre(-66.5f, -3.f, -2.5f, 0.f, 61.f));
  // uint8 without zp.
  Tensor u = KernelRunner("DequantizeLinear")
                 .input("q", typed<uint8_t>({3}, {0, 1, 255}))
                 .constant("s", Tensor::scalar<float>(0.25f))
                 .run1();
  EXPECT_THAT(std::vector<float>(u.span<float>().begin(), u.span<float>().end()), ElementsAre(0.f, 0.25f, 63.75f));
  // Per-axis along axis 0 (conv weights [M, C, kh, kw]), as constant folding would see it.
  std::vector<int8_t> w(2 * 3 * 2 * 2);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<int8_t>(static_cast<int>(i) * 11 - 120);
  const std::vector<float> s = {0.01f, 0.3f};
  Tensor wd = KernelRunner("DequantizeLinear")
                  .constant("w", typed<int8_t>({2, 3, 2, 2}, w))
                  .constant("s", f32({2}, s))
                  .constant("zp", typed<int8_t>({2}, {0, 0}))
                  .attr("axis", int64_t{0})
                  .run1();
  std::vector<double> ref;
  for (std::size_t i = 0; i < w.size(); ++i) ref.push_back(static_cast<float>(w[i] * s[i / 12]));
  EXPECT_TRUE(testing::close_to_reference(wd, ref, 0.0, "DQ per-axis axis 0"));
  // Per-axis along axis 1 with zero points, runtime input.
  Tensor a = KernelRunner("DequantizeLinear")
                 .input("q", typed<uint8_t>({2, 3}, {0, 10, 255, 128, 129, 1}))
                 .constant("s", f32({3}, std::vector<float>{1.f, 0.5f, 2.f}))
                 .constant("zp", typed<uint8_t>({3}, {128, 10, 0}))
                 .run1();
  EXPECT_THAT(std::vector<float>(a.span<float>().begin(), a.span<float>().end()),
              ElementsAre(-128.f, 0.f, 510.f, 0.f, 59.5f, 2.f));
}

TEST(DequantizeLinearKernel, Int32Bias) {
  // Biases: int32, zero point 0 (or absent), scale = s_x * s_w.
  const std::vector<int32_t> b = {-16777216, -123457, -1, 0, 1, 98765, 16777215};
  const float s = 0.00123f;
  for (bool with_zp : {false, true}) {
    KernelRunner r("DequantizeLinear");
    r.constant("b", typed<int32_t>({7}, b)).constant("s", Tensor::scalar<float>(s));
    if (with_zp) r.constant("zp", Tensor::scalar<int32_t>(0));
    Tensor y = r.run1();
    ASSERT_EQ(y.dtype(), DType::kFloat32);
    std::vector<double> ref;
    for (int32_t v : b) ref.push_back(static_cast<float>(static_cast<double>(v) * s));  // |v| <= 2^24: exact in float
    EXPECT_TRUE(testing::close_to_reference(y, ref, 0.0, with_zp ? "int32 DQ with zp" : "int32 DQ"));
  }
  // Int32 quantize (rarely used, but in the op's type list).
  Tensor q = quantize(f32({3}, std::vector<float>{2.5f, -3e9f, 3e9f}), Tensor::scalar<float>(1.f),
                      Tensor::scalar<int32_t>(0));
  ASSERT_EQ(q.dtype(), DType::kInt32);
  EXPECT_EQ(q.data<int32_t>()[0], 2);
  EXPECT_EQ(q.data<int32_t>()[1], std::numeric_limits<int32_t>::min());
  EXPECT_EQ(q.data<int32_t>()[2], std::numeric_limits<int32_t>::max());
}

// ----------------------------------------------------------- random sweep

TEST(QuantizeLinearKernel, SeededSweepMatchesReferenceAndRoundTrips) {
  Rng rng(7767517u);
  for (int trial = 0; trial < 20; ++trial) {
    const float scale = rng.uniform(0.001f, 0.5f);
    const int zp = static_cast<int>(rng.integer(-128, 127));
    const Shape xs = {7, 13, 3, 1 + trial % 4};
    Tensor x = rng.tensor(xs, -140.f * scale, 140.f * scale);  // some values saturate
    // Sprinkle exact-tie candidates: x = (k + 0.5) * scale.
    for (int64_t i = 0; i < x.numel(); i += 5)
      x.data<float>()[i] = (static_cast<float>(rng.integer(-130, 130)) + 0.5f) * scale;
    const Tensor zpt = Tensor::scalar<int8_t>(static_cast<int8_t>(zp));
    KernelRunner qr("QuantizeLinear", "q");
    qr.batched_input("x", x).constant("s", Tensor::scalar<float>(scale)).constant("zp", zpt);
    Tensor q = qr.run1();
    std::vector<int> want;
    for (float v : x.span<float>()) want.push_back(quantize_ref<int8_t>(v, scale, zp));
    ASSERT_THAT(ints<int8_t>(q), ElementsAreArray(want)) << "scale " << scale << " zp " << zp;
    // Q then DQ: error at most scale/2 inside the representable range (plus
    // the float32 rounding of the DQ product).
    Tensor d = KernelRunner("DequantizeLinear")
                   .batched_input("q", q)
                   .constant("s", Tensor::scalar<float>(scale))
                   .constant("zp", zpt)
                   .run1();
    const double lo = (-128 - zp) * static_cast<double>(scale), hi = (127 - zp) * static_cast<double>(scale);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double v = x.data<float>()[i];
      const double clamped = std::min(std::max(v, lo), hi);
      ASSERT_LE(std::fabs(d.data<float>()[i] - clamped), 0.5 * scale + std::ldexp(std::fabs(clamped) + scale, -22))
          << "x = " << v << " scale " << scale << " zp " << zp;
    }
  }
}

// ------------------------------------------------------------------ errors

TEST(QuantizeLinearKernel, InvalidParametersAreReportedWithTheNode) {
  // Session reports every prepare problem (invalid or unsupported) in one
  // kUnsupported error, so only the unsupported kind is checked exactly.
  auto expect_error = [](KernelRunner r, ErrorKind kind, const std::string& what) {
    try {
      r.run1();
      ADD_FAILURE() << "accepted; expected an error mentioning " << what;
    } catch (const PtqError& e) {
      if (kind == ErrorKind::kUnsupported) {
        EXPECT_EQ(e.kind(), kind) << e.what();
      }
      EXPECT_THAT(e.what(), HasSubstr("q_bad"));
      EXPECT_THAT(e.what(), HasSubstr(what));
    }
  };
  const Tensor x = f32({2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6});
  {
    KernelRunner r("QuantizeLinear", "q_bad");
    r.input("x", x).constant("s", Tensor::scalar<float>(0.f)).constant("zp", Tensor::scalar<int8_t>(0));
    expect_error(r, ErrorKind::kInput, "positive");
  }
  {
    KernelRunner r("QuantizeLinear", "q_bad");
    r.input("x", x).constant("s", f32({2}, std::vector<float>{1, 1})).constant("zp", typed<int8_t>({2}, {0, 0}));
    expect_error(r, ErrorKind::kInput, "axis");  // 2 scales, axis 1 has 3 entries
  }
  {
    KernelRunner r("QuantizeLinear", "q_bad");
    r.input("x", x).input("s", Tensor::scalar<float>(1.f));
    expect_error(r, ErrorKind::kUnsupported, "constant");
  }
  {
    KernelRunner r("QuantizeLinear", "q_bad");
    r.input("x", x).constant("s", Tensor::scalar<float>(1.f)).attr("block_size", int64_t{2});
    expect_error(r, ErrorKind::kUnsupported, "block_size");
  }
  {
    KernelRunner r("DequantizeLinear", "q_bad");
    r.input("x", typed<int8_t>({2}, {1, 2})).constant("s", Tensor::scalar<float>(1.f)).constant("zp", Tensor::scalar<uint8_t>(0));
    expect_error(r, ErrorKind::kInput, "zero point type");
  }
}

}  // namespace
}  // namespace qpipe
