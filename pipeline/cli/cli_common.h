#pragma once
// Helpers shared by the pipeline subcommands (run, plan, compare, stages):
// the stage registry the CLI uses, and a small option parser.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/error.h"
#include "pipeline/cli/commands.h"
#include "pipeline/stage_registry.h"

namespace qpipe::cli {

// register_builtin_stages(), plus register_test_stages() when
// QPIPE_ENABLE_TEST_STAGES=1 (the CLI tests use it).
const StageRegistry& cli_registry();

// Parses "--name value", "--name=value" and flags. Positional arguments are
// collected in order. Unknown options, missing values and bad numbers throw
// PtqError(kUsage) with the command's usage text.
struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::string> values;
  std::set<std::string> flags;
  bool help = false;

  std::optional<std::string> value(const std::string& name) const;
  bool flag(const std::string& name) const { return flags.count(name) > 0; }
  int int_value(const std::string& name, int fallback, int min) const;
  double double_value(const std::string& name, double fallback, double min) const;
};

ParsedArgs parse_args(const Args& args, const std::set<std::string>& value_options, const std::set<std::string>& flag_options,
                      const std::string& usage);

}  // namespace qpipe::cli
