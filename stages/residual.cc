// Stage `residual`: the residual Adds of a QDQ model: input scales, their
// ratio, the common rescale factor, and the SQNR lost at each join
// (quant/analysis/residual.h).

#include <fmt/format.h>

#include "quant/analysis/residual.h"
#include "quant/analysis/sqnr.h"
#include "stages/analysis_support.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  AnalysisInputs in = load_analysis_inputs(ctx);
  analysis::ResidualOptions ro;
  ro.ratio_threshold = ctx.param<double>("ratio_threshold");
  std::optional<analysis::SqnrResult> sq;
  if (ctx.param<bool>("with_sqnr")) {
    analysis::SqnrOptions so;
    sq = analysis::analyze_sqnr(in.fp32, *in.qdq, in.data, so);
  }
  auto r = analysis::analyze_residual(*in.qdq, sq ? &*sq : nullptr, ro);
  nlohmann::json doc = analysis::residual_to_json(r);
  attach_report(doc, fmt::format("Residual Adds: {}", in.qdq_label), analysis::residual_markdown(r), true);
  ctx.write_json("result", doc);
  ctx.write_text("chart", analysis::residual_chart_svg(r));
}

}  // namespace

StageType make_residual_stage() {
  StageType t;
  t.name = "residual";
  t.version = "1";
  t.description = "residual-Add input scale ratios and SQNR lost at each join";
  t.params = {{"ratio_threshold", ParamKind::kFloat, false, 2.0, "flag joins whose larger/smaller input scale exceeds this"},
              {"with_sqnr", ParamKind::kBool, false, true, "measure SQNR at each join (runs both models on the images)"}};
  declare_analysis_ports(t, "residual", true);
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
