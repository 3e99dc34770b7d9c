// Stage `sensitivity`: per-layer sensitivity by QDQ surgery, both variants
// (only this layer quantized / everything but this layer quantized), with
// accuracy, per-class and output-SQNR deltas, ranked
// (quant/analysis/sensitivity.h). Variants run in parallel in the run's arena.

#include <fmt/format.h>

#include "quant/analysis/sensitivity.h"
#include "stages/analysis_support.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  AnalysisInputs in = load_analysis_inputs(ctx);
  analysis::SensitivityOptions o;
  o.batch = ctx.param<int64_t>("batch");
  if (ctx.has_param("layers")) o.layers = ctx.param<std::vector<std::string>>("layers");
  auto r = analysis::analyze_sensitivity(in.fp32, *in.qdq, in.data, o);
  nlohmann::json doc = analysis::sensitivity_to_json(r);
  const std::string focus = ctx.param<std::string>("focus_class");
  attach_report(doc, fmt::format("Layer sensitivity: {}", in.qdq_label), analysis::sensitivity_markdown(r, focus), true);
  ctx.write_json("result", doc);
  ctx.write_text("chart", analysis::sensitivity_chart_svg(r, "keep_float"));
}

}  // namespace

StageType make_sensitivity_stage() {
  StageType t;
  t.name = "sensitivity";
  t.version = "1";
  t.description = "per-layer quantization sensitivity (one layer quantized / one layer kept FP32), ranked";
  t.params = {{"batch", ParamKind::kInt, false, 256, "images per batch"},
              {"layers", ParamKind::kList, false, nullptr, "only these layers (node names); default every layer"},
              {"focus_class", ParamKind::kString, false, "dog", "class whose per-class delta the summary follows"}};
  declare_analysis_ports(t, "sensitivity", true);
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
