#pragma once
// Subcommands of the `qpipe` CLI. Each takes the arguments after its name and
// returns the process exit code; PtqError escaping a command is turned into
// its ErrorKind's exit code by main().

#include <string>
#include <vector>

namespace qpipe::cli {

using Args = std::vector<std::string>;

int cmd_eval(const Args& args);
int cmd_inspect(const Args& args);
int cmd_quantize(const Args& args);  // PTQ to an ONNX QDQ model (pipeline/cli/cmd_quantize.cc)
int cmd_analyze(const Args& args);  // SQNR/residual/sensitivity/distributions/overflow (pipeline/cli/cmd_analyze.cc)
int cmd_bench(const Args& args);    // whole-model throughput table (pipeline/cli/cmd_bench.cc)

// Pipeline commands (pipeline/cli/cmd_*.cc).
int cmd_run(const Args& args);      // run an experiment spec
int cmd_plan(const Args& args);     // show the DAG and what would run or be reused, and why
int cmd_compare(const Args& args);  // diff two report.json files; exit 7 on regression
int cmd_stages(const Args& args);   // list stage types with their params and ports

}  // namespace qpipe::cli
