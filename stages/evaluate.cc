// Stage `evaluate`: top-1 accuracy, per-class accuracy and the confusion
// matrix of a model on a dataset, in the eval schema (docs/report-schema.md).
// Labels (framework, dtype, label) only describe the row in the report's
// milestone table.

#include <fmt/format.h>

#include <filesystem>

#include "engine/evaluate.h"
#include "engine/graph.h"
#include "engine/session.h"
#include "pipeline/stage_context.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  const Artifact& model_art = ctx.input("model");
  const nlohmann::json data_doc = ctx.input_json("data");
  Cifar10Dataset data = open_dataset_artifact(data_doc);
  SessionOptions so;
  so.exec_mode = ctx.param<std::string>("exec_mode");
  so.conv_order = ctx.param<std::string>("conv_order");
  so.ort_intra_op_threads = static_cast<int>(ctx.param<int64_t>("ort_threads"));
  Session session(load_onnx(model_art.path.string()), so);
  EvalOptions eo;
  eo.batch = ctx.param_or<int64_t>("batch", ctx.batch_size());
  eo.progress = [&](int64_t done, int64_t total) {
    ctx.check_cancelled();
    ctx.progress(static_cast<uint64_t>(done), static_cast<uint64_t>(total), "images");
  };
  EvalResult r = evaluate(session, data, eo);
  nlohmann::json doc = eval_to_json(r, ctx.has_param("model_label") ? ctx.param<std::string>("model_label")
                                                                     : model_art.path.filename().string(),
                                    data_doc.at("dir").get<std::string>(), data_doc.at("split").get<std::string>(),
                                    so.exec_mode);
  doc["conv_order"] = so.conv_order;
  doc["label"] = ctx.param_or<std::string>("label", ctx.stage_id());
  doc["framework"] = ctx.param_or<std::string>("framework", "qpipe");
  doc["dtype"] = ctx.param_or<std::string>("dtype", "float32");
  doc["model_size_bytes"] = static_cast<int64_t>(std::filesystem::file_size(model_art.path));
  ctx.info(fmt::format("{}: {}/{} = {:.2f}%", doc["label"].get<std::string>(), r.correct, r.total, 100.0 * r.accuracy()));
  ctx.write_json("eval", doc);
}

}  // namespace

StageType make_evaluate_stage() {
  StageType t;
  t.name = "evaluate";
  t.version = "2";  // 2: conv_order, ort_threads
  t.description = "top-1 / per-class accuracy and confusion matrix of a model on a dataset";
  t.params = {
      {"label", ParamKind::kString, false, nullptr, "row label in reports (default: the stage id)"},
      {"framework", ParamKind::kString, false, "qpipe", "framework column of the milestone table"},
      {"dtype", ParamKind::kString, false, "float32", "data type column of the milestone table"},
      {"exec_mode", ParamKind::kString, false, "reference",
       "how QDQ models run: reference (ONNX spec semantics), ort-avx2 (ONNX Runtime 1.30 fused AVX2 arithmetic) or "
       "exact (int8/uint8 codes between ops, exact int32 accumulation, float32 requantization)",
       {"reference", "ort-avx2", "exact"}},
      {"conv_order", ParamKind::kString, false, "qpipe",
       "float32 Conv/MatMul summation order: qpipe (fast kernels) or ort (ONNX Runtime 1.30's MLAS order, "
       "bit-identical to ORT with graph optimizations off; slower)",
       {"qpipe", "ort"}},
      {"ort_threads", ParamKind::kInt, false, 2, "ORT intra-op threads modelled by conv_order: ort"},
      {"batch", ParamKind::kInt, false, nullptr, "images per batch (default: the run's batch size)"},
      {"model_label", ParamKind::kString, false, nullptr, "model name written into the result (default: file name)"},
  };
  t.inputs = {{"model", "model", false, false, "the model to evaluate"},
              {"data", "dataset", false, false, "the images"}};
  t.outputs = {{"eval", "eval", false, false, "the evaluation result"}};
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
