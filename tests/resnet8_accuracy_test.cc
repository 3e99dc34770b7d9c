// Acceptance tests of the engine on the real models and data in ../shared:
// - resnet8.onnx (FP32) on the CIFAR-10 test split: exactly ONNX Runtime's
//   8719/10000, its per-class accuracies (read from
//   ../shared/reference/ort_anchors.json) and 881 on the first 1000 images;
// - its softmax outputs against a float64 evaluation of the same graph;
// - resnet8_int8_ort_reference.onnx (QDQ) under the spec's reference
//   semantics: within 2 images of ORT's 8613. The count depends on the float32
//   summation order of the Conv kernels (measured 16:55 UTC: the portable
//   Eigen path gives 8612, the AVX2+FMA path 8613 with all 10000 predictions
//   equal to ORT's); details at Int8ReferenceModelUnderSpecSemantics below.
// Each whole-test-set evaluation costs seconds (FP32 ~6 s, QDQ ~15 s on two
// cores), so there is one of each.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "engine/evaluate.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "tests/fixtures/kernel_runner.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

std::string data_dir(const std::string& shared) { return shared + "/data/cifar-10-batches-bin"; }

nlohmann::json anchors(const std::string& shared) {
  std::ifstream in(shared + "/reference/ort_anchors.json");
  EXPECT_TRUE(in.good()) << shared << "/reference/ort_anchors.json";
  return nlohmann::json::parse(in);
}

EvalResult evaluate_all(const Session& s, const Cifar10Dataset& data) {
  EvalOptions eo;
  eo.batch = 256;
  eo.keep_predictions = true;
  EvalResult r;
  tbb::task_arena arena(tbb::info::default_concurrency());
  arena.execute([&] { r = evaluate(s, data, eo); });
  return r;
}

int64_t correct_in_first(const EvalResult& r, std::size_t n) {
  int64_t c = 0;
  for (std::size_t i = 0; i < n && i < r.predictions.size(); ++i) c += r.predictions[i] == r.labels[i];
  return c;
}

// Per-class correct counts implied by the anchors' accuracies and our totals.
std::vector<int64_t> anchor_class_correct(const nlohmann::json& per_class, const EvalResult& r) {
  std::vector<int64_t> out;
  for (std::size_t c = 0; c < per_class.size(); ++c)
    out.push_back(std::llround(per_class[c].get<double>() * static_cast<double>(r.class_total[c])));
  return out;
}

TEST(Resnet8Accuracy, Fp32TestSplitMatchesOnnxRuntimeExactly) {
  QPIPE_REQUIRE_SHARED(shared);
  const nlohmann::json a = anchors(shared)["models/resnet8.onnx"];
  Session s(load_onnx(shared + "/models/resnet8.onnx"));
  const Cifar10Dataset data = open_cifar10(data_dir(shared), Cifar10Split::kTest);
  ASSERT_EQ(data.size(), a["images"].get<int64_t>());
  const EvalResult r = evaluate_all(s, data);
  std::cout << "[ measured ] resnet8.onnx: " << r.correct << "/" << r.total << " in " << r.seconds << " s\n";
  EXPECT_EQ(r.correct, a["correct"].get<int64_t>());
  EXPECT_EQ(r.total, 10000);
  EXPECT_EQ(r.class_correct, anchor_class_correct(a["per_class"], r));
  ASSERT_EQ(r.class_names.size(), 10u);
  EXPECT_EQ(r.class_names[5], "dog");
  EXPECT_NEAR(r.class_accuracy(5), 0.742, 1e-12);
  EXPECT_EQ(correct_in_first(r, 1000), a["first_1000_images"].get<int64_t>());
  // The confusion matrix is consistent with the counts.
  int64_t diag = 0, all = 0;
  for (std::size_t i = 0; i < 10; ++i)
    for (std::size_t j = 0; j < 10; ++j) {
      all += r.confusion[i][j];
      if (i == j) diag += r.confusion[i][j];
    }
  EXPECT_EQ(diag, r.correct);
  EXPECT_EQ(all, r.total);
}

TEST(Resnet8Accuracy, Fp32MaxSamplesGivesTheFirstImages) {
  QPIPE_REQUIRE_SHARED(shared);
  Session s(load_onnx(shared + "/models/resnet8.onnx"));
  const Cifar10Dataset data = open_cifar10(data_dir(shared), Cifar10Split::kTest).limited(1000);
  const EvalResult r = evaluate_all(s, data);
  EXPECT_EQ(r.total, 1000);
  EXPECT_EQ(r.correct, anchors(shared)["models/resnet8.onnx"]["first_1000_images"].get<int64_t>());
}

TEST(Resnet8Accuracy, Fp32SoftmaxMatchesFloat64EvaluationOfTheSameGraph) {
  QPIPE_REQUIRE_SHARED(shared);
  const Model m = load_onnx(shared + "/models/resnet8.onnx");
  SessionOptions o64;
  o64.float64 = true;
  Session s32(m), s64(m, o64);
  const Cifar10Dataset data = open_cifar10(data_dir(shared), Cifar10Split::kTest);
  // 64 images spread over the split.
  std::vector<int64_t> idx(64);
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = static_cast<int64_t>(i) * 156 + 7;
  const Cifar10Batch b = data.read_indices(idx);
  Tensor y32 = s32.run(b.images).at(0);
  Tensor y64 = s64.run(b.images).at(0);
  ASSERT_EQ(y32.shape(), (Shape{64, 10}));
  ASSERT_EQ(y64.dtype(), DType::kFloat64);
  double max_diff = 0;
  const std::vector<double> a = to_double(y32), e = to_double(y64);
  for (std::size_t i = 0; i < a.size(); ++i) max_diff = std::max(max_diff, std::fabs(a[i] - e[i]));
  std::cout << "[ measured ] max |softmax fp32 - fp64| over 64 images: " << max_diff << "\n";
  EXPECT_LT(max_diff, 1e-5);
  EXPECT_TRUE(testing::close_to_reference(y32, e, 1e-5, "resnet8 softmax fp32 vs fp64"));
  // The argmax agrees on every image.
  EXPECT_EQ(argmax_rows(y32), argmax_rows(y64));
}

// ORT 1.30 with graph optimizations disabled gives 8613. Per-image check with
// onnxruntime-node (bench/peer/ort_predictions.mjs): with the portable Conv
// (im2col + Eigen GEMM) every image agrees except 9217 (label truck), which
// ORT classifies correctly and qpipe as airplane (8612). The first differing
// tensor is conv2d_3_q, element [0,21,10,5]: the Conv sum there is 1.8959554
// exactly (float64), 1.8959559 in ORT's float32 order and 1.8959565 in the
// Eigen order; divided by the scale 0.108340368 in float32 that is 17.4999962
// (ORT -> 17) vs exactly 17.5 (ties to even -> 18), so the int8 value is 36 vs
// 37 (zero point 19), which propagates to a different argmax. The AVX2+FMA
// Conv path sums in an order that agrees with ORT on all 10000 images (8613).
// Any float32 summation order is spec-conforming, so ±2 images are accepted.
TEST(Resnet8Accuracy, Int8ReferenceModelUnderSpecSemantics) {
  QPIPE_REQUIRE_SHARED(shared);
  const nlohmann::json a = anchors(shared)["models/resnet8_int8_ort_reference.onnx"]["reference_semantics"];
  Session s(load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx"));
  const Cifar10Dataset data = open_cifar10(data_dir(shared), Cifar10Split::kTest);
  const EvalResult r = evaluate_all(s, data);
  std::cout << "[ measured ] resnet8_int8_ort_reference.onnx (reference semantics): " << r.correct << "/" << r.total
            << " (ORT: " << a["correct"] << ") in " << r.seconds << " s; image 9217 predicted "
            << r.predictions.at(9217) << " (label " << r.labels.at(9217) << ")\n";
  ::testing::Test::RecordProperty("int8_reference_correct", static_cast<int>(r.correct));
  EXPECT_NEAR(static_cast<double>(r.correct), a["correct"].get<double>(), 2.0);
  const std::vector<int64_t> want = anchor_class_correct(a["per_class"], r);
  for (std::size_t c = 0; c < 10; ++c)
    EXPECT_NEAR(static_cast<double>(r.class_correct[c]), static_cast<double>(want[c]), 2.0) << r.class_names[c];
  EXPECT_NEAR(static_cast<double>(correct_in_first(r, 1000)), a["first_1000_images"].get<double>(), 1.0);
}

}  // namespace
}  // namespace qpipe
