// QuantConfig: ORT defaults, JSON parsing (strict keys, typed values), and
// the canonical JSON form.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "engine/error.h"
#include "quant/quant_config.h"

namespace qpipe {
namespace {

using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(QuantConfig, DefaultsAreOrtQuantizeStatic) {
  QuantConfig c;
  EXPECT_EQ(c.activation_type, QType::kInt8);
  EXPECT_EQ(c.weight_type, QType::kInt8);
  EXPECT_TRUE(c.effective_weight_symmetric());  // int8 weights symmetric
  c.weight_type = QType::kUInt8;
  EXPECT_FALSE(c.effective_weight_symmetric());  // uint8 weights asymmetric
  c.weight_symmetric = true;
  EXPECT_TRUE(c.effective_weight_symmetric());
  EXPECT_FALSE(c.per_channel);
  EXPECT_TRUE(c.fold_activations);
  EXPECT_EQ(c.calibration.method, CalibrationMethod::kMinMax);
  // The calibrator follows the activation type; activations never use reduce_range.
  c.activation_type = QType::kUInt8;
  c.reduce_range = true;
  EXPECT_EQ(c.effective_calibration().qtype, QType::kUInt8);
  EXPECT_FALSE(c.effective_calibration().reduce_range);
}

TEST(QuantConfig, ParsesEveryKey) {
  json j = json::parse(R"({
    "activation_type": "uint8", "weight_type": "uint8", "activation_symmetric": true,
    "weight_symmetric": true, "per_channel": true, "reduce_range": true,
    "calibration": {"method": "percentile", "percentile": 99.99, "num_bins": 1024, "symmetric": false},
    "exclude_nodes": ["conv2d", "dense/softmax"], "exclude_op_types": "Softmax",
    "fold_activations": false, "bias_correction": true})");
  QuantConfig c = QuantConfig::from_json(j);
  EXPECT_EQ(c.activation_type, QType::kUInt8);
  EXPECT_EQ(c.weight_type, QType::kUInt8);
  EXPECT_TRUE(c.activation_symmetric);
  EXPECT_TRUE(c.effective_weight_symmetric());
  EXPECT_TRUE(c.per_channel);
  EXPECT_TRUE(c.reduce_range);
  EXPECT_EQ(c.calibration.method, CalibrationMethod::kPercentile);
  EXPECT_DOUBLE_EQ(c.calibration.percentile, 99.99);
  EXPECT_EQ(c.calibration.num_bins, 1024);
  EXPECT_EQ(c.calibration.symmetric, std::optional<bool>(false));
  EXPECT_EQ(c.exclude_nodes, (std::vector<std::string>{"conv2d", "dense/softmax"}));
  EXPECT_EQ(c.exclude_op_types, (std::vector<std::string>{"Softmax"}));
  EXPECT_TRUE(c.is_excluded("conv2d", "Conv"));
  EXPECT_TRUE(c.is_excluded("anything", "Softmax"));
  EXPECT_FALSE(c.is_excluded("conv2d_1", "Conv"));
  EXPECT_FALSE(c.fold_activations);
  EXPECT_TRUE(c.bias_correction);

  // Round trip through the canonical form.
  QuantConfig back = QuantConfig::from_json(c.to_json());
  EXPECT_EQ(back.to_json(), c.to_json());
  EXPECT_EQ(QuantConfig::from_json(json::parse(R"({"calibration": "entropy"})")).calibration.method,
            CalibrationMethod::kEntropy);
}

TEST(QuantConfig, RejectsBadInputNamingTheKey) {
  auto expect_error = [](const char* text, const char* needle) {
    SCOPED_TRACE(text);
    try {
      QuantConfig::from_json(json::parse(text), "spec.yaml › exp › quantize");
      FAIL() << "expected PtqError";
    } catch (const PtqError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kSpec);
      EXPECT_THAT(e.what(), HasSubstr(needle));
    }
  };
  expect_error(R"({"per_chanel": true})", "unknown key 'per_chanel'");
  expect_error(R"({"per_channel": "yes"})", "'per_channel' must be true or false");
  expect_error(R"({"activation_type": "int32"})", "expected int8 or uint8");
  expect_error(R"({"weight_type": "fp8"})", "'weight_type' is 'fp8'");
  expect_error(R"({"calibration": {"method": "kl"}})", "unknown calibration method 'kl'");
  expect_error(R"({"calibration": {"method": "percentile", "percentile": 101}})", "percentile 101");
  expect_error(R"({"calibration": {"metod": "minmax"}})", "unknown key 'metod'");
  expect_error(R"({"exclude_nodes": [1, 2]})", "must hold strings only");
  expect_error(R"([1, 2])", "expected a JSON/YAML mapping");
  expect_error(R"({"per_chanel": true})", "spec.yaml › exp › quantize");
}

}  // namespace
}  // namespace qpipe
