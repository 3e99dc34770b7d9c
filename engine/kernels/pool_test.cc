// AveragePool (count_include_pad 0 and 1, pads, strides, ceil_mode), MaxPool
// (pads, strides, dilations) and GlobalAveragePool against float64 pooling
// written here from the ONNX operator definitions, plus inline goldens.

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

constexpr double kU = 1.0 / (1 << 24);  // float32 unit roundoff

struct PoolCase {
  std::string name;
  int64_t n, c, h, w, kh, kw;
  int64_t sh = 1, sw = 1;
  std::vector<int64_t> pads = {0, 0, 0, 0};
  bool count_include_pad = false;
  bool ceil_mode = false;
  int64_t dh = 1, dw = 1;
};

struct PoolGolden {
  Shape shape;
  std::vector<double> y, mag;  // mag: sum of |window values| / count, for the error bound
  std::vector<int64_t> count;
};

int64_t pooled_dim(int64_t in, int64_t pb, int64_t pe, int64_t ek, int64_t s, bool ceil_mode) {
  const int64_t span = in + pb + pe - ek;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  // ONNX / PyTorch rule: with ceil_mode the last window must start inside the input or left padding.
  if (ceil_mode && (out - 1) * s >= in + pb) --out;
  return out;
}

PoolGolden pool_reference(const PoolCase& k, const Tensor& x, bool is_max) {
  const int64_t ekh = (k.kh - 1) * k.dh + 1, ekw = (k.kw - 1) * k.dw + 1;
  const int64_t oh_n = pooled_dim(k.h, k.pads[0], k.pads[2], ekh, k.sh, k.ceil_mode);
  const int64_t ow_n = pooled_dim(k.w, k.pads[1], k.pads[3], ekw, k.sw, k.ceil_mode);
  PoolGolden g;
  g.shape = {k.n, k.c, oh_n, ow_n};
  const float* xp = x.data<float>();
  for (int64_t p = 0; p < k.n * k.c; ++p)
    for (int64_t oh = 0; oh < oh_n; ++oh)
      for (int64_t ow = 0; ow < ow_n; ++ow) {
        double acc = is_max ? -std::numeric_limits<double>::infinity() : 0.0, mag = 0;
        int64_t inside = 0, padded_window = 0;
        for (int64_t i = 0; i < k.kh; ++i)
          for (int64_t j = 0; j < k.kw; ++j) {
            const int64_t hh = oh * k.sh - k.pads[0] + i * k.dh, ww = ow * k.sw - k.pads[1] + j * k.dw;
            // Positions inside input + explicit pads, not the ceil_mode overhang
            // past them (what ONNX Runtime divides by with count_include_pad=1).
            if (hh < k.h + k.pads[2] && ww < k.w + k.pads[3]) ++padded_window;
            if (hh < 0 || hh >= k.h || ww < 0 || ww >= k.w) continue;
            const double v = xp[(p * k.h + hh) * k.w + ww];
            ++inside;
            if (is_max) acc = std::max(acc, v);
            else acc += v;
            mag += std::fabs(v);
          }
        const int64_t count = k.count_include_pad ? padded_window : inside;
        g.y.push_back(is_max ? acc : acc / static_cast<double>(count));
        g.mag.push_back(mag / static_cast<double>(count));
        g.count.push_back(count);
      }
  return g;
}

KernelRunner pool_runner(const char* op, const PoolCase& k, const Tensor& x) {
  KernelRunner r(op, std::string(op) + "_" + k.name);
  r.batched_input("X", x)
      .attr("kernel_shape", std::vector<int64_t>{k.kh, k.kw})
      .attr("strides", std::vector<int64_t>{k.sh, k.sw})
      .attr("pads", k.pads);
  if (k.ceil_mode) r.attr("ceil_mode", int64_t{1});
  if (std::string(op) == "AveragePool") r.attr("count_include_pad", int64_t{k.count_include_pad ? 1 : 0});
  if (k.dh != 1 || k.dw != 1) r.attr("dilations", std::vector<int64_t>{k.dh, k.dw});
  return r;
}

TEST(PoolKernel, AveragePoolGoldenCountIncludePad) {
  // 3x3 input 1..9, k2 s2 pads [0,0,1,1]: windows {1,2,4,5}, {3,pad,6,pad}, {7,8,pad,pad}, {9,pad,pad,pad}.
  const Tensor x = f32({1, 1, 3, 3}, std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9});
  auto run = [&](int64_t cip) {
    Tensor y = KernelRunner("AveragePool")
                   .input("X", x)
                   .attr("kernel_shape", std::vector<int64_t>{2, 2})
                   .attr("strides", std::vector<int64_t>{2, 2})
                   .attr("pads", std::vector<int64_t>{0, 0, 1, 1})
                   .attr("count_include_pad", cip)
                   .run1();
    EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
    return std::vector<float>(y.span<float>().begin(), y.span<float>().end());
  };
  EXPECT_THAT(run(0), ElementsAre(3.f, 4.5f, 7.5f, 9.f));
  EXPECT_THAT(run(1), ElementsAre(3.f, 2.25f, 3.75f, 2.25f));
}

TEST(PoolKernel, MaxPoolGoldenIgnoresPadding) {
  // Negative inputs: padding must not contribute zeros.
  const Tensor x = f32({1, 1, 2, 2}, std::vector<float>{-4, -3, -2, -1});
  Tensor y = KernelRunner("MaxPool")
                 .input("X", x)
                 .attr("kernel_shape", std::vector<int64_t>{2, 2})
                 .attr("pads", std::vector<int64_t>{1, 1, 1, 1})
                 .run1();
  ASSERT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_THAT(std::vector<float>(y.span<float>().begin(), y.span<float>().end()),
              ElementsAre(-4, -3, -3, -2, -1, -1, -2, -1, -1));
}

TEST(PoolKernel, CeilModeGoldensMatchOnnxRuntime) {
  // 4x4 input 1..16, k2 s3 pads 1, ceil_mode: 2x2 windows (a third window would
  // start in the right padding and is dropped). Values measured with ONNX
  // Runtime 1.30 (graph optimizations disabled).
  std::vector<float> x(16);
  for (int i = 0; i < 16; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
  auto run = [&](const char* op, int64_t cip) {
    KernelRunner r(op);
    r.input("X", f32({1, 1, 4, 4}, x))
        .attr("kernel_shape", std::vector<int64_t>{2, 2})
        .attr("strides", std::vector<int64_t>{3, 3})
        .attr("pads", std::vector<int64_t>{1, 1, 1, 1})
        .attr("ceil_mode", int64_t{1});
    if (std::string(op) == "AveragePool") r.attr("count_include_pad", cip);
    Tensor y = r.run1();
    EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2})) << op << " count_include_pad " << cip;
    return std::vector<float>(y.span<float>().begin(), y.span<float>().end());
  };
  EXPECT_THAT(run("MaxPool", 0), ElementsAre(1.f, 4.f, 13.f, 16.f));
  EXPECT_THAT(run("AveragePool", 0), ElementsAre(1.f, 3.5f, 11.f, 13.5f));
  EXPECT_THAT(run("AveragePool", 1), ElementsAre(0.25f, 1.75f, 5.5f, 13.5f));
}

class PoolSweep : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolSweep, AveragePoolMatchesFloat64Reference) {
  const PoolCase& k = GetParam();
  Rng rng(31337u + static_cast<uint32_t>(k.c * 7 + k.h));
  Tensor x = rng.tensor({k.n, k.c, k.h, k.w}, -5.f, 5.f);
  for (bool cip : {false, true}) {
    PoolCase kk = k;
    kk.count_include_pad = cip;
    const PoolGolden g = pool_reference(kk, x, false);
    Tensor y = pool_runner("AveragePool", kk, x).run1();
    ASSERT_EQ(y.shape(), g.shape) << kk.name;
    std::vector<double> tol(g.y.size());
    for (std::size_t i = 0; i < tol.size(); ++i)
      tol[i] = 2 * static_cast<double>(g.count[i] + 2) * kU * g.mag[i] + 1e-30;
    EXPECT_TRUE(testing::close_to_reference(to_double(y), g.y, tol, g.shape,
                                            kk.name + (cip ? " count_include_pad=1" : " count_include_pad=0")));
  }
}

TEST_P(PoolSweep, MaxPoolMatchesReferenceExactly) {
  const PoolCase& k = GetParam();
  Rng rng(4711u + static_cast<uint32_t>(k.c * 7 + k.h));
  Tensor x = rng.tensor({k.n, k.c, k.h, k.w}, -5.f, -0.5f);  // all negative: a padded 0 would show
  const PoolGolden g = pool_reference(k, x, true);
  Tensor y = pool_runner("MaxPool", k, x).run1();
  ASSERT_EQ(y.shape(), g.shape) << k.name;
  EXPECT_TRUE(testing::close_to_reference(y, g.y, 0.0, k.name));
}

std::vector<PoolCase> pool_cases() {
  return {
      {.name = "k2s2", .n = 2, .c = 3, .h = 8, .w = 8, .kh = 2, .kw = 2, .sh = 2, .sw = 2},
      {.name = "k3s2_pad1", .n = 7, .c = 13, .h = 9, .w = 7, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .pads = {1, 1, 1, 1}},
      {.name = "k3s1_pad_bottom_right", .n = 1, .c = 5, .h = 6, .w = 5, .kh = 3, .kw = 3, .pads = {0, 0, 2, 2}},
      {.name = "k3s2_uneven_pads", .n = 2, .c = 2, .h = 7, .w = 10, .kh = 3, .kw = 2, .sh = 2, .sw = 3,
       .pads = {1, 0, 2, 1}},
      {.name = "ceil_mode_k2s2_odd", .n = 3, .c = 4, .h = 7, .w = 9, .kh = 2, .kw = 2, .sh = 2, .sw = 2,
       .ceil_mode = true},
      {.name = "ceil_mode_k3s2_pad1", .n = 1, .c = 3, .h = 8, .w = 8, .kh = 3, .kw = 3, .sh = 2, .sw = 2,
       .pads = {1, 1, 1, 1}, .ceil_mode = true},
      // Last ceil_mode window would start in the right padding: dropped (ORT, PyTorch).
      {.name = "ceil_mode_window_in_pad", .n = 1, .c = 2, .h = 4, .w = 7, .kh = 2, .kw = 2, .sh = 3, .sw = 3,
       .pads = {1, 1, 1, 1}, .ceil_mode = true},
      {.name = "resnet8_head_k8", .n = 7, .c = 64, .h = 8, .w = 8, .kh = 8, .kw = 8, .sh = 8, .sw = 8},
      {.name = "dilated", .n = 2, .c = 3, .h = 9, .w = 9, .kh = 3, .kw = 2, .sh = 1, .sw = 2,
       .pads = {2, 1, 2, 1}, .dh = 2, .dw = 3},
  };
}

INSTANTIATE_TEST_SUITE_P(Geometries, PoolSweep, ::testing::ValuesIn(pool_cases()),
                         [](const auto& info) { return info.param.name; });

TEST(PoolKernel, GlobalAveragePoolMatchesFloat64Reference) {
  Rng rng(5);
  const Shape s = {7, 13, 5, 3};
  Tensor x = rng.tensor(s, -4.f, 4.f);
  Tensor y = KernelRunner("GlobalAveragePool").batched_input("X", x).run1();
  ASSERT_EQ(y.shape(), (Shape{7, 13, 1, 1}));
  std::vector<double> ref;
  double max_mag = 0;
  for (int64_t p = 0; p < 7 * 13; ++p) {
    double acc = 0, mag = 0;
    for (int64_t i = 0; i < 15; ++i) {
      acc += x.data<float>()[p * 15 + i];
      mag += std::fabs(x.data<float>()[p * 15 + i]);
    }
    ref.push_back(acc / 15);
    max_mag = std::max(max_mag, mag / 15);
  }
  EXPECT_TRUE(testing::close_to_reference(y, ref, 2 * 17 * kU * max_mag, "GlobalAveragePool [7,13,5,3]"));
  // Inline golden.
  Tensor g = KernelRunner("GlobalAveragePool").input("X", f32({1, 2, 2, 2}, std::vector<float>{1, 2, 3, 4, -1, -1, -1, 7})).run1();
  EXPECT_THAT(std::vector<float>(g.span<float>().begin(), g.span<float>().end()), ElementsAre(2.5f, 1.f));
}

TEST(PoolKernel, UnsupportedAttributeAndIndicesOutputAreRefused) {
  Rng rng(6);
  try {
    KernelRunner("MaxPool", "mp_indices")
        .input("X", rng.tensor({1, 1, 4, 4}))
        .attr("kernel_shape", std::vector<int64_t>{2, 2})
        .outputs({"Y", "Indices"})
        .run1();
    FAIL() << "MaxPool with an Indices output was accepted";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_THAT(e.what(), HasSubstr("mp_indices"));
    EXPECT_THAT(e.what(), HasSubstr("Indices"));
  }
  try {
    KernelRunner("AveragePool", "ap_storage")
        .input("X", rng.tensor({1, 1, 4, 4}))
        .attr("kernel_shape", std::vector<int64_t>{2, 2})
        .attr("storage_order", int64_t{1})
        .run1();
    FAIL() << "AveragePool with storage_order was accepted";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUnsupported);
    EXPECT_THAT(e.what(), HasSubstr("ap_storage"));
    EXPECT_THAT(e.what(), HasSubstr("storage_order"));
  }
}

}  // namespace
}  // namespace qpipe
