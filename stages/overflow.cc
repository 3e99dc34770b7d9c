// Stage `overflow`: which Conv/MatMul weight pairs can saturate the int16
// pair sums of u8 x s8 AVX2 kernels (ONNX Runtime on x86 without VNNI), and
// how many outputs actually change on the images (quant/analysis/overflow.h).

#include <fmt/format.h>

#include "quant/analysis/overflow.h"
#include "stages/analysis_support.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  AnalysisInputs in = load_analysis_inputs(ctx);
  analysis::OverflowOptions o;
  o.batch = ctx.param<int64_t>("batch");
  auto r = analysis::analyze_overflow(*in.qdq, in.data, o);
  nlohmann::json doc = analysis::overflow_to_json(r);
  attach_report(doc, fmt::format("Kernel overflow (u8 x s8 int16 pairs): {}", in.qdq_label), analysis::overflow_markdown(r),
                false);
  ctx.write_json("result", doc);
}

}  // namespace

StageType make_overflow_stage() {
  StageType t;
  t.name = "overflow";
  t.version = "1";
  t.description = "int16 pair-saturation risk of u8 x s8 kernels (AVX2 vpmaddubsw) per Conv/MatMul, measured on images";
  t.params = {{"batch", ParamKind::kInt, false, 256, "images per batch"}};
  declare_analysis_ports(t, "json", false);
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
