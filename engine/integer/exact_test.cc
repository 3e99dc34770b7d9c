// exec_mode "exact": kernels against a scalar int64 reference on ResNet8's
// real conv shapes and odd shapes (every ISA path bit for bit; ISA tests skip
// with a message when the CPU lacks the extension), elementwise ops, and the
// whole mode on the shared test set (needs ../shared): agreement with
// reference semantics on the study's int8 model and a qpipe-quantized uint8
// model, batch/thread invariance, scalar vs SIMD sessions.

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <random>

#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/graph.h"
#include "engine/integer/exact.h"
#include "engine/kernels/reference/quantize_linear.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "quant/calibrate.h"
#include "quant/ptq.h"
#include "tests/test_support.h"

namespace qpipe::integer {
namespace {

constexpr ExactIsa kIsas[] = {ExactIsa::kScalar, ExactIsa::kAvx2, ExactIsa::kAvx512Vnni};

// The documented output stage, written independently of the kernels.
int32_t ref_out(int64_t acc, float mult, const ExactOutput& o) {
  float v = static_cast<float>(static_cast<int32_t>(acc)) * mult;
  v = std::fmin(std::fmax(v, -65536.f), 65536.f);
  int64_t r = static_cast<int64_t>(std::nearbyint(v)) + o.zp;
  if (o.relu) r = std::max<int64_t>(r, o.zp);
  return static_cast<int32_t>(std::clamp<int64_t>(r, o.is_signed ? -128 : 0, o.is_signed ? 127 : 255));
}

int32_t code(uint8_t raw, bool is_signed) { return is_signed ? static_cast<int8_t>(raw) : raw; }
int32_t code_of_out(uint8_t raw, const ExactOutput& o) { return code(raw, o.is_signed); }

// Seven-loop int64 convolution with zero points: sum (x - zx)(w - zw) + b, padding skipped.
std::vector<uint8_t> ref_conv(const ExactConvParams& q, const std::vector<uint8_t>& x, int64_t n) {
  const auto& p = q.p;
  std::vector<uint8_t> y(static_cast<std::size_t>(n * p.m * p.out_h * p.out_w));
  for (int64_t b = 0; b < n; ++b)
    for (int64_t m = 0; m < p.m; ++m)
      for (int64_t oh = 0; oh < p.out_h; ++oh)
        for (int64_t ow = 0; ow < p.out_w; ++ow) {
          int64_t acc = q.bias[static_cast<std::size_t>(m)];
          for (int64_t c = 0; c < p.c; ++c)
            for (int64_t i = 0; i < p.kh; ++i)
              for (int64_t j = 0; j < p.kw; ++j) {
                const int64_t h = oh * p.sh - p.pad_top + i * p.dh, w = ow * p.sw - p.pad_left + j * p.dw;
                if (h < 0 || h >= p.h || w < 0 || w >= p.w) continue;
                const int64_t xv = code(x[static_cast<std::size_t>(((b * p.c + c) * p.h + h) * p.w + w)], q.x_signed) - q.zp_x;
                const int64_t wv = code(q.w[static_cast<std::size_t>(((m * p.c + c) * p.kh + i) * p.kw + j)], q.w_signed) -
                                   q.zp_w[static_cast<std::size_t>(m)];
                acc += xv * wv;
              }
          y[static_cast<std::size_t>(((b * p.m + m) * p.out_h + oh) * p.out_w + ow)] =
              static_cast<uint8_t>(ref_out(acc, q.multiplier[static_cast<std::size_t>(m)], q.out));
        }
  return y;
}

struct ConvCase {
  const char* name;
  reference::ConvParams p;
};

// ResNet8's convolutions (TF 'same': stride-2 3x3 pads 0 top/left) and odd shapes.
const ConvCase kCases[] = {
    {"conv2d 3->16 32x32", {2, 3, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 32, 32}},
    {"conv2d_1 16->16 32x32", {2, 16, 32, 32, 16, 3, 3, 1, 1, 1, 1, 1, 1, 32, 32}},
    {"conv2d_3 16->32 s2", {2, 16, 32, 32, 32, 3, 3, 2, 2, 1, 1, 0, 0, 16, 16}},
    {"conv2d_4 32->32 16x16", {2, 32, 16, 16, 32, 3, 3, 1, 1, 1, 1, 1, 1, 16, 16}},
    {"conv2d_5 1x1 16->32 s2", {2, 16, 32, 32, 32, 1, 1, 2, 2, 1, 1, 0, 0, 16, 16}},
    {"conv2d_6 32->64 s2", {2, 32, 16, 16, 64, 3, 3, 2, 2, 1, 1, 0, 0, 8, 8}},
    {"conv2d_7 64->64 8x8", {2, 64, 8, 8, 64, 3, 3, 1, 1, 1, 1, 1, 1, 8, 8}},
    {"conv2d_8 1x1 32->64 s2", {2, 32, 16, 16, 64, 1, 1, 2, 2, 1, 1, 0, 0, 8, 8}},
    {"odd 5->10 7x9 dil2", {3, 5, 7, 9, 10, 3, 2, 1, 1, 2, 2, 2, 1, 7, 8}},
    {"odd 3->6 s3 5x5", {1, 3, 11, 13, 6, 5, 5, 3, 3, 1, 1, 2, 2, 4, 4}},
};

ExactConvParams random_conv(const reference::ConvParams& p, bool x_signed, bool w_signed, bool zw, bool relu,
                            std::mt19937& rng) {
  ExactConvParams q;
  q.p = p;
  q.x_signed = x_signed;
  q.w_signed = w_signed;
  std::uniform_int_distribution<int> byte(0, 255);
  q.w.resize(static_cast<std::size_t>(p.m * p.c * p.kh * p.kw));
  for (auto& v : q.w) v = static_cast<uint8_t>(byte(rng));
  std::uniform_int_distribution<int> zpd(x_signed ? -128 : 0, x_signed ? 127 : 255);
  q.zp_x = zpd(rng);
  std::uniform_int_distribution<int> bias(-20000, 20000);
  for (int64_t m = 0; m < p.m; ++m) {
    q.zp_w.push_back(zw ? (w_signed ? byte(rng) - 128 : byte(rng)) : (w_signed ? 0 : 128));
    q.bias.push_back(bias(rng));
    q.multiplier.push_back(std::ldexp(1.f + static_cast<float>(byte(rng)) / 256.f, -10 - byte(rng) % 4));
  }
  q.out.is_signed = byte(rng) % 2 == 0;
  q.out.zp = q.out.is_signed ? byte(rng) - 128 : byte(rng);
  q.out.relu = relu;
  return q;
}

std::vector<uint8_t> run_conv(const OpKernel& k, const ExactConvParams& q, const std::vector<uint8_t>& x) {
  const auto& p = q.p;
  Tensor xt(q.x_signed ? DType::kInt8 : DType::kUInt8, {p.n, p.c, p.h, p.w});
  std::memcpy(xt.raw(), x.data(), x.size());
  Tensor yt(q.out.is_signed ? DType::kInt8 : DType::kUInt8, {p.n, p.m, p.out_h, p.out_w});
  const Tensor* in[] = {&xt};
  Tensor* out[] = {&yt};
  k.eval(in, out);
  const auto* b = static_cast<const uint8_t*>(yt.raw());
  return {b, b + yt.numel()};
}

class ExactConvIsa : public ::testing::TestWithParam<ExactIsa> {};

TEST_P(ExactConvIsa, MatchesInt64ReferenceOnResNet8ShapesBitForBit) {
  const ExactIsa isa = GetParam();
  if (!exact_isa_supported(isa)) GTEST_SKIP() << "CPU lacks " << exact_isa_name(isa) << "; path not tested here";
  std::mt19937 rng(7);
  int variant = 0;
  for (const auto& c : kCases) {
    for (int v = 0; v < 4; ++v, ++variant) {
      const bool xs = v % 2 == 0, ws = v < 2;
      const bool zw = !ws || v == 1;  // uint8 weights always carry a zero point; one int8 variant too
      ExactConvParams q = random_conv(c.p, xs, ws, zw, variant % 3 == 0, rng);
      std::vector<uint8_t> x(static_cast<std::size_t>(c.p.n * c.p.c * c.p.h * c.p.w));
      std::uniform_int_distribution<int> byte(0, 255);
      for (auto& b : x) b = static_cast<uint8_t>(byte(rng));
      if (v == 3) std::fill(x.begin(), x.begin() + static_cast<long>(x.size() / 2), xs ? 0x7f : 0xff);  // extremes
      auto k = make_exact_conv(q, isa);
      ASSERT_TRUE(k) << c.name;
      const auto want = ref_conv(q, x, c.p.n);
      const auto got = run_conv(*k, q, x);
      ASSERT_EQ(got.size(), want.size());
      std::size_t diffs = 0, first = want.size();
      for (std::size_t i = 0; i < want.size(); ++i)
        if (got[i] != want[i] && diffs++ == 0) first = i;
      EXPECT_EQ(diffs, 0u) << c.name << " variant " << v << " (" << exact_isa_name(isa) << "): first diff at " << first
                           << " got " << int(got[first < got.size() ? first : 0]) << " want "
                           << int(want[first < want.size() ? first : 0]);
    }
  }
}

TEST_P(ExactConvIsa, FusedPostOpsMatchTheDocumentedFormula) {
  const ExactIsa isa = GetParam();
  if (!exact_isa_supported(isa)) GTEST_SKIP() << "CPU lacks " << exact_isa_name(isa) << "; path not tested here";
  std::mt19937 rng(13);
  std::uniform_int_distribution<int> byte(0, 255);
  for (const auto& c : {kCases[1], kCases[5], kCases[8]}) {
    ExactConvParams q = random_conv(c.p, true, true, false, false, rng);
    const ExactConvParams plain = q;
    // conv codes -> Mul by a per-channel constant -> Add of a per-channel constant (+ Relu).
    ExactPostOp mul, add;
    mul.is_mul = true;
    mul.za = q.out.zp;
    mul.out.is_signed = true;
    mul.out.zp = byte(rng) - 128;
    add.za = mul.out.zp;
    add.out.is_signed = false;
    add.out.zp = byte(rng);
    add.out.relu = true;
    for (int64_t m = 0; m < c.p.m; ++m) {
      mul.bz.push_back(byte(rng) - 128);
      mul.m.push_back(std::ldexp(1.f + static_cast<float>(byte(rng)) / 256.f, -6));
      add.m.push_back(0.5f + static_cast<float>(byte(rng)) / 256.f);
      add.tb.push_back(static_cast<float>(byte(rng) - 128) * 0.37f);
    }
    q.post = {mul, add};
    std::vector<uint8_t> x(static_cast<std::size_t>(c.p.n * c.p.c * c.p.h * c.p.w));
    for (auto& b : x) b = static_cast<uint8_t>(byte(rng));
    const auto base = ref_conv(plain, x, c.p.n);
    auto k = make_exact_conv(q, isa);
    ASSERT_TRUE(k);
    const auto got = run_conv(*k, q, x);
    const int64_t plane = c.p.out_h * c.p.out_w;
    for (std::size_t i = 0; i < base.size(); ++i) {
      const auto m = static_cast<std::size_t>((static_cast<int64_t>(i) / plane) % c.p.m);
      int32_t code = code_of_out(base[i], plain.out);
      for (const ExactPostOp* op : {&mul, &add}) {
        const int32_t a = code - op->za;
        volatile float t;
        float v;
        if (op->is_mul) {
          v = static_cast<float>(a * op->bz[m]) * op->m[m];
        } else {
          t = static_cast<float>(a) * op->m[m];
          v = t + op->tb[m];
        }
        v = std::fmin(std::fmax(v, -65536.f), 65536.f);
        int32_t r = static_cast<int32_t>(std::nearbyint(v)) + op->out.zp;
        if (op->out.relu) r = std::max(r, op->out.zp);
        code = std::clamp(r, op->out.is_signed ? -128 : 0, op->out.is_signed ? 127 : 255);
      }
      ASSERT_EQ(code_of_out(got[i], add.out), code) << c.name << " element " << i << " (" << exact_isa_name(isa) << ")";
    }
  }
}

TEST_P(ExactConvIsa, BinaryOpsMatchTheDocumentedFormula) {
  const ExactIsa isa = GetParam();
  if (!exact_isa_supported(isa)) GTEST_SKIP() << "CPU lacks " << exact_isa_name(isa) << "; path not tested here";
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int v = 0; v < 8; ++v) {
    ExactBinaryParams bp;
    bp.is_mul = v % 2 == 1;
    bp.a_signed = v % 4 < 2;
    bp.b_signed = !bp.a_signed;
    bp.b_is_const = v >= 4;
    bp.channels = 5;
    bp.inner = 37;  // odd: exercises the SIMD tail
    bp.zp_a = bp.a_signed ? byte(rng) - 128 : byte(rng);
    bp.scale_a = 0.01f + static_cast<float>(byte(rng)) / 1000.f;
    bp.scale_y = 0.02f + static_cast<float>(byte(rng)) / 1000.f;
    if (bp.is_mul) bp.scale_y *= 2.f;
    if (bp.b_is_const) {
      for (int c = 0; c < bp.channels; ++c) {
        bp.b_codes.push_back(bp.b_signed ? byte(rng) - 128 : byte(rng));
        bp.zp_b.push_back(bp.b_signed ? byte(rng) - 128 : byte(rng));
        bp.scale_b.push_back(0.005f + static_cast<float>(byte(rng)) / 3000.f);
      }
    } else {
      bp.zp_b = {bp.b_signed ? byte(rng) - 128 : byte(rng)};
      bp.scale_b = {0.01f + static_cast<float>(byte(rng)) / 1000.f};
    }
    bp.out.is_signed = v % 3 != 0;
    bp.out.zp = bp.out.is_signed ? byte(rng) - 128 : byte(rng);
    bp.out.relu = v % 3 == 1;
    const int64_t n = 3, per = bp.channels * bp.inner;
    Tensor a(bp.a_signed ? DType::kInt8 : DType::kUInt8, {n, bp.channels, bp.inner});
    Tensor b(bp.b_signed ? DType::kInt8 : DType::kUInt8, {n, bp.channels, bp.inner});
    auto* ar = static_cast<uint8_t*>(a.raw());
    auto* br = static_cast<uint8_t*>(b.raw());
    for (int64_t i = 0; i < a.numel(); ++i) {
      ar[i] = static_cast<uint8_t>(byte(rng));
      br[i] = static_cast<uint8_t>(byte(rng));
    }
    Tensor y(bp.out.is_signed ? DType::kInt8 : DType::kUInt8, {n, bp.channels, bp.inner});
    auto k = make_exact_binary(bp, isa);
    std::vector<const Tensor*> in{&a};
    if (!bp.b_is_const) in.push_back(&b);
    Tensor* out[] = {&y};
    k->eval(in, out);
    const auto* yr = static_cast<const uint8_t*>(y.raw());
    for (int64_t i = 0; i < y.numel(); ++i) {
      const int64_t c = (i % per) / bp.inner;
      const std::size_t pc = bp.scale_b.size() == 1 ? 0 : static_cast<std::size_t>(c);
      const int32_t av = code(ar[i], bp.a_signed) - bp.zp_a;
      const int32_t bv = (bp.b_is_const ? bp.b_codes[static_cast<std::size_t>(c)] : code(br[i], bp.b_signed)) - bp.zp_b[pc];
      volatile float ta, tb;  // volatile: each product rounded on its own, as documented
      float vv;
      if (bp.is_mul) {
        const float m = static_cast<float>(bp.scale_a * bp.scale_b[pc]) / bp.scale_y;
        vv = static_cast<float>(av * bv) * m;
      } else {
        ta = static_cast<float>(av) * (bp.scale_a / bp.scale_y);
        tb = static_cast<float>(bv) * (bp.scale_b[pc] / bp.scale_y);
        vv = ta + tb;
      }
      vv = std::fmin(std::fmax(vv, -65536.f), 65536.f);
      int32_t q = static_cast<int32_t>(std::nearbyint(vv)) + bp.out.zp;
      if (bp.out.relu) q = std::max(q, bp.out.zp);
      q = std::clamp(q, bp.out.is_signed ? -128 : 0, bp.out.is_signed ? 127 : 255);
      ASSERT_EQ(code(yr[i], bp.out.is_signed), q) << "variant " << v << " element " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, ExactConvIsa, ::testing::ValuesIn(kIsas),
                         [](const auto& info) { return std::string(exact_isa_name(info.param)); });

TEST(ExactKernels, InputQuantizeTransposeEqualsTheReferenceQuantizeLinear) {
  // Ties (k + 0.5) * s, NaN, infinities, out-of-range values and raw pixels, NHWC [2, 3, 5, 3].
  const float s = 0.5f;
  std::vector<float> x;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-300.f, 300.f);
  for (int i = 0; i < 90; ++i) {
    switch (i % 6) {
      case 0: x.push_back((static_cast<float>(i) - 45.f + 0.5f) * s); break;
      case 1: x.push_back(i == 7 ? std::nanf("") : (i == 13 ? INFINITY : -INFINITY)); break;
      default: x.push_back(u(rng));
    }
  }
  const Tensor xt = Tensor::from<float>({2, 3, 5, 3}, x);
  for (bool is_signed : {true, false}) {
    const int32_t zp = is_signed ? -3 : 128;
    for (ExactIsa isa : kIsas) {
      if (!exact_isa_supported(isa)) continue;
      auto k = make_exact_quantize_nhwc(s, zp, is_signed, isa);
      Tensor y(is_signed ? DType::kInt8 : DType::kUInt8, {2, 3, 3, 5});
      const Tensor* in[] = {&xt};
      Tensor* out[] = {&y};
      k->eval(in, out);
      const auto* yr = static_cast<const uint8_t*>(y.raw());
      for (int64_t n = 0; n < 2; ++n)
        for (int64_t h = 0; h < 3; ++h)
          for (int64_t w = 0; w < 5; ++w)
            for (int64_t c = 0; c < 3; ++c) {
              const float v = x[static_cast<std::size_t>(((n * 3 + h) * 5 + w) * 3 + c)];
              const int32_t want = is_signed ? reference::quantize_value<int8_t, float>(v, s, zp)
                                             : reference::quantize_value<uint8_t, float>(v, s, zp);
              ASSERT_EQ(code(yr[((n * 3 + c) * 3 + h) * 5 + w], is_signed), want) << exact_isa_name(isa) << " x=" << v;
            }
    }
  }
}

TEST(ExactKernels, GlobalAveragePoolRoundsHalfToEvenOnTheIntegerSum) {
  // Planes of 4 int8 codes, zp_x = -128: sums (x + 128) = 6, 5, 13 over 4 -> 1.5 -> 2, 1.25 -> 1, 3.25 -> 3.
  Tensor x = Tensor::from<int8_t>({1, 3, 2, 2}, std::vector<int8_t>{-127, -126, -126, -127, -127, -127, -127, -126,
                                                                     -125, -125, -125, -124});
  ExactOutput o;
  o.is_signed = false;
  o.zp = 0;
  auto k = make_exact_global_avgpool(4, true, -128, 0.5f, 0.5f, o);
  Tensor y(DType::kUInt8, {1, 3, 1, 1});
  const Tensor* in[] = {&x};
  Tensor* out[] = {&y};
  k->eval(in, out);
  EXPECT_EQ(y.data<uint8_t>()[0], 2);
  EXPECT_EQ(y.data<uint8_t>()[1], 1);
  EXPECT_EQ(y.data<uint8_t>()[2], 3);
}

TEST(ExactKernels, ConvRefusesSumsThatCouldOverflowInt32) {
  ExactConvParams q;
  q.p = {1, 40000, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1};
  q.w.assign(40000, 1);
  q.zp_w = {0};
  q.bias = {0};
  q.multiplier = {1.f};
  EXPECT_EQ(make_exact_conv(q, ExactIsa::kScalar), nullptr);
}

// ---- whole models on the shared test set ----------------------------------

struct Agreement {
  EvalResult exact, reference;
  int64_t same = 0;
};

Agreement agree(const Model& m, const std::string& shared, bool force_portable = false) {
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  SessionOptions se;
  se.exec_mode = "exact";
  se.force_portable = force_portable;
  Session exact(m, se);
  Session ref(m);
  EvalOptions eo;
  eo.keep_predictions = true;
  Agreement a;
  tbb::task_arena arena(2);
  arena.execute([&] {
    a.exact = evaluate(exact, ds, eo);
    a.reference = evaluate(ref, ds, eo);
  });
  for (std::size_t i = 0; i < a.exact.predictions.size(); ++i) a.same += a.exact.predictions[i] == a.reference.predictions[i];
  return a;
}

TEST(ExactModel, StudyInt8ModelAgreesWithReferenceSemantics) {
  QPIPE_REQUIRE_SHARED(shared);
  const Agreement a = agree(load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx"), shared);
  ASSERT_EQ(a.exact.total, 10000);
  EXPECT_GE(a.same, 9950) << "exact " << a.exact.correct << " reference " << a.reference.correct;
  EXPECT_NEAR(static_cast<double>(a.exact.correct), static_cast<double>(a.reference.correct), 15.0);
  RecordProperty("exact_correct", static_cast<int>(a.exact.correct));
  RecordProperty("agreement", static_cast<int>(a.same));
  std::printf("[exact] study int8: exact %lld/10000, reference %lld, agreement %lld\n",
              static_cast<long long>(a.exact.correct), static_cast<long long>(a.reference.correct),
              static_cast<long long>(a.same));
}

TEST(ExactModel, QpipeUint8ModelAgreesWithReferenceSemantics) {
  QPIPE_REQUIRE_SHARED(shared);
  CalibrationSetSpec spec;
  spec.draw = 2;
  const CalibrationImages calib = load_calibration_images(shared + "/data/cifar-10-batches-bin", spec);
  PtqOptions o;
  o.config.activation_type = QType::kUInt8;
  o.config.weight_type = QType::kUInt8;  // asymmetric uint8 weights: zero points on both sides
  Model q;
  {
    tbb::task_arena arena(2);
    arena.execute([&] { q = run_ptq(load_onnx(shared + "/models/resnet8.onnx"), calib.images, o).qdq.model; });
  }
  const Agreement a = agree(q, shared);
  ASSERT_EQ(a.exact.total, 10000);
  EXPECT_GE(a.same, 9950) << "exact " << a.exact.correct << " reference " << a.reference.correct;
  EXPECT_NEAR(static_cast<double>(a.exact.correct), static_cast<double>(a.reference.correct), 15.0);
  std::printf("[exact] qpipe uint8: exact %lld/10000, reference %lld, agreement %lld\n",
              static_cast<long long>(a.exact.correct), static_cast<long long>(a.reference.correct),
              static_cast<long long>(a.same));
}

// Scalar vs the best SIMD path, batch 1 vs 64, 1 vs 2 threads, fused vs unfused: identical logits.
TEST(ExactModel, PathsBatchesAndThreadsGiveIdenticalOutputs) {
  QPIPE_REQUIRE_SHARED(shared);
  const Model m = load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx");
  auto ds = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  const Tensor images = ds.read_batch(0, 64).images;
  SessionOptions fast_o, port_o, unfused_o;
  fast_o.exec_mode = port_o.exec_mode = unfused_o.exec_mode = "exact";
  port_o.force_portable = true;
  unfused_o.fuse = false;  // BatchNorm Mul/Add groups as separate elementwise kernels
  Session fast(m, fast_o), port(m, port_o), unfused(m, unfused_o);
  const std::string logits = "dense/logits_q";
  auto run = [&](const Session& s, int threads, int64_t batch) {
    std::vector<uint8_t> all;
    tbb::task_arena arena(threads);
    arena.execute([&] {
      for (int64_t i = 0; i < 64; i += batch) {
        const Tensor out = s.run({{s.input_name(), slice_batch(images, i, batch)}}, {logits})[0];
        const auto* b = static_cast<const uint8_t*>(out.raw());
        all.insert(all.end(), b, b + out.numel());
      }
    });
    return all;
  };
  const auto a = run(fast, 2, 64);
  ASSERT_EQ(a.size(), 640u);
  EXPECT_EQ(a, run(fast, 1, 1)) << exact_isa_name(exact_best_isa(false)) << ": batch 1 / 1 thread differs";
  EXPECT_EQ(a, run(fast, 2, 1)) << exact_isa_name(exact_best_isa(false)) << ": batch 1 / 2 threads differs";
  EXPECT_EQ(a, run(port, 2, 64)) << "scalar path differs from " << exact_isa_name(exact_best_isa(false));
  EXPECT_EQ(a, run(unfused, 2, 64)) << "fusing Mul/Add into the conv output stage changed a code";
}

TEST(ExactModel, UnknownModeListsExact) {
  Model m;
  SessionOptions so;
  so.exec_mode = "exakt";
  try {
    Session s(m, so);
    FAIL() << "no error";
  } catch (const PtqError& e) {
    EXPECT_NE(std::string(e.what()).find("exact"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace qpipe::integer
