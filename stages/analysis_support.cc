#include "stages/analysis_support.h"

#include "stages/stages.h"

namespace qpipe::stages {

AnalysisInputs load_analysis_inputs(StageContext& ctx) {
  AnalysisInputs in;
  in.fp32 = load_onnx(ctx.input("fp32").path.string());
  in.qdq = std::make_unique<analysis::QdqGraph>(load_onnx(ctx.input("qdq").path.string()));
  in.dataset = open_dataset_artifact(ctx.input_json("data"));
  if (ctx.has_param("max_samples")) in.dataset = in.dataset.limited(ctx.param<int64_t>("max_samples"));
  in.data = analysis::AnalysisData::from_cifar10(in.dataset);
  in.qdq_label = ctx.param_or<std::string>("label", ctx.stage_id());
  return in;
}

void declare_analysis_ports(StageType& t, const std::string& result_type, bool figure) {
  t.params.push_back({"max_samples", ParamKind::kInt, false, nullptr, "use only the first N images of the dataset"});
  t.params.push_back({"label", ParamKind::kString, false, nullptr, "name of the QDQ model in the report"});
  t.inputs = {{"fp32", "model", false, false, "the FP32 model"},
              {"qdq", "model", false, false, "its QDQ model"},
              {"data", "dataset", false, false, "the images to compare on"}};
  t.outputs = {{"result", result_type, false, false, "the analysis (JSON)"}};
  if (figure) t.outputs.push_back({"chart", "figure", false, false, "SVG chart"});
}

void attach_report(nlohmann::json& doc, const std::string& title, const std::string& markdown, bool figure) {
  nlohmann::json r = {{"title", title}, {"markdown", markdown}};
  if (figure) r["figures"] = nlohmann::json::array({"chart"});
  doc["report"] = r;
}

}  // namespace qpipe::stages
