// Stage `sqnr`: per-tensor SQNR of a QDQ model against its FP32 model,
// accumulated and local (quant/analysis/sqnr.h), plus the model output.

#include <fmt/format.h>

#include "quant/analysis/sqnr.h"
#include "stages/analysis_support.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  AnalysisInputs in = load_analysis_inputs(ctx);
  analysis::SqnrOptions o;
  o.batch = ctx.param<int64_t>("batch");
  o.local = ctx.param<bool>("local");
  ctx.progress(0, static_cast<uint64_t>(in.data.size), "images");
  auto r = analysis::analyze_sqnr(in.fp32, *in.qdq, in.data, o);
  ctx.progress(static_cast<uint64_t>(in.data.size), static_cast<uint64_t>(in.data.size), "images");
  nlohmann::json doc = analysis::sqnr_to_json(r);
  doc["label"] = in.qdq_label;  // names the variant for sqnr_compare
  nlohmann::json metrics = nlohmann::json::object();
  for (const auto& t : doc.value("tensors", nlohmann::json::array()))
    if (t.contains("name") && t.contains("sqnr_db") && t["sqnr_db"].is_number())
      metrics["sqnr_db/" + t["name"].get<std::string>()] = t["sqnr_db"];
  doc["metrics"] = metrics;
  attach_report(doc, fmt::format("SQNR per tensor: {}", in.qdq_label), analysis::sqnr_markdown(r), true);
  ctx.write_json("result", doc);
  ctx.write_text("chart", analysis::sqnr_chart_svg(r));
}

}  // namespace

StageType make_sqnr_stage() {
  StageType t;
  t.name = "sqnr";
  t.version = "2";  // 2: the result carries "label"
  t.description = "per-tensor SQNR (accumulated and local), cosine, max error, clipping";
  t.params = {{"batch", ParamKind::kInt, false, 32, "images per batch"},
              {"local", ParamKind::kBool, false, true, "also compute the local (op alone) variant"}};
  declare_analysis_ports(t, "sqnr", true);
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
