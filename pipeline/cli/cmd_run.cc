// `qpipe run SPEC`: run an experiment (see pipeline/pipeline.h for the exit codes).

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>

#include "pipeline/cli/cli_common.h"
#include "pipeline/pipeline.h"
#include "pipeline/text_util.h"

namespace qpipe::cli {
namespace {

const char* kUsage =
    "usage: qpipe run SPEC.yaml [options]\n"
    "  --threads T       thread budget for the whole run (default: settings.threads, else all cores)\n"
    "  --force           re-run every stage even when the cache has its result\n"
    "  --cache-dir D     artifact cache (default: $QPIPE_CACHE_DIR, else <repo>/.qpipe-cache)\n"
    "  --reports-dir D   where reports go (default: <repo>/reports)\n"
    "  --dry-run         print the plan (what would run or be reused, and why) and exit\n"
    "  --quiet           only warnings and errors on stderr\n"
    "  --log-json        log as one JSON object per line (stderr) and print the result as JSON (stdout)\n"
    "exit codes: 0 ok, 3 spec error, 4 input error, 5 unsupported model, 6 gate failed, 8 stage failed, 130 interrupted\n";

std::atomic<bool> g_cancel{false};

extern "C" void on_sigint(int) {
  if (g_cancel.exchange(true)) _exit(130);  // second Ctrl-C: leave now (the cache stays consistent)
  const char msg[] = "\nqpipe: interrupted; finishing running stages (Ctrl-C again to abort)\n";
  ssize_t n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)n;
}

}  // namespace

int cmd_run(const Args& args) {
  ParsedArgs p = parse_args(args, {"threads", "cache-dir", "reports-dir"}, {"force", "dry-run", "quiet", "log-json"}, kUsage);
  if (p.help) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (p.positional.size() != 1) fail(ErrorKind::kUsage, "expected exactly one spec file\n{}", kUsage);
  RunOptions opt;
  opt.threads = p.int_value("threads", 0, 1);
  opt.force = p.flag("force");
  if (auto d = p.value("cache-dir")) opt.cache_dir = *d;
  if (auto d = p.value("reports-dir")) opt.reports_dir = *d;
  bool json_out = p.flag("log-json");

  const StageRegistry& reg = cli_registry();
  Experiment exp = load_experiment(p.positional[0], reg);
  if (p.flag("dry-run")) {
    std::fputs(plan_experiment(exp, reg, opt, false).c_str(), stdout);
    return 0;
  }

  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  struct sigaction old {};
  sigaction(SIGINT, &sa, &old);
  opt.cancel = &g_cancel;

  Logger log(detect_log_options(p.flag("quiet"), json_out));
  RunResult res;
  try {
    res = run_experiment(exp, reg, opt, log);
  } catch (...) {
    sigaction(SIGINT, &old, nullptr);
    throw;
  }
  sigaction(SIGINT, &old, nullptr);
  log.finish();

  std::vector<std::string> problems;
  for (const auto& r : res.records) {
    if (r.status == StageStatus::kFailed) {
      problems.push_back(fmt::format("stage FAILED: {} ({}) [{}]: {}", r.id, r.type, error_kind_name(r.error_kind), r.message));
    }
  }
  for (const auto& g : res.gates) {
    if (!g.passed) problems.push_back("gate FAILED: " + describe_gate_result(g));
  }
  if (json_out) {
    nlohmann::json j = {{"event", "result"},
                        {"status", res.status},
                        {"exit_code", res.exit_code},
                        {"report_dir", res.report_dir.string()},
                        {"problems", problems}};
    std::fputs((canonical_json(j) + "\n").c_str(), stdout);
    return res.exit_code;
  }
  int ran = 0, hits = 0, passed = 0;
  for (const auto& r : res.records) {
    if (r.status == StageStatus::kOk) (r.cache_hit ? hits : ran)++;
  }
  for (const auto& g : res.gates) passed += g.passed;
  for (const auto& line : problems) std::fprintf(stdout, "%s\n", line.c_str());
  std::fprintf(stdout, "qpipe run: %s: %s — %d ran, %d reused, %zu stages; gate checks %d/%zu passed\n",
               exp.spec.experiment.c_str(), res.status.c_str(), ran, hits, res.records.size(), passed, res.gates.size());
  if (!res.report_dir.empty()) std::fprintf(stdout, "report: %s\n", (res.report_dir / "report.md").string().c_str());
  return res.exit_code;
}

}  // namespace qpipe::cli
