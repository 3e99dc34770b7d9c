#pragma once
// Helpers for the pipeline framework tests: a self-deleting temp folder, a
// registry with the test stage types (stages/test_stages.cc) plus a few
// test-only types defined here, and a quiet logger that keeps its lines.

#include <gtest/gtest.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "pipeline/atomic_file.h"
#include "pipeline/pipeline.h"
#include "pipeline/stage_context.h"
#include "pipeline/stage_registry.h"
#include "pipeline/text_util.h"

namespace qpipe::pipetest {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "qpipe-pipe-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (!p) throw std::runtime_error("mkdtemp failed");
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  fs::path operator/(const std::string& rel) const { return path_ / rel; }
  fs::path write(const std::string& rel, const std::string& text) const {
    fs::path p = path_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

 private:
  fs::path path_;
};

// Concurrency probe: how many probe stages run at the same time.
inline std::atomic<int> g_probe_running{0};
inline std::atomic<int> g_probe_max{0};

inline StageType make_probe_stage() {
  StageType t;
  t.name = "test_probe";
  t.description = "records concurrency and the thread budget it sees";
  t.params = {{"sleep_ms", ParamKind::kInt, false, 250, "how long to stay running"},
              {"id", ParamKind::kString, false, "", "distinguishes otherwise equal stages"}};
  t.outputs = {{"out", "json", false, false, "{max_concurrency, arena_threads}"}};
  t.run = [](StageContext& ctx) {
    int now = ++g_probe_running;
    int prev = g_probe_max.load();
    while (now > prev && !g_probe_max.compare_exchange_weak(prev, now)) {
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(ctx.param<int64_t>("sleep_ms")));
    --g_probe_running;
    ctx.write_json("out", {{"arena_threads", tbb::this_task_arena::max_concurrency()}, {"ctx_threads", ctx.threads()}});
  };
  return t;
}

// Writes an `eval` output without the required keys (artifact validation).
inline StageType make_bad_eval_stage() {
  StageType t;
  t.name = "test_bad_eval";
  t.description = "writes an eval document lacking 'per_class'";
  t.outputs = {{"eval", "eval", false, false, "a malformed eval"}};
  t.run = [](StageContext& ctx) { ctx.write_json("eval", {{"schema_version", "1"}, {"overall", {{"accuracy", 0.5}}}}); };
  return t;
}

// Reads a param it does not declare (a bug the context must catch).
inline StageType make_sneaky_stage() {
  StageType t;
  t.name = "test_sneaky";
  t.description = "reads an undeclared param";
  t.params = {{"declared", ParamKind::kInt, false, 1, "the only param"}};
  t.outputs = {{"out", "json", false, false, "never written"}};
  t.run = [](StageContext& ctx) { ctx.write_json("out", {{"x", ctx.param<int64_t>("undeclared")}}); };
  return t;
}

inline const StageRegistry& registry() {
  static const StageRegistry reg = [] {
    StageRegistry r;
    register_test_stages(r);
    r.add(make_probe_stage());
    r.add(make_bad_eval_stage());
    r.add(make_sneaky_stage());
    return r;
  }();
  return reg;
}

// Loads a spec written into `dir`; returns the PtqError message ("" if none).
inline std::string load_error(const TempDir& dir, const std::string& yaml, ErrorKind* kind = nullptr,
                              const std::string& name = "spec.yaml") {
  fs::path p = dir.write(name, yaml);
  try {
    load_experiment(p, registry());
  } catch (const PtqError& e) {
    if (kind) *kind = e.kind();
    return e.what();
  }
  return "";
}

struct Runner {
  const TempDir& dir;
  fs::path cache_dir;
  fs::path reports_dir;
  LogOptions log_options() const {
    LogOptions o;
    o.mode = LogMode::kPlain;
    o.quiet = true;
    o.capture = true;
    static std::FILE* devnull = std::fopen("/dev/null", "w");
    if (devnull) o.out = devnull;  // keep test output clean; lines are captured
    return o;
  }
  explicit Runner(const TempDir& d, const std::string& cache = "cache", const std::string& reports = "reports")
      : dir(d), cache_dir(d / cache), reports_dir(d / reports) {}

  RunResult run(const std::string& spec_name, int threads = 1, bool force = false, const std::atomic<bool>* cancel = nullptr,
                std::vector<std::string>* log_lines = nullptr) const {
    Experiment exp = load_experiment(dir / spec_name, registry());
    RunOptions opt;
    opt.threads = threads;
    opt.force = force;
    opt.cache_dir = cache_dir;
    opt.reports_dir = reports_dir;
    opt.cancel = cancel;
    Logger log(log_options());
    RunResult r = run_experiment(exp, registry(), opt, log);
    if (log_lines) *log_lines = log.captured();
    return r;
  }
};

inline const StageRecord& record(const RunResult& r, const std::string& id) {
  for (const auto& rec : r.records) {
    if (rec.id == id) return rec;
  }
  throw std::runtime_error("no stage record " + id);
}

inline std::string slurp(const fs::path& p) { return read_file(p); }

}  // namespace qpipe::pipetest
