// `qpipe stages [TYPE...]`: the registered stage types with their params,
// inputs and outputs (the exact keys a spec may use), and the report section
// kinds.

#include <cstdio>

#include "pipeline/cli/cli_common.h"
#include "pipeline/spec.h"
#include "pipeline/text_util.h"

namespace qpipe::cli {

int cmd_stages(const Args& args) {
  const char* usage = "usage: qpipe stages [TYPE...]   (set QPIPE_ENABLE_TEST_STAGES=1 to include test stages)\n";
  ParsedArgs p = parse_args(args, {}, {}, usage);
  if (p.help) {
    std::fputs(usage, stdout);
    return 0;
  }
  const StageRegistry& reg = cli_registry();
  for (const auto& name : p.positional) {
    if (!reg.find(name)) {
      fail(ErrorKind::kUsage, "unknown stage type '{}'{}; known: {}", name, did_you_mean(name, reg.stage_type_names()),
           quoted_list(reg.stage_type_names()));
    }
  }
  std::string out;
  for (const auto& t : reg.stage_types()) {
    if (!p.positional.empty() && std::find(p.positional.begin(), p.positional.end(), t.name) == p.positional.end()) continue;
    out += fmt::format("{} (version {})\n  {}\n", t.name, t.version, t.description);
    if (!t.params.empty()) out += "  params:\n";
    for (const auto& d : t.params) {
      std::string extra = d.required ? "required" : d.default_value.is_null() ? "optional" : "default " + canonical_json(d.default_value);
      if (!d.choices.empty()) extra += ", one of " + quoted_list(d.choices);
      out += fmt::format("    {:<18} {:<7} {}: {}\n", d.name, param_kind_name(d.kind), extra, d.doc);
    }
    if (!t.inputs.empty()) out += "  inputs:\n";
    for (const auto& d : t.inputs) {
      out += fmt::format("    {:<18} {:<7} {}{}: {}\n", d.name, d.type, d.optional ? "optional" : "required",
                         d.multiple ? ", multiple" : "", d.doc);
    }
    if (!t.outputs.empty()) out += "  outputs:\n";
    for (const auto& d : t.outputs) out += fmt::format("    {:<18} {:<7} {}\n", d.name, d.type, d.doc);
    out += "\n";
  }
  if (p.positional.empty()) {
    out += "report section kinds:\n";
    for (const auto& f : framework_section_kinds()) out += fmt::format("  {:<12} {}\n", f.name, f.description);
    for (const auto& k : reg.section_kinds()) out += fmt::format("  {:<12} {}\n", k.name, k.description);
  }
  std::fputs(out.c_str(), stdout);
  return 0;
}

}  // namespace qpipe::cli
