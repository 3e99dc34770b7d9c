// Overrides: qpipe's format, the study's ORT params format with its name
// map (synthetic here; the real files are exercised by
// tests/ptq_reference_test.cc), and the error messages for bad files.

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/error.h"
#include "quant/overrides.h"

namespace qpipe {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using json = nlohmann::json;

TEST(Overrides, QpipeFormat) {
  json j = json::parse(R"({"format": "qpipe-overrides/1", "tensors": {
      "conv2d": {"scale": 0.5, "zero_point": -3},
      "conv2d/kernel": {"scale": [0.1, 0.2], "zero_point": [0, 0]},
      "activation": {"scale_factor": 2.0, "zero_point_shift": -1}}})");
  TensorOverrides o = parse_overrides(j, "o.json");
  ASSERT_EQ(o.tensors.size(), 3u);
  EXPECT_THAT(o.find("conv2d")->scale, ElementsAre(0.5f));
  EXPECT_THAT(o.find("conv2d")->zero_point, ElementsAre(-3));
  EXPECT_THAT(o.find("conv2d/kernel")->scale, ElementsAre(0.1f, 0.2f));
  EXPECT_FALSE(o.find("activation")->has_params());
  EXPECT_DOUBLE_EQ(o.find("activation")->scale_factor, 2.0);
  EXPECT_EQ(o.find("activation")->zero_point_shift, -1);
  EXPECT_EQ(o.find("nope"), nullptr);
  // Round trip.
  TensorOverrides back = parse_overrides(o.to_json(), "again");
  EXPECT_EQ(back.to_json(), o.to_json());
}

TEST(Overrides, QpipeFormatErrors) {
  auto expect_error = [](const char* text, const char* needle) {
    SCOPED_TRACE(text);
    try {
      parse_overrides(json::parse(text), "o.json");
      FAIL() << "expected PtqError";
    } catch (const PtqError& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInput);
      EXPECT_THAT(e.what(), HasSubstr("o.json"));
      EXPECT_THAT(e.what(), HasSubstr(needle));
    }
  };
  expect_error(R"({"tensors": {"a": {"scale": 0.5}}})", "must be given together");
  expect_error(R"({"tensors": {"a": {"scale": -1, "zero_point": 0}}})", "expected a finite number > 0");
  expect_error(R"({"tensors": {"a": {"scale": [1, 2], "zero_point": [0]}}})", "'scale' has 2 values");
  expect_error(R"({"tensors": {"a": {"scale": 1, "zero_point": 0.5}}})", "must be an integer");
  expect_error(R"({"tensors": {"a": {"scael": 1}}})", "unknown key 'scael'");
  expect_error(R"({"tensors": {"a": {"scale_factor": 0}}})", "'scale_factor' must be a finite number > 0");
  expect_error(R"({"format": "v2", "tensors": {}})", "expected \"qpipe-overrides/1\"");
  expect_error(R"({"tensor": {}})", "unknown key 'tensor'");
}

json study_params() {
  return json::parse(R"({"operations": [
    {"name": "x_QuantizeLinear", "op_type": "QuantizeLinear", "inputs": ["m/x:0", "m/x:0_scale", "m/x:0_zero_point"],
     "scales": {"m/x:0_scale": 0.25}, "zero_points": {"m/x:0_zero_point": -7}},
    {"name": "x_DequantizeLinear", "op_type": "DequantizeLinear",
     "inputs": ["m/x:0_QuantizeLinear_Output", "m/x:0_scale", "m/x:0_zero_point"],
     "scales": {"m/x:0_scale": 0.25}, "zero_points": {"m/x:0_zero_point": -7}},
    {"name": "pool_QuantizeLinear", "op_type": "QuantizeLinear", "inputs": ["m/pool:0", "m/x:0_scale", "m/x:0_zero_point"],
     "scales": {"m/x:0_scale": 0.25}, "zero_points": {"m/x:0_zero_point": -7}},
    {"name": "w_DequantizeLinear", "op_type": "DequantizeLinear", "inputs": ["m/w:0_quantized", "m/w:0_scale", "m/w:0_zero_point"],
     "scales": {"m/w:0_scale": 0.01}, "zero_points": {"m/w:0_zero_point": 0}},
    {"name": "b_DequantizeLinear", "op_type": "DequantizeLinear",
     "inputs": ["m/b:0_quantized", "m/b:0_quantized_scale", "m/b:0_quantized_zero_point"],
     "scales": {"m/b:0_quantized_scale": [0.0025]}, "zero_points": {"m/b:0_quantized_zero_point": 0}}]})");
}

TEST(Overrides, StudyFormatWithNameMap) {
  json map = json::parse(R"({"map": {"m/x:0": "x", "m/pool:0": "pool", "m/w:0": "conv/kernel", "m/b:0": "conv/bias"}})");
  TensorOverrides o = parse_ort_quant_params(study_params(), map, "params.json");
  ASSERT_EQ(o.tensors.size(), 4u);
  EXPECT_THAT(o.find("x")->scale, ElementsAre(0.25f));
  EXPECT_THAT(o.find("x")->zero_point, ElementsAre(-7));
  EXPECT_THAT(o.find("pool")->zero_point, ElementsAre(-7));  // shared parameters, own entry
  EXPECT_THAT(o.find("conv/kernel")->scale, ElementsAre(0.01f));
  EXPECT_THAT(o.find("conv/bias")->scale, ElementsAre(0.0025f));  // a list of one is per tensor

  json partial = json::parse(R"({"map": {"m/x:0": "x", "m/w:0": "conv/kernel"}})");
  try {
    parse_ort_quant_params(study_params(), partial, "params.json");
    FAIL() << "expected PtqError";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("not in the name map"));
    EXPECT_THAT(e.what(), HasSubstr("'m/pool:0'"));
    EXPECT_THAT(e.what(), HasSubstr("'m/b:0'"));
  }
}

TEST(Overrides, LoadOverridesReadsFilesAndExplainsMistakes) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("qpipe_overrides_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto write = [&](const char* name, const std::string& text) {
    std::ofstream(dir / name) << text;
    return (dir / name).string();
  };
  const std::string ours = write("ours.json", R"({"tensors": {"x": {"scale": 1, "zero_point": 0}}})");
  const std::string study = write("study.json", study_params().dump());
  const std::string map = write("map.json", R"({"map": {"m/x:0": "x", "m/pool:0": "p", "m/w:0": "w", "m/b:0": "b"}})");
  const std::string garbage = write("garbage.json", "{not json");
  EXPECT_EQ(load_overrides(ours).tensors.size(), 1u);
  EXPECT_EQ(load_overrides(study, map).tensors.size(), 4u);
  EXPECT_THAT([&] { load_overrides(study); }, ::testing::ThrowsMessage<PtqError>(HasSubstr("--name-map")));
  EXPECT_THAT([&] { load_overrides(garbage); }, ::testing::ThrowsMessage<PtqError>(HasSubstr("not valid JSON")));
  EXPECT_THAT([&] { load_overrides((dir / "missing.json").string()); },
              ::testing::ThrowsMessage<PtqError>(HasSubstr("cannot open")));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace qpipe
