// Calibration over activation taps on a small in-memory model: MinMax equals
// the directly computed extremes; ranges are bit-identical for any batch size
// and thread count (MinMax and a two-pass histogram method); errors name the
// problem.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <algorithm>
#include <random>

#include "engine/error.h"
#include "engine/session.h"
#include "quant/calibrate.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;

// x [N, 6] → MatMul (6×4) → y → Relu → r.
Model toy() {
  Model m;
  m.opset = 15;
  m.graph.name = "toy";
  m.graph.inputs = {"x"};
  m.graph.outputs = {"r"};
  ValueInfo vi;
  vi.shape = {-1, 6};
  vi.has_shape = true;
  m.graph.value_info["x"] = vi;
  std::mt19937 rng(5);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  Tensor w(DType::kFloat32, {6, 4});
  for (float& v : w.span<float>()) v = nd(rng);
  m.graph.initializers["w"] = w;
  Node mm;
  mm.name = "mm";
  mm.op_type = "MatMul";
  mm.inputs = {"x", "w"};
  mm.outputs = {"y"};
  Node relu;
  relu.name = "relu";
  relu.op_type = "Relu";
  relu.inputs = {"y"};
  relu.outputs = {"r"};
  m.graph.nodes = {mm, relu};
  return m;
}

Tensor images(int64_t n) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  Tensor t(DType::kFloat32, {n, 6});
  for (float& v : t.span<float>()) v = nd(rng);
  return t;
}

TEST(Calibrate, MinMaxEqualsDirectExtremes) {
  Model m = toy();
  Session s(m);
  Tensor x = images(37);
  CalibrationOptions o;
  o.batch = 5;
  CalibrationResult r = calibrate(s, x, {"y", "r"}, o);
  EXPECT_EQ(r.images, 37);
  EXPECT_EQ(r.passes, 1);
  auto outs = s.run({{"x", x}}, {"y", "r"});
  for (int t = 0; t < 2; ++t) {
    auto v = outs[t].span<float>();
    const Range want{*std::min_element(v.begin(), v.end()), *std::max_element(v.begin(), v.end())};
    EXPECT_EQ(r.ranges().at(t == 0 ? "y" : "r"), want);
  }
  EXPECT_EQ(r.ranges().at("r").min, 0.0f);
  nlohmann::json j = r.to_json();
  EXPECT_EQ(j["tensors"].size(), 2u);
  EXPECT_EQ(j["tensors"][0]["tensor"], "y");
}

TEST(Calibrate, IdenticalForAnyBatchSizeAndThreadCount) {
  Model m = toy();
  Session s(m);
  Tensor x = images(53);
  for (CalibrationMethod method : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile,
                                   CalibrationMethod::kEntropy, CalibrationMethod::kMse}) {
    SCOPED_TRACE(calibration_method_name(method));
    std::map<std::string, Range> first;
    for (auto [batch, threads, wave] : {std::tuple<int64_t, int, int>{53, 1, 16}, {1, 2, 3}, {4, 2, 1}, {10, 1, 16}}) {
      CalibrationOptions o;
      o.calibrator.method = method;
      o.batch = batch;
      o.wave = wave;
      CalibrationResult r;
      tbb::task_arena arena(threads);
      arena.execute([&] { r = calibrate(s, x, {"y", "r"}, o); });
      EXPECT_EQ(r.passes, method == CalibrationMethod::kMinMax ? 1 : 2);
      if (first.empty()) first = r.ranges();
      else EXPECT_EQ(r.ranges(), first) << "batch " << batch << " threads " << threads;
    }
  }
}

TEST(Calibrate, Errors) {
  Model m = toy();
  Session s(m);
  CalibrationOptions o;
  EXPECT_THAT([&] { calibrate(s, Tensor(DType::kFloat32, {0, 6}), {"y"}, o); },
              ::testing::ThrowsMessage<PtqError>(HasSubstr("no calibration images")));
  o.batch = 0;
  EXPECT_THAT([&] { calibrate(s, images(3), {"y"}, o); },
              ::testing::ThrowsMessage<PtqError>(HasSubstr("batch must be >= 1")));
  o.batch = 2;
  EXPECT_THROW(calibrate(s, images(3), {"no_such_tensor"}, o), PtqError);
}

TEST(Calibrate, SliceBatch) {
  Tensor x = images(5);
  Tensor s = slice_batch(x, 2, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 6}));
  EXPECT_EQ(s.data<float>()[0], x.data<float>()[12]);
  EXPECT_THROW(slice_batch(x, 4, 2), PtqError);
}

}  // namespace
}  // namespace qpipe
