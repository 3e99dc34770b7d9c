// `qpipe plan SPEC [--dot]`: the validated DAG and, per stage, whether a run
// would execute it or reuse its cached result, and why.

#include <cstdio>

#include "pipeline/cli/cli_common.h"
#include "pipeline/pipeline.h"

namespace qpipe::cli {
namespace {
const char* kUsage =
    "usage: qpipe plan SPEC.yaml [--dot] [--force] [--cache-dir D]\n"
    "  --dot          print GraphViz DOT (reused stages green, stages to run orange)\n"
    "  --force        plan as `qpipe run --force` would\n"
    "  --cache-dir D  artifact cache (default: $QPIPE_CACHE_DIR, else <repo>/.qpipe-cache)\n";
}  // namespace

int cmd_plan(const Args& args) {
  ParsedArgs p = parse_args(args, {"cache-dir"}, {"dot", "force"}, kUsage);
  if (p.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (p.positional.size() != 1) fail(ErrorKind::kUsage, "expected exactly one spec file\n{}", kUsage);
  RunOptions opt;
  opt.force = p.flag("force");
  if (auto d = p.value("cache-dir")) opt.cache_dir = *d;
  const StageRegistry& reg = cli_registry();
  Experiment exp = load_experiment(p.positional[0], reg);
  std::fputs(plan_experiment(exp, reg, opt, p.flag("dot")).c_str(), stdout);
  return 0;
}

}  // namespace qpipe::cli
