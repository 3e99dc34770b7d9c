// The table of production stage types (STYLE.md 3: one explicit list, no
// static self-registration). Add one line per stage type; each type lives in
// its own file stages/<name>.cc and is declared in stages/stages.h.

#include "pipeline/stage_registry.h"
#include "stages/stages.h"

namespace qpipe {

void register_builtin_stages(StageRegistry& registry) {
  registry.add(stages::make_dataset_stage());
  registry.add(stages::make_load_model_stage());
  registry.add(stages::make_evaluate_stage());
  registry.add(stages::make_quantize_stage());
  registry.add(stages::make_sqnr_stage());
  registry.add(stages::make_residual_stage());
  registry.add(stages::make_sensitivity_stage());
  registry.add(stages::make_distributions_stage());
  registry.add(stages::make_overflow_stage());
  registry.add(stages::make_sqnr_compare_stage());
}

}  // namespace qpipe
