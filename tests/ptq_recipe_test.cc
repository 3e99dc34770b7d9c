// Acceptance (b): the study's recipe end to end — numpy sampler, seed 42,
// 100 images per class from the training split, MinMax, per-tensor, ORT's
// QDQ placement, calibration in ONNX Runtime's summation order (the default,
// calibration.conv_order = ort with 2 intra-op threads).
//  int8 from draw 1: every zero point equals ../shared/reference/
//    ort_int8_quant_params.json, the network input is exactly 1.0 / -128,
//    and the accuracy under reference semantics is 8611/10000, the figure
//    ONNX Runtime 1.30 gives for the model it builds with this recipe
//    (ort_anchors.json, study_recipe_rebuilt).
//  Scales: qpipe's calibrated ranges are bit-identical to ONNX Runtime
//    1.30's (tests/ptq_ort_calibration_test.cc). Against the study's file
//    most scales are within 2 float32 ulp, but a few are 3-4 ulp away
//    (activation_6 and the AveragePool/Reshape outputs sharing it: 4 below;
//    activation_4, conv2d_8 and the biases computed from them: 3-4 above).
//    ONNX Runtime 1.30 itself, run on these files (onnxruntime-node, graph
//    optimizations off, one image per run, 1 or 2 threads), produces exactly
//    those same ranges, so the remaining distance is the study's own
//    environment (its converter's float32 constants, e.g. the first BN Mul's
//    range is already 1 ulp away although its conv input is bit-identical),
//    not qpipe. The test bounds it at 4 ulp and reports the worst.
//  uint8 from draw 2 (uint8 weights asymmetric, as ORT): the published
//    8675/10000.
//  Both accuracies are exact when the QDQ model is evaluated in ORT's
//    summation order too (SessionOptions::conv_order = "ort", as the anchors
//    were measured); qpipe's own fast order gives 8611 and 8674 (one uint8
//    image whose top two logits are within float32 rounding).
// Also: calibration gives bit-identical ranges for different batch sizes and
// thread counts.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <bit>
#include <cstdlib>
#include <string>

#include "engine/evaluate.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "quant/overrides.h"
#include "quant/ptq.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

int64_t ulp_distance(float a, float b) {
  const int32_t ia = std::bit_cast<int32_t>(a), ib = std::bit_cast<int32_t>(b);
  return std::llabs(static_cast<int64_t>(ia) - static_cast<int64_t>(ib));  // same sign (both > 0) here
}

CalibrationImages study_images(const std::string& shared, int draw) {
  CalibrationSetSpec spec;
  spec.sampler = "numpy";
  spec.seed = 42;
  spec.per_class = 100;
  spec.draw = draw;
  return load_calibration_images(shared + "/data/cifar-10-batches-bin", spec);
}

// conv_order "ort": the QDQ model evaluated with ONNX Runtime's float32
// summation order, as the anchors were measured; "qpipe": the engine's own
// (fast) order, which may flip an image or two whose logits tie within a few
// ulp.
int64_t accuracy(const Model& m, const std::string& shared, const std::string& conv_order) {
  Cifar10Dataset test = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  SessionOptions so;
  so.conv_order = conv_order;
  return evaluate(Session(m, so), test).correct;
}

TEST(PtqRecipe, Int8Draw1MatchesTheStudysParameters) {
  QPIPE_REQUIRE_SHARED(shared);
  const Model fp32 = load_onnx(shared + "/models/resnet8.onnx");
  const CalibrationImages calib = study_images(shared, 1);
  ASSERT_EQ(calib.images.dim(0), 1000);
  PtqOptions o;  // defaults: int8/int8, MinMax, per tensor
  PtqResult r = run_ptq(fp32, calib.images, o);
  EXPECT_EQ(r.qdq.quantize_nodes, 32);
  EXPECT_EQ(r.qdq.dequantize_nodes, 66);

  const TensorOverrides study = load_overrides(shared + "/reference/ort_int8_quant_params.json",
                                               shared + "/reference/ort_tensor_name_map.json");
  int checked = 0;
  int64_t worst_ulp = 0;
  for (const auto& [name, p] : study.tensors) {
    SCOPED_TRACE(name);
    const QdqParamRecord* ours = r.qdq.find(name);
    ASSERT_NE(ours, nullptr);
    ASSERT_EQ(ours->scale.size(), p.scale.size());
    for (std::size_t i = 0; i < p.scale.size(); ++i) {
      EXPECT_EQ(ours->zero_point[i], p.zero_point[i]);
      const int64_t d = ulp_distance(ours->scale[i], p.scale[i]);
      worst_ulp = std::max(worst_ulp, d);
      EXPECT_LE(d, 4) << "ours " << ours->scale[i] << " study " << p.scale[i];
    }
    ++checked;
  }
  EXPECT_EQ(checked, static_cast<int>(study.tensors.size()));
  EXPECT_EQ(r.qdq.find("input_nchw")->scale[0], 1.0f);
  EXPECT_EQ(r.qdq.find("input_nchw")->zero_point[0], -128);
  RecordProperty("worst_scale_ulp", static_cast<int>(worst_ulp));

  EXPECT_EQ(accuracy(r.qdq.model, shared, "ort"), 8611);
  EXPECT_NEAR(static_cast<double>(accuracy(r.qdq.model, shared, "qpipe")), 8611.0, 3.0);  // measured 8611
}

TEST(PtqRecipe, Uint8Draw2MatchesThePublishedAccuracy) {
  QPIPE_REQUIRE_SHARED(shared);
  const Model fp32 = load_onnx(shared + "/models/resnet8.onnx");
  const CalibrationImages calib = study_images(shared, 2);
  PtqOptions o;
  o.config.activation_type = QType::kUInt8;
  o.config.weight_type = QType::kUInt8;  // asymmetric by default, as ORT
  PtqResult r = run_ptq(fp32, calib.images, o);
  EXPECT_EQ(r.qdq.quantize_nodes, 32);
  EXPECT_NE(r.qdq.find("conv2d/kernel")->zero_point[0], 0);
  EXPECT_EQ(r.qdq.find("dense")->zero_point[0], 0);
  EXPECT_FLOAT_EQ(r.qdq.find("dense")->scale[0], 1.0f / 255.0f);
  EXPECT_EQ(accuracy(r.qdq.model, shared, "ort"), 8675);
  EXPECT_NEAR(static_cast<double>(accuracy(r.qdq.model, shared, "qpipe")), 8675.0, 3.0);  // measured 8674
}

TEST(PtqRecipe, CalibrationIsIdenticalForAnyBatchSizeAndThreadCount) {
  QPIPE_REQUIRE_SHARED(shared);
  const Model fp32 = load_onnx(shared + "/models/resnet8.onnx");
  CalibrationImages calib = study_images(shared, 1);
  Tensor images = slice_batch(calib.images, 0, 200);
  const QdqPlan plan = plan_qdq(fp32.graph, QuantConfig{});
  Session s(fp32);
  for (CalibrationMethod method : {CalibrationMethod::kMinMax, CalibrationMethod::kPercentile}) {
    SCOPED_TRACE(calibration_method_name(method));
    std::map<std::string, Range> first;
    for (auto [batch, threads] : {std::pair<int64_t, int>{200, 1}, {7, 2}, {1, 2}, {64, 1}}) {
      CalibrationOptions co;
      co.calibrator.method = method;
      co.batch = batch;
      std::map<std::string, Range> ranges;
      tbb::task_arena arena(threads);
      arena.execute([&] { ranges = calibrate(s, images, plan.tensors_to_calibrate(), co).ranges(); });
      if (first.empty()) first = ranges;
      else EXPECT_EQ(ranges, first) << "batch " << batch << " threads " << threads;
    }
  }
}

}  // namespace
}  // namespace qpipe
