// Tests for the calibrators: hand-computed histograms and thresholds with
// ORT's exact (and sometimes surprising) conventions, synthetic
// distributions with known answers, and determinism across batchings, merge
// orders and thread counts.

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "quant/calibrators/calibrator.h"
#include "quant/calibrators/histogram.h"

namespace qpipe {
namespace {

CalibratorConfig cfg(CalibrationMethod m) {
  CalibratorConfig c;
  c.method = m;
  return c;
}

std::unique_ptr<Calibrator> run(const CalibratorConfig& c, const std::vector<float>& values) {
  const std::vector<std::span<const float>> one = {values};
  return calibrate_batches(c, one);
}

std::vector<float> gaussian(std::size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> uniform(std::size_t n, uint64_t seed, float lo, float hi) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

std::vector<float> laplace(std::size_t n, uint64_t seed, double b) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-0.5, 0.5);
  std::vector<float> v(n);
  for (float& x : v) {
    const double r = u(rng);
    x = static_cast<float>(-b * (r < 0 ? -1.0 : 1.0) * std::log(1.0 - 2.0 * std::fabs(r)));
  }
  return v;
}

uint64_t range_bits(Range r) {
  return (static_cast<uint64_t>(std::bit_cast<uint32_t>(r.min)) << 32) | std::bit_cast<uint32_t>(r.max);
}

// ---- Configuration ----------------------------------------------------------------

TEST(CalibratorConfigTest, DefaultsFollowOrt) {
  EXPECT_EQ(cfg(CalibrationMethod::kPercentile).effective_num_bins(), 2048);
  EXPECT_TRUE(cfg(CalibrationMethod::kPercentile).effective_symmetric());
  EXPECT_EQ(cfg(CalibrationMethod::kEntropy).effective_num_bins(), 128);
  EXPECT_EQ(cfg(CalibrationMethod::kEntropy).num_quantized_bins, 128);
  EXPECT_FALSE(cfg(CalibrationMethod::kEntropy).effective_symmetric());
  EXPECT_FALSE(cfg(CalibrationMethod::kMinMax).effective_symmetric());
  EXPECT_EQ(cfg(CalibrationMethod::kMse).effective_num_bins(), 2048);
  EXPECT_EQ(cfg(CalibrationMethod::kPercentile).percentile, 99.999);
  EXPECT_EQ(parse_calibration_method("entropy"), CalibrationMethod::kEntropy);
  EXPECT_THROW(parse_calibration_method("kl"), PtqError);
  // Only the fields a method reads are part of its description (cache keys).
  CalibratorConfig a = cfg(CalibrationMethod::kMinMax), b = a;
  b.num_bins = 77;
  EXPECT_EQ(a.to_json(), b.to_json());
  EXPECT_EQ(cfg(CalibrationMethod::kEntropy).to_json().dump(),
            R"({"method":"entropy","num_bins":128,"num_quantized_bins":128,"symmetric":false})");
}

TEST(CalibratorConfigTest, RejectsBadValuesNamingTheField) {
  CalibratorConfig c = cfg(CalibrationMethod::kPercentile);
  c.percentile = 100.5;
  try {
    make_calibrator(c);
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSpec);
    EXPECT_NE(std::string(e.what()).find("percentile"), std::string::npos) << e.what();
  }
  c = cfg(CalibrationMethod::kEntropy);
  c.num_bins = 64;  // fewer than num_quantized_bins
  EXPECT_THROW(make_calibrator(c), PtqError);
  c = cfg(CalibrationMethod::kMse);
  c.qtype = QType::kInt32;
  EXPECT_THROW(make_calibrator(c), PtqError);
  c = cfg(CalibrationMethod::kPercentile);
  c.num_bins = -3;
  EXPECT_THROW(make_calibrator(c), PtqError);
}

// ---- MinMax --------------------------------------------------------------------------

TEST(MinMaxCalibratorTest, MinOfMinimaMaxOfMaxima) {
  auto cal = make_calibrator(cfg(CalibrationMethod::kMinMax));
  EXPECT_FALSE(cal->needs_range_pass());
  cal->observe(std::vector<float>{0.5f, 2.0f, -1.0f});
  cal->observe(std::vector<float>{3.25f, 0.0f});
  cal->observe(std::vector<float>{-0.75f, std::nanf("")});  // NaN skipped
  cal->observe(std::vector<float>{});
  EXPECT_EQ(cal->range(), (Range{-1.0f, 3.25f}));
  EXPECT_EQ(cal->count(), 6);
  EXPECT_EQ(cal->nan_count(), 1);
  CalibratorConfig sym = cfg(CalibrationMethod::kMinMax);
  sym.symmetric = true;
  auto s = make_calibrator(sym);
  s->observe(std::vector<float>{-1.0f, 3.25f});
  EXPECT_EQ(s->range(), (Range{-3.25f, 3.25f}));
  // Feeding the study's recipe: the network input 0..255 → scale 1, zp -128.
  auto in = make_calibrator(cfg(CalibrationMethod::kMinMax));
  in->observe(std::vector<float>{0.0f, 17.0f, 255.0f});
  const Range r = in->range();
  const QuantParams p = choose_qparams(r.min, r.max, QType::kInt8, false);
  EXPECT_EQ(p.scale, 1.0f);
  EXPECT_EQ(p.zero_point, -128);
  const nlohmann::json d = cal->describe();
  EXPECT_EQ(d["method"], "minmax");
  EXPECT_EQ(d["count"], 6);
  EXPECT_EQ(d["data_max"], 3.25);
}

TEST(MinMaxCalibratorTest, NoDataAndInfinityAreErrorsNotCrashes) {
  auto cal = make_calibrator(cfg(CalibrationMethod::kMinMax));
  EXPECT_THROW(cal->range(), PtqError);
  cal->observe(std::vector<float>{std::nanf(""), std::nanf("")});
  EXPECT_THROW(cal->range(), PtqError);
  EXPECT_THROW(cal->set_range(0.0f, 1.0f), PtqError);
  cal->observe(std::vector<float>{1.0f, std::numeric_limits<float>::infinity()});
  const Range r = cal->range();
  EXPECT_THROW(choose_qparams(r.min, r.max, QType::kInt8, false), PtqError);
  EXPECT_NO_THROW(cal->describe().dump());
}

TEST(MinMaxCalibratorTest, SignedZeroDoesNotDependOnOrder) {
  auto a = make_calibrator(cfg(CalibrationMethod::kMinMax));
  auto b = make_calibrator(cfg(CalibrationMethod::kMinMax));
  a->observe(std::vector<float>{0.0f, -0.0f, 1.0f});
  b->observe(std::vector<float>{-0.0f, 0.0f, 1.0f});
  EXPECT_EQ(range_bits(a->range()), range_bits(b->range()));
}

// ---- Histogram -------------------------------------------------------------------------

TEST(HistogramTest, NumpyEdgesAndBinning) {
  Histogram h(0.0f, 3.0f, 4);
  ASSERT_EQ(h.edges().size(), 5u);
  const float step = 3.0f / 4.0f;
  for (int i = 0; i < 4; ++i) EXPECT_EQ(h.edges()[i], static_cast<float>(i) * step) << i;
  EXPECT_EQ(h.edges()[4], 3.0f);
  h.add(std::vector<float>{0.0f, 0.74f, 0.75f, 1.0f, 2.0f, 2.25f, 3.0f, -0.1f, 3.01f, std::nanf("")});
  EXPECT_EQ(std::vector<int64_t>(h.counts().begin(), h.counts().end()), (std::vector<int64_t>{2, 2, 1, 2}));
  EXPECT_EQ(h.total(), 7);
  EXPECT_EQ(h.out_of_range(), 2);
  EXPECT_EQ(h.bin_of(3.0f), 3);  // the last bin is closed
  EXPECT_EQ(h.bin_of(std::nanf("")), -1);
  Histogram a(0.0f, 3.0f, 4);
  a.add_abs(std::vector<float>{-0.5f, -3.0f});
  EXPECT_EQ(a.counts()[0], 1);
  EXPECT_EQ(a.counts()[3], 1);
  h.merge(a);
  EXPECT_EQ(h.total(), 9);
  EXPECT_THROW(h.merge(Histogram(0.0f, 3.0f, 5)), PtqError);
  // numpy widens an empty range by ±0.5.
  Histogram z(0.0f, 0.0f, 2);
  EXPECT_EQ(z.lo(), -0.5f);
  EXPECT_EQ(z.hi(), 0.5f);
  EXPECT_THROW(Histogram(1.0f, 0.0f, 4), PtqError);
  EXPECT_THROW(Histogram(0.0f, std::numeric_limits<float>::infinity(), 4), PtqError);
  EXPECT_THROW(Histogram(0.0f, 1.0f, 0), PtqError);
}

TEST(HistogramTest, BinsAgreeWithEdgesOnRandomData) {
  // The float32 first guess plus the corrections must put every value in the
  // bin whose half-open edge interval contains it.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 20; ++trial) {
    const float lo = -std::exp2(static_cast<float>(trial % 9) - 3.0f) * 1.37f, hi = 3.3f * (trial + 1);
    const int n = 2048 - trial * 37;
    Histogram h(lo, hi, n);
    std::uniform_real_distribution<float> d(lo, hi);
    for (int i = 0; i < 5000; ++i) {
      float x = i % 5 == 0 ? h.edges()[rng() % (n + 1)] : d(rng);
      const int b = h.bin_of(x);
      ASSERT_GE(b, 0);
      ASSERT_LE(h.edges()[b], x);
      if (b < n - 1) ASSERT_LT(x, h.edges()[b + 1]);
      else ASSERT_LE(x, h.edges()[n]);
    }
  }
}

// ---- Percentile ------------------------------------------------------------------------

TEST(PercentileCalibratorTest, HandComputedSymmetric) {
  // |x| histogram over [0, 3] with 4 bins: edges 0, .75, 1.5, 2.25, 3; one
  // value per bin; cdf .25 .5 .75 1.
  CalibratorConfig c = cfg(CalibrationMethod::kPercentile);
  c.num_bins = 4;
  c.percentile = 50.0;
  const std::vector<float> relu = {0.0f, 1.0f, 2.0f, 3.0f};
  EXPECT_EQ(run(c, relu)->range(), (Range{0.0f, 0.75f}));  // -0.75 raised to the data min 0
  c.percentile = 60.0;
  EXPECT_EQ(run(c, relu)->range(), (Range{0.0f, 1.5f}));
  // ORT returns the LOWER edge of the crossing bin: percentile 100 is not the max.
  c.percentile = 100.0;
  EXPECT_EQ(run(c, relu)->range(), (Range{0.0f, 2.25f}));
  c.percentile = 60.0;
  EXPECT_EQ(run(c, std::vector<float>{-3.0f, -1.0f, 0.0f, 2.0f})->range(), (Range{-1.5f, 1.5f}));
}

TEST(PercentileCalibratorTest, HandComputedAsymmetric) {
  // Values over [-A, A] = [-2, 2] with 4 bins: edges -2 -1 0 1 2; counts
  // 1 1 0 2; cdf .25 .5 .5 1. percentile 50 cuts 25% per side.
  CalibratorConfig c = cfg(CalibrationMethod::kPercentile);
  c.symmetric = false;
  c.num_bins = 4;
  c.percentile = 50.0;
  EXPECT_EQ(run(c, std::vector<float>{-2.0f, -1.0f, 1.0f, 2.0f})->range(), (Range{-2.0f, 1.0f}));
  // Float rounding in the cdf is ORT's: ten equal bins sum to 0.9999999999999999,
  // so percentile 100 finds no cdf >= 1 and takes the last edge.
  Histogram h(0.0f, 9.0f, 10);
  std::vector<float> v(10);
  std::iota(v.begin(), v.end(), 0.0f);
  h.add(v);
  EXPECT_EQ(percentile_range(h, 100.0, true, 0.0f, 9.0f), (Range{0.0f, 9.0f}));
  EXPECT_EQ(percentile_range(h, 90.0, true, 0.0f, 9.0f).max, h.edges()[9]);  // 0.8999999999999999 < 0.9
}

TEST(PercentileCalibratorTest, UniformDistributionMatchesAnalyticQuantile) {
  CalibratorConfig c = cfg(CalibrationMethod::kPercentile);
  c.percentile = 99.0;
  const std::vector<float> u = uniform(1 << 20, 11, 0.0f, 10.0f);
  const Range r = run(c, u)->range();
  EXPECT_EQ(r.min, *std::min_element(u.begin(), u.end()));  // -t raised to the (non-negative) data min
  EXPECT_NEAR(r.max, 9.9f, 0.02f);
  c.symmetric = false;
  const Range a = run(c, uniform(1 << 20, 12, -5.0f, 5.0f))->range();
  EXPECT_NEAR(a.min, -4.95f, 0.02f);
  EXPECT_NEAR(a.max, 4.95f, 0.02f);
}

// ---- Entropy -----------------------------------------------------------------------------

TEST(EntropyCalibratorTest, GaussianWithOutliersClipsWellBelowTheOutliers) {
  std::vector<float> v = gaussian(1 << 20, 5);
  for (float o : {50.0f, -50.0f, 48.0f, 49.5f, -47.0f}) v.push_back(o);
  CalibratorConfig c = cfg(CalibrationMethod::kEntropy);
  c.num_bins = 2048;
  auto cal = run(c, v);
  const Range r = cal->range();
  // ORT's variant (q spread over zero bins too) clips at about 7σ here.
  EXPECT_GT(r.max, 2.5f);
  EXPECT_LT(r.max, 10.0f);
  EXPECT_LT(r.min, -2.5f);
  EXPECT_GT(r.min, -10.0f);
  // The chosen candidate is the first minimum of the KL curve.
  const auto* h = dynamic_cast<const HistogramCalibrator*>(cal.get())->histogram();
  std::vector<EntropyCandidate> cands;
  entropy_range(*h, 128, -50.0f, 50.0f, &cands);
  ASSERT_EQ(cands.size(), 1024u - 64u + 1u);
  const auto best = std::min_element(cands.begin(), cands.end(),
                                     [](const auto& a, const auto& b) { return a.kl < b.kl; });
  EXPECT_EQ(best->range, r);
  EXPECT_EQ(cands.front().range.max, h->edges()[1024 + 65]);
  EXPECT_EQ(cands.back().range, (Range{h->edges()[0], h->edges()[2048]}));
}

TEST(EntropyCalibratorTest, OrtDefaultsGiveTheFullRange) {
  // num_bins 128 = num_quantized_bins 128 leaves a single candidate: all bins.
  std::vector<float> v = gaussian(100000, 6);
  v.push_back(40.0f);
  const Range e = run(cfg(CalibrationMethod::kEntropy), v)->range();
  const Range m = run(cfg(CalibrationMethod::kMinMax), v)->range();
  EXPECT_EQ(e, m);
}

// ---- MSE -------------------------------------------------------------------------------------

TEST(MseCalibratorTest, ExpectedErrorHandComputed) {
  // One bin [0, 1], one value, rounding to integers: ∫ (x − round(x))² = 1/12.
  Histogram h(0.0f, 1.0f, 1);
  h.add(std::vector<float>{0.3f});
  EXPECT_NEAR(expected_quantization_sse(h, make_qparams(1.0f, 0, QType::kInt8)), 1.0 / 12.0, 1e-12);
  // Bin [0, 4] with the grid ending at 1 (uint8, zp 254): 1/12 on [0, 1],
  // then ∫_1^4 (x − 1)² = 9; mean over the bin's width 4.
  Histogram w(0.0f, 4.0f, 1);
  w.add(std::vector<float>{2.0f});
  EXPECT_NEAR(expected_quantization_sse(w, make_qparams(1.0f, 254, QType::kUInt8)), (1.0 / 12.0 + 9.0) / 4.0,
              1e-12);
}

TEST(MseCalibratorTest, UniformKeepsNearlyTheFullRange) {
  CalibratorConfig c = cfg(CalibrationMethod::kMse);
  c.symmetric = true;
  const Range s = run(c, uniform(1 << 20, 21, -1.0f, 1.0f))->range();
  EXPECT_GT(s.max, 0.98f);
  EXPECT_LE(s.max, 1.0f);
  EXPECT_EQ(s.min, -s.max);
  c.symmetric = false;
  const Range a = run(c, uniform(1 << 20, 22, 0.0f, 1.0f))->range();  // one-sided (ReLU-like)
  EXPECT_EQ(a.min, 0.0f);
  EXPECT_GT(a.max, 0.98f);
  const Range t = run(c, uniform(1 << 20, 23, -1.0f, 3.0f))->range();  // two-sided 2-D search
  EXPECT_LT(t.min, -0.97f);
  EXPECT_GT(t.max, 2.94f);
}

TEST(MseCalibratorTest, LaplaceClipsNearTheAnalyticOptimum) {
  // Banner et al. (ACIQ): for Laplace(b) and 8 bits the MSE-optimal clip is
  // about 9.89·b (2^8 levels; int8 symmetric has 255, so slightly less).
  const double b = 0.5;
  CalibratorConfig c = cfg(CalibrationMethod::kMse);
  c.symmetric = true;
  auto cal = run(c, laplace(1 << 22, 31, b));
  const Range r = cal->range();
  EXPECT_GT(r.max, 9.0 * b);
  EXPECT_LT(r.max, 10.8 * b);
  // And it beats the MinMax range on its own objective.
  const auto* h = dynamic_cast<const HistogramCalibrator*>(cal.get())->histogram();
  const double at_opt = expected_quantization_sse(*h, choose_qparams(r.min, r.max, QType::kInt8, true));
  const double at_max = expected_quantization_sse(
      *h, choose_qparams(-std::max(-h->lo(), h->hi()), std::max(-h->lo(), h->hi()), QType::kInt8, true));
  EXPECT_LT(at_opt, at_max * 0.7);
  EXPECT_GT(cal->describe()["evaluations"].get<int>(), 1000);
}

// ---- Errors ------------------------------------------------------------------------------------

TEST(HistogramCalibratorTest, MisuseIsAnErrorNotACrash) {
  for (CalibrationMethod m : {CalibrationMethod::kPercentile, CalibrationMethod::kEntropy, CalibrationMethod::kMse}) {
    auto cal = make_calibrator(cfg(m));
    EXPECT_TRUE(cal->needs_range_pass());
    EXPECT_FALSE(cal->has_range());
    EXPECT_THROW(cal->observe(std::vector<float>{1.0f}), PtqError) << calibration_method_name(m);
    EXPECT_THROW(cal->range(), PtqError);
    EXPECT_THROW(cal->set_range(std::nanf(""), 1.0f), PtqError);
    EXPECT_THROW(cal->set_range(2.0f, 1.0f), PtqError);
    cal->set_range(-1.0f, 2.0f);
    EXPECT_THROW(cal->range(), PtqError);  // no data yet
    // A second pass that sees different data than the first.
    try {
      cal->observe(std::vector<float>{0.5f, 3.0f});
      FAIL() << calibration_method_name(m);
    } catch (const PtqError& e) {
      EXPECT_NE(std::string(e.what()).find("same data"), std::string::npos) << e.what();
    }
    cal->observe(std::vector<float>{0.5f, -1.0f, 2.0f});
    EXPECT_THROW(cal->set_range(-1.0f, 2.0f), PtqError);  // after observe
    EXPECT_NO_THROW(cal->range());
    // Merging calibrators of other configs or ranges.
    auto other = make_calibrator(cfg(CalibrationMethod::kMinMax));
    EXPECT_THROW(cal->merge(*other), PtqError);
    auto same = make_calibrator(cfg(m));
    same->set_range(-1.0f, 5.0f);
    same->observe(std::vector<float>{4.0f});
    EXPECT_THROW(cal->merge(*same), PtqError);
    EXPECT_THROW(cal->merge(*cal), PtqError);
  }
}

TEST(HistogramCalibratorTest, ConstantTensorsGiveUsableRanges) {
  // All-zero, all-positive and all-negative constant tensors through every
  // method: a range that choose_qparams accepts (ORT's one-sided quirks
  // included), and scale 1 / zero point 0 for the all-zero tensor.
  for (CalibrationMethod m : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile, CalibrationMethod::kEntropy,
                              CalibrationMethod::kMse}) {
    for (float v : {0.0f, 3.0f, -2.0f}) {
      const std::vector<float> data(1000, v);
      const Range r = run(cfg(m), data)->range();
      const QuantParams p = choose_qparams(r.min, r.max, QType::kInt8, false);
      if (v == 0.0f) {
        EXPECT_EQ(r, (Range{0.0f, 0.0f})) << calibration_method_name(m);
        EXPECT_EQ(p.scale, 1.0f);
        EXPECT_EQ(p.zero_point, 0);
      } else {
        // The value itself is representable within one step.
        EXPECT_LE(std::fabs(dequantize_value(quantize_value(v, p), p) - v), p.scale) << calibration_method_name(m)
                                                                                     << " v=" << v;
      }
    }
  }
  // ORT's percentile on a constant 3: t is the lower edge of the last |x|
  // bin, min is raised to the data min → an inverted pair.
  CalibratorConfig c = cfg(CalibrationMethod::kPercentile);
  const Range r = run(c, std::vector<float>(10, 3.0f))->range();
  EXPECT_EQ(r.min, 3.0f);
  EXPECT_LT(r.max, 3.0f);
}

// ---- Determinism ----------------------------------------------------------------------------------

// Runs both passes with per-batch clones merged in `order`, each batch
// observed on its own thread when `threads` is set.
Range batched(const CalibratorConfig& c, const std::vector<float>& data, std::size_t batch,
              const std::vector<std::size_t>& order_seed_shuffle, bool threads, std::string* describe = nullptr) {
  std::vector<std::span<const float>> batches;
  for (std::size_t i = 0; i < data.size(); i += batch)
    batches.emplace_back(data.data() + i, std::min(batch, data.size() - i));
  std::vector<std::size_t> order(batches.size());
  std::iota(order.begin(), order.end(), 0);
  if (!order_seed_shuffle.empty()) std::shuffle(order.begin(), order.end(), std::mt19937(order_seed_shuffle[0]));

  auto pass = [&](Calibrator& target) {
    std::vector<std::unique_ptr<Calibrator>> parts(batches.size());
    for (std::size_t b = 0; b < batches.size(); ++b) parts[b] = target.clone_empty();
    if (threads) {
      std::vector<std::thread> ts;
      for (std::size_t b = 0; b < batches.size(); ++b)
        ts.emplace_back([&, b] { parts[b]->observe(batches[b]); });
      for (auto& t : ts) t.join();
    } else {
      for (std::size_t b = 0; b < batches.size(); ++b) parts[b]->observe(batches[b]);
    }
    for (std::size_t b : order) target.merge(*parts[b]);
  };
  auto cal = make_calibrator(c);
  if (cal->needs_range_pass()) {
    auto mm = make_calibrator(c.range_pass_config());
    pass(*mm);
    const Range r = mm->range();
    cal->set_range(r.min, r.max);
  }
  pass(*cal);
  if (describe) *describe = cal->describe().dump();
  return cal->range();
}

TEST(CalibratorDeterminismTest, SameRangeForAnyBatchingOrderAndThreads) {
  std::vector<float> data = gaussian(60001, 77, 2.0f);
  for (std::size_t i = 0; i < data.size(); i += 997) data[i] = std::fabs(data[i]) * 9.0f;  // skewed outliers
  data[123] = std::nanf("");
  data[456] = -0.0f;
  std::vector<CalibratorConfig> configs = {cfg(CalibrationMethod::kMinMax), cfg(CalibrationMethod::kPercentile),
                                           cfg(CalibrationMethod::kEntropy), cfg(CalibrationMethod::kMse)};
  CalibratorConfig p = cfg(CalibrationMethod::kPercentile);
  p.symmetric = false;
  p.percentile = 99.9;
  configs.push_back(p);
  CalibratorConfig e = cfg(CalibrationMethod::kEntropy);
  e.num_bins = 1024;
  configs.push_back(e);
  CalibratorConfig m = cfg(CalibrationMethod::kMse);
  m.symmetric = true;
  m.qtype = QType::kUInt8;
  configs.push_back(m);
  for (const CalibratorConfig& c : configs) {
    std::string ref_desc;
    const Range ref = batched(c, data, data.size(), {}, false, &ref_desc);
    const Range whole = run(c, data)->range();
    EXPECT_EQ(range_bits(whole), range_bits(ref)) << c.to_json().dump();
    for (std::size_t batch : {97u, 1000u, 4096u, 60000u}) {
      for (bool threads : {false, true}) {
        if (threads && batch < 1000) continue;  // at most 61 threads
        std::string desc;
        const Range r = batched(c, data, batch, {batch}, threads, &desc);
        EXPECT_EQ(range_bits(r), range_bits(ref))
            << c.to_json().dump() << " batch " << batch << " threads " << threads << ": [" << r.min << ", " << r.max
            << "] vs [" << ref.min << ", " << ref.max << "]";
        EXPECT_EQ(desc, ref_desc) << c.to_json().dump() << " batch " << batch;
      }
    }
  }
}

}  // namespace
}  // namespace qpipe
