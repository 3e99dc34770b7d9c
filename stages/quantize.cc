// Stage `quantize`: static post-training quantization of an FP32 model into a
// QDQ model, as ONNX Runtime's quantize_static lays it out (quant/ptq.h):
// calibration images chosen from the training split (numpy-exact sampler by
// default: the study's recipe), calibration, the QDQ rewrite, optional
// overrides and bias correction. Outputs the QDQ model and every chosen
// parameter (qparams).

#include <fmt/format.h>

#include "engine/graph.h"
#include "pipeline/stage_context.h"
#include "quant/calibrate.h"
#include "quant/overrides.h"
#include "quant/ptq.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  const Artifact& model_art = ctx.input("model");
  const nlohmann::json data_doc = ctx.input_json("calibration_data");
  const std::string where = fmt::format("stage '{}' › config", ctx.stage_id());
  PtqOptions options;
  options.config = QuantConfig::from_json(ctx.param_or<nlohmann::json>("config", nlohmann::json::object()), where);
  options.config.validate();
  options.batch = ctx.param_or<int64_t>("batch", 50);
  TensorOverrides overrides;
  if (ctx.has_param("overrides")) {
    overrides = load_overrides(ctx.param<std::string>("overrides"), ctx.param_or<std::string>("name_map", ""));
    options.overrides = &overrides;
  }
  CalibrationSetSpec cs;
  cs.sampler = ctx.param<std::string>("sampler");
  cs.seed = static_cast<uint32_t>(ctx.param<int64_t>("seed"));
  cs.per_class = static_cast<int>(ctx.param<int64_t>("per_class"));
  cs.draw = static_cast<int>(ctx.param<int64_t>("draw"));
  if (data_doc.at("split").get<std::string>() != "train")
    ctx.warn("calibration images come from the test split; the study calibrated on the training split");
  Model fp32 = load_onnx(model_art.path.string());
  ctx.progress(0, static_cast<uint64_t>(cs.per_class) * 10, "images");
  CalibrationImages calib = load_calibration_images(data_doc.at("dir").get<std::string>(), cs);
  ctx.check_cancelled();
  PtqResult result = run_ptq(fp32, calib.images, options);
  ctx.progress(static_cast<uint64_t>(calib.indices.size()), static_cast<uint64_t>(calib.indices.size()), "images");
  std::size_t q = 0, dq = 0;
  for (const auto& n : result.qdq.model.graph.nodes) {
    q += n.op_type == "QuantizeLinear";
    dq += n.op_type == "DequantizeLinear";
  }
  ctx.info(fmt::format("{} calibration images ({} sampler, seed {}, draw {}): {} QuantizeLinear, {} DequantizeLinear",
                       calib.indices.size(), cs.sampler, cs.seed, cs.draw, q, dq));
  save_onnx(result.qdq.model, ctx.output_path("model").string());
  nlohmann::json doc = result.to_json(options.config);
  doc["schema"] = "qparams";
  doc["schema_version"] = 1;
  doc["calibration_set"] = {{"sampler", cs.sampler}, {"seed", cs.seed}, {"per_class", cs.per_class},
                            {"draw", cs.draw}, {"indices", calib.indices}};
  doc["structure"] = {{"QuantizeLinear", q}, {"DequantizeLinear", dq}, {"nodes", result.qdq.model.graph.nodes.size()}};
  ctx.write_json("qparams", doc);
}

}  // namespace

StageType make_quantize_stage() {
  StageType t;
  t.name = "quantize";
  t.version = "2";  // 2: calibration in ONNX Runtime's summation order by default
  t.description = "static PTQ to a QDQ model (ONNX Runtime's quantize_static layout)";
  t.params = {
      {"config", ParamKind::kMap, false, nlohmann::json::object(),
       "quantization config (quant/quant_config.h): activation_type, weight_type, per_channel, calibration, ..."},
      {"sampler", ParamKind::kString, false, "numpy", "calibration-set sampler", {"numpy", "qpipe", "first"}},
      {"seed", ParamKind::kInt, false, 42, "sampler seed"},
      {"per_class", ParamKind::kInt, false, 100, "calibration images per class"},
      {"draw", ParamKind::kInt, false, 1, "which draw of the seeded generator (the study: int8 1, uint8 2)"},
      {"batch", ParamKind::kInt, false, 50, "images per calibration batch (results do not depend on it)"},
      {"overrides", ParamKind::kPath, false, nullptr, "tensor parameter overrides (qpipe or the study's format)"},
      {"name_map", ParamKind::kPath, false, nullptr, "tensor name map for the study's parameter format"},
  };
  t.inputs = {{"model", "model", false, false, "the FP32 model"},
              {"calibration_data", "dataset", false, false, "dataset whose folder supplies the training split"}};
  t.outputs = {{"model", "model", false, false, "the QDQ model"},
               {"qparams", "qparams", false, false, "config, calibrated ranges and every scale / zero point"}};
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
