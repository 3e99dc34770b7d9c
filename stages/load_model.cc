// Stage `load_model`: reads an ONNX model, checks that qpipe can run it (every
// op, attribute and dtype supported; one error listing all problems), and
// stores a copy in the cache as the `model` artifact.

#include <fmt/format.h>

#include <filesystem>

#include "engine/graph.h"
#include "engine/session.h"
#include "pipeline/stage_context.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  const std::string path = ctx.param<std::string>("path");
  Model model = load_onnx(path);
  Session check(model);  // throws kUnsupported listing everything qpipe cannot run
  std::size_t q = 0, dq = 0;
  for (const auto& n : model.graph.nodes) {
    q += n.op_type == "QuantizeLinear";
    dq += n.op_type == "DequantizeLinear";
  }
  ctx.info(fmt::format("{}: {} nodes ({} QuantizeLinear, {} DequantizeLinear), opset {}", path, model.graph.nodes.size(), q,
                       dq, model.opset));
  std::filesystem::copy_file(path, ctx.output_path("model"), std::filesystem::copy_options::overwrite_existing);
}

}  // namespace

StageType make_load_model_stage() {
  StageType t;
  t.name = "load_model";
  t.version = "1";
  t.description = "an ONNX model file, checked to be runnable by qpipe";
  t.params = {{"path", ParamKind::kPath, true, nullptr, "ONNX model file"}};
  t.outputs = {{"model", "model", false, false, "the model"}};
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
