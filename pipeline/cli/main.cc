// qpipe: post-training quantization experiment pipeline. Dispatches to the
// subcommands declared in pipeline/cli/commands.h.

#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "engine/error.h"
#include "pipeline/cli/commands.h"
#include "qpipe/version.h"

namespace {

struct Command {
  const char* name;
  const char* summary;
  std::function<int(const qpipe::cli::Args&)> fn;
};

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"eval", "evaluate an ONNX model on CIFAR-10 (accuracy, per class, confusion)", qpipe::cli::cmd_eval},
      {"inspect", "summarise an ONNX model (ops, tensors, shapes, parameters)", qpipe::cli::cmd_inspect},
      {"quantize", "post-training quantization to an ONNX QDQ model (ORT placement)", qpipe::cli::cmd_quantize},
      {"analyze", "explain a QDQ model's error: SQNR, residual Adds, sensitivity, distributions, overflow", qpipe::cli::cmd_analyze},
      {"bench", "time whole-model inference: images/s, GFLOP/s, ms/batch, RSS per model, mode, batch, threads", qpipe::cli::cmd_bench},
      {"run", "run an experiment spec: DAG on oneTBB, cached stages, report, gates", qpipe::cli::cmd_run},
      {"plan", "show an experiment's DAG and what would run or be reused, and why (--dot)", qpipe::cli::cmd_plan},
      {"compare", "diff two report.json files; non-zero exit on a regression", qpipe::cli::cmd_compare},
      {"stages", "list stage types: params, inputs, outputs; and report section kinds", qpipe::cli::cmd_stages},
  };
  return table;
}

void usage(std::FILE* out) {
  fmt::print(out, "usage: qpipe <command> [options]   (qpipe <command> --help for details)\n\ncommands:\n");
  for (const auto& c : commands()) fmt::print(out, "  {:<10} {}\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    usage(stderr);
    return qpipe::exit_code(qpipe::ErrorKind::kUsage);
  }
  std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    usage(stdout);
    return 0;
  }
  if (name == "--version") {
    fmt::print("qpipe {} (commit {})\n", qpipe::kVersion, qpipe::kGitCommit);
    return 0;
  }
  qpipe::cli::Args args(argv + 2, argv + argc);
  for (const auto& c : commands()) {
    if (name != c.name) continue;
    try {
      return c.fn(args);
    } catch (const qpipe::PtqError& e) {
      fmt::print(stderr, "qpipe {}: {}: {}\n", name, qpipe::error_kind_name(e.kind()), e.what());
      return qpipe::exit_code(e.kind());
    } catch (const std::exception& e) {
      fmt::print(stderr, "qpipe {}: internal error: {}\n", name, e.what());
      return qpipe::exit_code(qpipe::ErrorKind::kRuntime);
    }
  }
  fmt::print(stderr, "qpipe: unknown command '{}'\n", name);
  usage(stderr);
  return qpipe::exit_code(qpipe::ErrorKind::kUsage);
}
