// Stage `distributions`: FP32 value histograms of every quantized tensor
// against its quantization grid: range used, clipped fraction, codes used
// (quant/analysis/distributions.h). The chart shows the most clipped
// activation.

#include <fmt/format.h>

#include <algorithm>

#include "quant/analysis/distributions.h"
#include "stages/analysis_support.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  AnalysisInputs in = load_analysis_inputs(ctx);
  analysis::DistributionOptions o;
  o.batch = ctx.param<int64_t>("batch");
  auto r = analysis::analyze_distributions(in.fp32, *in.qdq, in.data, o);
  nlohmann::json doc = analysis::distributions_to_json(r);
  const analysis::TensorDistribution* pick = nullptr;
  const std::string want = ctx.param_or<std::string>("chart_tensor", "");
  for (const auto& t : r.tensors) {
    if (!want.empty() ? t.name == want
                      : (t.kind == "activation" && (!pick || t.clipped_fraction() > pick->clipped_fraction())))
      pick = &t;
  }
  if (!pick && !r.tensors.empty()) pick = &r.tensors.front();
  attach_report(doc, fmt::format("Distributions vs quantization grid: {}", in.qdq_label),
                analysis::distributions_markdown(r), pick != nullptr);
  ctx.write_json("result", doc);
  ctx.write_text("chart", pick ? analysis::histogram_chart_svg(*pick) : std::string("<svg xmlns=\"http://www.w3.org/2000/svg\"/>"));
}

}  // namespace

StageType make_distributions_stage() {
  StageType t;
  t.name = "distributions";
  t.version = "1";
  t.description = "per-tensor FP32 histograms against the quantization grid";
  t.params = {{"batch", ParamKind::kInt, false, 64, "images per batch"},
              {"chart_tensor", ParamKind::kString, false, nullptr, "tensor to chart (default: the most clipped activation)"}};
  declare_analysis_ports(t, "json", true);
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
