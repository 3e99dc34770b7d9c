// Conv kernel tests: hand goldens (incl. TF 'same' stride-2 padding as tf2onnx
// writes it: pads 0 top/left, 1 bottom/right), and a seeded sweep of awkward
// geometries (1x1 stride 2, auto_pad SAME_UPPER/SAME_LOWER/VALID, dilations,
// no bias, batch 1 and 7, odd channel counts) against a float64 convolution
// written here from the ONNX operator definition.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/error.h"
#include "tests/fixtures/kernel_runner.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
using testing::f32;
using testing::KernelRunner;
using testing::Rng;

struct ConvCase {
  std::string name;
  int64_t n, c, h, w, m, kh, kw;
  int64_t sh = 1, sw = 1, dh = 1, dw = 1;
  std::vector<int64_t> pads = {0, 0, 0, 0};  // top, left, bottom, right (ONNX order)
  std::string auto_pad = "NOTSET";
  bool bias = true;
};

std::string describe(const ConvCase& k) {
  return fmt::format("{}: x [{},{},{},{}] w [{},{},{},{}] strides {}x{} dilations {}x{} pads [{}] auto_pad {} bias {}",
                     k.name, k.n, k.c, k.h, k.w, k.m, k.c, k.kh, k.kw, k.sh, k.sw, k.dh, k.dw, fmt::join(k.pads, ","),
                     k.auto_pad, k.bias);
}

// Pads for one spatial axis as the ONNX Conv definition gives them.
void axis_pads(const std::string& auto_pad, int64_t in, int64_t k, int64_t s, int64_t d, int64_t explicit_begin,
               int64_t explicit_end, int64_t* begin, int64_t* end) {
  const int64_t ek = (k - 1) * d + 1;
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    const int64_t out = (in + s - 1) / s;  // ceil(in / s)
    const int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in);
    // SAME_UPPER puts the odd extra pad at the end, SAME_LOWER at the beginning.
    *begin = auto_pad == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
    *end = total - *begin;
  } else if (auto_pad == "VALID") {
    *begin = *end = 0;
  } else {
    *begin = explicit_begin;
    *end = explicit_end;
  }
}

struct Golden {
  Shape shape;
  std::vector<double> y, abs_sum;  // value and sum of |terms| (for the error bound)
};

// y[n,m,oh,ow] = b[m] + sum_{c,i,j} x[n,c,oh*s - pad + i*d, ...] * w[m,c,i,j], zero outside.
Golden conv_reference(const ConvCase& k, const Tensor& x, const Tensor& w, const Tensor* b) {
  int64_t pt, pb, pl, pr;
  axis_pads(k.auto_pad, k.h, k.kh, k.sh, k.dh, k.pads[0], k.pads[2], &pt, &pb);
  axis_pads(k.auto_pad, k.w, k.kw, k.sw, k.dw, k.pads[1], k.pads[3], &pl, &pr);
  const int64_t oh_n = (k.h + pt + pb - ((k.kh - 1) * k.dh + 1)) / k.sh + 1;
  const int64_t ow_n = (k.w + pl + pr - ((k.kw - 1) * k.dw + 1)) / k.sw + 1;
  Golden g;
  g.shape = {k.n, k.m, oh_n, ow_n};
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  for (int64_t n = 0; n < k.n; ++n)
    for (int64_t m = 0; m < k.m; ++m)
      for (int64_t oh = 0; oh < oh_n; ++oh)
        for (int64_t ow = 0; ow < ow_n; ++ow) {
          double acc = b ? b->data<float>()[m] : 0.0, mag = std::fabs(acc);
          for (int64_t c = 0; c < k.c; ++c)
            for (int64_t i = 0; i < k.kh; ++i)
              for (int64_t j = 0; j < k.kw; ++j) {
                const int64_t hh = oh * k.sh - pt + i * k.dh, ww = ow * k.sw - pl + j * k.dw;
                if (hh < 0 || hh >= k.h || ww < 0 || ww >= k.w) continue;
                const double t = static_cast<double>(xp[((n * k.c + c) * k.h + hh) * k.w + ww]) *
                                 static_cast<double>(wp[((m * k.c + c) * k.kh + i) * k.kw + j]);
                acc += t;
                mag += std::fabs(t);
              }
          g.y.push_back(acc);
          g.abs_sum.push_back(mag);
        }
  return g;
}

KernelRunner conv_runner(const ConvCase& k, const Tensor& x, const Tensor& w, const Tensor& b) {
  KernelRunner r("Conv", "conv_" + k.name);
  r.batched_input("X", x).constant("W", w);
  if (k.bias) r.constant("B", b);
  r.attr("kernel_shape", std::vector<int64_t>{k.kh, k.kw})
      .attr("strides", std::vector<int64_t>{k.sh, k.sw})
      .attr("dilations", std::vector<int64_t>{k.dh, k.dw});
  if (k.auto_pad == "NOTSET") r.attr("pads", k.pads);
  else r.attr("auto_pad", k.auto_pad.c_str());
  return r;
}

// ------------------------------------------------------------------- goldens

TEST(ConvKernel, GoldenDiagonalDifferenceWithBias) {
  // x = 1..9 (3x3), w = [[1,0],[0,-1]]: y = x[i,j] - x[i+1,j+1] = -4, plus bias 0.5.
  KernelRunner r("Conv");
  r.input("X", f32({1, 1, 3, 3}, std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9}))
      .constant("W", f32({1, 1, 2, 2}, std::vector<float>{1, 0, 0, -1}))
      .constant("B", f32({1}, std::vector<float>{0.5f}));
  Tensor y = r.run1();
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()),
              ::testing::ElementsAre(-3.5f, -3.5f, -3.5f, -3.5f));
}

TEST(ConvKernel, GoldenTfSameStride2PadsBottomRight) {
  // tf2onnx's 'same' for k3 s2 on 4x4: pads [0,0,1,1]. x = 1..16, w = ones.
  // Windows: rows/cols {0,1,2} and {2,3,pad}: 54, 45 / 72, 54.
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
  KernelRunner r("Conv");
  r.input("X", f32({1, 1, 4, 4}, x))
      .constant("W", f32({1, 1, 3, 3}, std::vector<float>(9, 1.f)))
      .attr("strides", std::vector<int64_t>{2, 2})
      .attr("pads", std::vector<int64_t>{0, 0, 1, 1});
  Tensor y = r.run1();
  ASSERT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()),
              ::testing::ElementsAre(54.f, 45.f, 72.f, 54.f));
  // SAME_UPPER computes the same pads for this geometry.
  KernelRunner u("Conv");
  u.input("X", f32({1, 1, 4, 4}, x))
      .constant("W", f32({1, 1, 3, 3}, std::vector<float>(9, 1.f)))
      .attr("strides", std::vector<int64_t>{2, 2})
      .attr("auto_pad", "SAME_UPPER");
  EXPECT_TRUE(testing::bit_identical(u.run1(), y));
  // SAME_LOWER pads top/left instead: windows {pad,0,1} and {1,2,3}.
  KernelRunner l("Conv");
  l.input("X", f32({1, 1, 4, 4}, x))
      .constant("W", f32({1, 1, 3, 3}, std::vector<float>(9, 1.f)))
      .attr("strides", std::vector<int64_t>{2, 2})
      .attr("auto_pad", "SAME_LOWER");
  Tensor yl = l.run1();
  // (0,0): rows 0-1, cols 0-1 = 1+2+5+6 = 14; (0,1): rows 0-1, cols 1-3 = 2+3+4+6+7+8 = 30;
  // (1,0): rows 1-3, cols 0-1 = 5+6+9+10+13+14 = 57; (1,1): rows 1-3, cols 1-3 = 99.
  EXPECT_THAT(std::vector<float>(yl.span<float>().begin(), yl.span<float>().end()),
              ::testing::ElementsAre(14.f, 30.f, 57.f, 99.f));
}

TEST(ConvKernel, GoldenPointwiseStride2PicksEvenPixels) {
  // 1x1 stride-2 conv (ResNet shortcut): picks x[0::2, 0::2] scaled by w, plus bias.
  std::vector<float> x(25);
  for (int i = 0; i < 25; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i);
  KernelRunner r("Conv");
  r.input("X", f32({1, 1, 5, 5}, x))
      .constant("W", f32({2, 1, 1, 1}, std::vector<float>{2.f, -1.f}))
      .constant("B", f32({2}, std::vector<float>{0.f, 100.f}))
      .attr("strides", std::vector<int64_t>{2, 2});
  Tensor y = r.run1();
  ASSERT_EQ(y.shape(), (Shape{1, 2, 3, 3}));
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()),
              ::testing::ElementsAre(0, 4, 8, 20, 24, 28, 40, 44, 48,  // 2 * x
                                     100, 98, 96, 90, 88, 86, 80, 78, 76));  // 100 - x
}

// ------------------------------------------------------------ random sweeps

class ConvSweep : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvSweep, MatchesFloat64Reference) {
  const ConvCase& k = GetParam();
  Rng rng(7767517u + static_cast<uint32_t>(k.c * 131 + k.h * 17 + k.kh));
  Tensor x = rng.tensor({k.n, k.c, k.h, k.w}, -2.f, 2.f);
  Tensor w = rng.tensor({k.m, k.c, k.kh, k.kw}, -1.f, 1.f);
  Tensor b = rng.tensor({k.m}, -0.5f, 0.5f);
  const Golden g = conv_reference(k, x, w, k.bias ? &b : nullptr);
  KernelRunner r = conv_runner(k, x, w, b);

  Tensor y = r.run1();
  ASSERT_EQ(y.shape(), g.shape) << describe(k);
  // float32 accumulation of K products: |err| <= 2 K u sum|terms| (u = 2^-24).
  const double K = static_cast<double>(k.c * k.kh * k.kw + 1);
  std::vector<double> tol(g.y.size());
  for (std::size_t i = 0; i < tol.size(); ++i) tol[i] = 2 * K * std::ldexp(1.0, -24) * g.abs_sum[i] + 1e-30;
  EXPECT_TRUE(testing::close_to_reference(to_double(y), g.y, tol, g.shape, describe(k)));

  // float64 evaluation of the same node: the reference kernel, near exact.
  SessionOptions o64;
  o64.float64 = true;
  Tensor y64 = r.run1(o64);
  ASSERT_EQ(y64.dtype(), DType::kFloat64);
  for (std::size_t i = 0; i < tol.size(); ++i) tol[i] = 1e-13 * (g.abs_sum[i] + 1);
  EXPECT_TRUE(testing::close_to_reference(to_double(y64), g.y, tol, g.shape, describe(k) + " (float64 mode)"));

  // Batch independence: the last image alone gives the same bits as inside the batch.
  if (k.n > 1) {
    const int64_t per_in = k.c * k.h * k.w, per_out = shape_numel(g.shape) / k.n;
    Tensor x1(DType::kFloat32, {1, k.c, k.h, k.w});
    std::copy_n(x.data<float>() + (k.n - 1) * per_in, per_in, x1.data<float>());
    Tensor y1 = conv_runner(k, x1, w, b).run1();
    EXPECT_EQ(std::memcmp(y1.data<float>(), y.data<float>() + (k.n - 1) * per_out, per_out * sizeof(float)), 0)
        << describe(k) << ": image " << k.n - 1 << " differs when run alone";
  }
}

std::vector<ConvCase> conv_cases() {
  std::vector<ConvCase> v;
  auto add = [&](ConvCase c) { v.push_back(std::move(c)); };
  add({.name = "resnet_stem_3x3_same", .n = 2, .c = 3, .h = 32, .w = 32, .m = 16, .kh = 3, .kw = 3, .pads = {1, 1, 1, 1}});
  add({.name = "tf_same_stride2", .n = 2, .c = 16, .h = 32, .w = 32, .m = 32, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
       .pads = {0, 0, 1, 1}});
  add({.name = "tf_same_stride2_odd", .n = 7, .c = 13, .h = 16, .w = 10, .m = 11, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
       .pads = {0, 0, 1, 1}});
  add({.name = "pointwise_stride2", .n = 7, .c = 13, .h = 9, .w = 9, .m = 5, .kh = 1, .kw = 1, .sh = 2, .sw = 2});
  add({.name = "pointwise_stride2_even", .n = 1, .c = 16, .h = 32, .w = 32, .m = 32, .kh = 1, .kw = 1, .sh = 2, .sw = 2});
  add({.name = "pointwise_stride1", .n = 3, .c = 13, .h = 5, .w = 7, .m = 11, .kh = 1, .kw = 1});
  add({.name = "pointwise_padded", .n = 2, .c = 5, .h = 4, .w = 3, .m = 3, .kh = 1, .kw = 1, .pads = {1, 0, 0, 2}});
  add({.name = "same_upper_k3s2", .n = 1, .c = 4, .h = 8, .w = 8, .m = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
       .auto_pad = "SAME_UPPER"});
  add({.name = "same_lower_k3s2", .n = 1, .c = 4, .h = 8, .w = 8, .m = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
       .auto_pad = "SAME_LOWER"});
  add({.name = "same_upper_k4_odd", .n = 2, .c = 3, .h = 7, .w = 6, .m = 5, .kh = 4, .kw = 4, .auto_pad = "SAME_UPPER"});
  add({.name = "same_lower_k4_odd", .n = 2, .c = 3, .h = 7, .w = 6, .m = 5, .kh = 4, .kw = 4, .auto_pad = "SAME_LOWER"});
  add({.name = "same_upper_dilated", .n = 1, .c = 2, .h = 9, .w = 11, .m = 3, .kh = 3, .kw = 3, .sh = 2, .sw = 1,
       .dh = 2, .dw = 3, .auto_pad = "SAME_UPPER"});
  add({.name = "valid_k3s2", .n = 3, .c = 5, .h = 9, .w = 10, .m = 4, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
       .auto_pad = "VALID"});
  add({.name = "dilation2_pad2", .n = 2, .c = 6, .h = 11, .w = 11, .m = 7, .kh = 3, .kw = 3, .dh = 2, .dw = 2,
       .pads = {2, 2, 2, 2}});
  add({.name = "dilation_asym_stride_asym", .n = 1, .c = 3, .h = 13, .w = 12, .m = 2, .kh = 3, .kw = 2, .sh = 1,
       .sw = 2, .dh = 2, .dw = 3, .pads = {1, 0, 2, 1}});
  add({.name = "rect_kernel_5x3_no_bias", .n = 7, .c = 13, .h = 8, .w = 6, .m = 9, .kh = 5, .kw = 3,
       .pads = {2, 1, 2, 1}, .bias = false});
  add({.name = "no_bias_batch1", .n = 1, .c = 16, .h = 16, .w = 16, .m = 16, .kh = 3, .kw = 3, .pads = {1, 1, 1, 1},
       .bias = false});
  add({.name = "uneven_pads", .n = 2, .c = 3, .h = 6, .w = 5, .m = 4, .kh = 3, .kw = 3, .sh = 2, .sw = 3,
       .pads = {3, 0, 2, 1}});
  add({.name = "kernel_covers_input", .n = 7, .c = 2, .h = 3, .w = 3, .m = 3, .kh = 3, .kw = 3});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Geometries, ConvSweep, ::testing::ValuesIn(conv_cases()),
                         [](const auto& info) { return info.param.name; });

// ------------------------------------------------------------------- errors

TEST(ConvKernel, GroupTwoIsRefusedNamingTheNode) {
  Rng rng(1);
  KernelRunner r("Conv", "grouped_conv");
  r.input("X", rng.tensor({1, 4, 5, 5})).constant("W", rng.tensor({4, 2, 3, 3})).attr("group", int64_t{2});
  try {
    r.run1();
    FAIL() << "group=2 was accepted";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_THAT(e.what(), HasSubstr("grouped_conv"));
    EXPECT_THAT(e.what(), HasSubstr("group=2"));
  }
}

TEST(ConvKernel, MismatchedChannelsAndBadAutoPadAreInputErrors) {
  Rng rng(2);
  KernelRunner r("Conv", "bad_channels");
  r.input("X", rng.tensor({1, 3, 5, 5})).constant("W", rng.tensor({4, 2, 3, 3}));
  try {
    r.run1();
    FAIL() << "3 input channels vs weight expecting 2 was accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad_channels"));
    EXPECT_THAT(e.what(), HasSubstr("input channels"));
  }
  KernelRunner a("Conv", "bad_auto_pad");
  a.input("X", rng.tensor({1, 2, 5, 5})).constant("W", rng.tensor({4, 2, 3, 3})).attr("auto_pad", "SAME");
  try {
    a.run1();
    FAIL() << "auto_pad SAME was accepted";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("bad_auto_pad"));
    EXPECT_THAT(e.what(), HasSubstr("SAME"));
  }
}

}  // namespace
}  // namespace qpipe
