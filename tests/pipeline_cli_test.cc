// The `qpipe` CLI as a user sees it (fork/exec of the built binary with the
// test stage types enabled): exit codes of run, plan, compare and stages,
// plain messages for failing checks, and crash safety — a run killed with
// SIGKILL or interrupted with SIGINT mid-stage, then re-run, gives the same
// report.json as an uninterrupted run and reuses what had finished.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sstream>
#include <thread>

#include "pipeline/cache.h"
#include "tests/pipeline_test_util.h"
#include "tests/test_support.h"

extern char** environ;

namespace qpipe {
namespace {

namespace fs = std::filesystem;

using pipetest::TempDir;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;

struct Proc {
  pid_t pid = -1;
  fs::path out, err;
};

Proc spawn(const TempDir& d, const std::vector<std::string>& args, const std::string& tag) {
  Proc p;
  p.out = d / (tag + ".stdout");
  p.err = d / (tag + ".stderr");
  std::string bin = testing::qpipe_bin();
  std::vector<std::string> env_s;
  for (char** e = environ; *e; ++e) {
    std::string v = *e;
    if (v.rfind("QPIPE_ENABLE_TEST_STAGES=", 0) == 0 || v.rfind("CI=", 0) == 0) continue;
    env_s.push_back(v);
  }
  env_s.push_back("QPIPE_ENABLE_TEST_STAGES=1");
  std::vector<char*> argv, envp;
  argv.push_back(bin.data());
  std::vector<std::string> args_copy = args;
  for (auto& a : args_copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  p.pid = fork();
  if (p.pid == 0) {
    if (chdir(d.path().c_str()) != 0) _exit(120);
    int o = ::open(p.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int e = ::open(p.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    execve(bin.c_str(), argv.data(), envp.data());
    _exit(127);
  }
  return p;
}

struct Done {
  int code = -1;
  std::string out, err;
};

Done wait_for(const Proc& p) {
  int status = 0;
  waitpid(p.pid, &status, 0);
  Done d;
  d.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  d.out = pipetest::slurp(p.out);
  d.err = pipetest::slurp(p.err);
  return d;
}

Done qpipe(const TempDir& d, const std::vector<std::string>& args) {
  static int n = 0;
  return wait_for(spawn(d, args, "call" + std::to_string(n++)));
}

class PipelineCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(testing::qpipe_bin())) GTEST_SKIP() << "qpipe binary not built: " << testing::qpipe_bin();
  }
};

TEST_F(PipelineCli, ExitCodesOfRun) {
  TempDir d;
  d.write("ok.yaml",
          "experiment: ok\nstages:\n  e: {type: test_eval, params: {accuracy: 0.9}}\n"
          "gates:\n  - {name: g, metric: e.overall.accuracy, op: '>=', value: 0.85}\n");
  Done ok = qpipe(d, {"run", "ok.yaml", "--threads", "2", "--cache-dir", "c", "--reports-dir", "r"});
  EXPECT_EQ(ok.code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("qpipe run: ok: passed — 1 ran, 0 reused, 1 stages; gate checks 1/1 passed"));
  EXPECT_THAT(ok.out, HasSubstr("report: "));
  EXPECT_TRUE(fs::exists(d / "r/ok/latest/report.json"));

  d.write("gate.yaml",
          "experiment: gate\nstages:\n  e: {type: test_eval, params: {accuracy: 0.8}}\n"
          "gates:\n  - {name: floor, metric: e.overall.accuracy, op: '>=', value: 0.85}\n");
  Done gate = qpipe(d, {"run", "gate.yaml", "--cache-dir", "c", "--reports-dir", "r"});
  EXPECT_EQ(gate.code, exit_code(ErrorKind::kGateFailed));
  EXPECT_THAT(gate.out, HasSubstr("gate FAILED: gate 'floor': e.overall.accuracy = 0.8, required >= 0.85 (FAIL)"));

  d.write("fail.yaml", "experiment: fail\nstages:\n  bad: {type: test_emit, params: {fail: true}}\n");
  Done fail = qpipe(d, {"run", "fail.yaml", "--cache-dir", "c", "--reports-dir", "r"});
  EXPECT_EQ(fail.code, exit_code(ErrorKind::kRuntime));
  EXPECT_THAT(fail.out, HasSubstr("stage FAILED: bad (test_emit) [runtime error]: test_emit: failing on purpose (value 0)"));

  d.write("spec.yaml", "experiment: bad\nstages:\n  a: {type: test_emt}\n");
  Done spec = qpipe(d, {"run", "spec.yaml"});
  EXPECT_EQ(spec.code, exit_code(ErrorKind::kSpec));
  EXPECT_THAT(spec.err, HasSubstr("spec.yaml:3:13: stage 'a': unknown stage type 'test_emt' (did you mean 'test_emit'?)"));

  d.write("input.yaml", "experiment: input\nstages:\n  f: {type: test_file, params: {file: models/missing.onnx}}\n");
  Done input = qpipe(d, {"run", "input.yaml", "--cache-dir", "c"});
  EXPECT_EQ(input.code, exit_code(ErrorKind::kInput));
  EXPECT_THAT(input.err, HasSubstr("param 'file': file not found: " + (d / "models/missing.onnx").string()));

  Done usage = qpipe(d, {"run", "ok.yaml", "--thread", "2"});
  EXPECT_EQ(usage.code, exit_code(ErrorKind::kUsage));
  EXPECT_THAT(usage.err, HasSubstr("unknown option '--thread' (did you mean '--threads'?)"));
  EXPECT_EQ(qpipe(d, {"run"}).code, exit_code(ErrorKind::kUsage));

  Done json = qpipe(d, {"run", "ok.yaml", "--log-json", "--cache-dir", "c", "--reports-dir", "r"});
  EXPECT_EQ(json.code, 0);
  nlohmann::json result = nlohmann::json::parse(json.out);
  EXPECT_EQ(result["status"], "passed");
  std::istringstream lines(json.err);
  int n = 0;
  for (std::string l; std::getline(lines, l); ++n) EXPECT_NO_THROW(nlohmann::json::parse(l)) << l;
  EXPECT_GT(n, 1);
}

TEST_F(PipelineCli, PlanShowsRunOrReuseAndWhy) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: plan\nstages:\n  a: {type: test_emit, params: {value: 1}}\n"
          "  b: {type: test_emit, inputs: {in: a.out}}\n");
  Done p1 = qpipe(d, {"plan", "spec.yaml", "--cache-dir", "c"});
  EXPECT_EQ(p1.code, 0) << p1.err;
  EXPECT_THAT(p1.out, HasSubstr("2 stages, 2 to run, 0 reused"));
  EXPECT_THAT(p1.out, ContainsRegex("\n  a +test_emit +run +no cache entry \\(first run of this stage\\)"));
  EXPECT_THAT(p1.out, ContainsRegex("\n  b +test_emit +run +input from 'a', which runs first"));
  ASSERT_EQ(qpipe(d, {"run", "spec.yaml", "--cache-dir", "c", "--reports-dir", "r", "--quiet"}).code, 0);
  d.write("spec.yaml",
          "experiment: plan\nstages:\n  a: {type: test_emit, params: {value: 1}}\n"
          "  b: {type: test_emit, params: {value: 4}, inputs: {in: a.out}}\n");
  Done p2 = qpipe(d, {"plan", "spec.yaml", "--cache-dir", "c"});
  EXPECT_THAT(p2.out, ContainsRegex("\n  a +test_emit +reuse +cache hit [0-9a-f]{12}\n"));
  EXPECT_THAT(p2.out, ContainsRegex("\n  b +test_emit +run +param 'value': 0.0 -> 4.0\n"));
  Done dot = qpipe(d, {"plan", "spec.yaml", "--cache-dir", "c", "--dot"});
  EXPECT_THAT(dot.out, HasSubstr("digraph \"plan\""));
  EXPECT_THAT(dot.out, HasSubstr("fillcolor=\"palegreen\""));
  Done dry = qpipe(d, {"run", "spec.yaml", "--cache-dir", "c", "--dry-run"});
  EXPECT_EQ(dry.code, 0);
  EXPECT_THAT(dry.out, HasSubstr("1 to run, 1 reused"));
  Done stages = qpipe(d, {"stages", "test_emit"});
  EXPECT_THAT(stages.out, HasSubstr("test_emit (version 1)"));
  EXPECT_THAT(stages.out, HasSubstr("sleep_ms"));
}

TEST_F(PipelineCli, CompareExitCodes) {
  TempDir d;
  auto write_report = [&](const std::string& name, double acc) {
    nlohmann::json r = {{"schema_version", "1"}, {"experiment", "n"}, {"status", "passed"},
                        {"metrics", {{"e", {{"accuracy", acc}}}}}};
    d.write(name, r.dump());
  };
  write_report("base.json", 0.87);
  write_report("same.json", 0.87);
  write_report("worse.json", 0.86);
  Done same = qpipe(d, {"compare", "base.json", "same.json"});
  EXPECT_EQ(same.code, 0) << same.err;
  EXPECT_THAT(same.out, HasSubstr("| `e` | accuracy | 87.00% | 87.00% | +0.00 pp | ok |"));
  Done worse = qpipe(d, {"compare", "base.json", "worse.json", "--tolerance", "0.5"});
  EXPECT_EQ(worse.code, exit_code(ErrorKind::kRegression));
  EXPECT_THAT(worse.out, HasSubstr("e: accuracy 87.00% -> 86.00% (-1.00 pp; tolerance 0.5 pp)"));
  EXPECT_EQ(qpipe(d, {"compare", "base.json", "worse.json", "--tolerance", "1.5"}).code, 0);
  d.write("garbage.json", "{not json");
  Done garbage = qpipe(d, {"compare", "base.json", "garbage.json"});
  EXPECT_EQ(garbage.code, exit_code(ErrorKind::kInput));
  EXPECT_THAT(garbage.err, HasSubstr("garbage.json: invalid JSON"));
}

const char* kSlowSpec =
    "experiment: killme\n"
    "stages:\n"
    "  a: {type: test_emit, params: {value: 1}}\n"
    "  b: {type: test_emit, params: {value: 3}}\n"
    "  slow: {type: test_emit, params: {sleep_ms: 1500, value: 2}, inputs: {in: a.out}}\n"
    "  after: {type: test_emit, inputs: {in: [slow.out, b.out]}}\n"
    "  e: {type: test_eval, params: {accuracy: 0.9}, inputs: {after: after.out}}\n"
    "gates:\n"
    "  - {name: g, metric: e.overall.accuracy, op: '>=', value: 0.85}\n";

// Waits until stage `a` and `b` are committed and `slow` is running (its
// staging folder exists), i.e. the run is mid-stage.
bool wait_mid_stage(const fs::path& cache) {
  for (int i = 0; i < 1000; ++i) {
    std::error_code ec;
    bool a_done = fs::exists(cache / "runs/killme/a.json", ec) && fs::exists(cache / "runs/killme/b.json", ec);
    bool staging = false;
    for (auto& e : fs::directory_iterator(cache / "tmp", ec)) {
      (void)e;
      staging = true;
    }
    if (a_done && staging) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void interrupted_run_then_rerun(int signal_number) {
  TempDir d;
  d.write("spec.yaml", kSlowSpec);
  Done clean = qpipe(d, {"run", "spec.yaml", "--threads", "2", "--cache-dir", "clean", "--reports-dir", "clean-reports"});
  ASSERT_EQ(clean.code, 0) << clean.err;

  Proc p = spawn(d, {"run", "spec.yaml", "--threads", "2", "--cache-dir", "cache", "--reports-dir", "reports"}, "killed");
  ASSERT_TRUE(wait_mid_stage(d / "cache"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(p.pid, signal_number);
  Done killed = wait_for(p);
  if (signal_number == SIGKILL) {
    EXPECT_EQ(killed.code, 128 + SIGKILL);
  } else {
    EXPECT_EQ(killed.code, 130) << killed.err;
    EXPECT_THAT(killed.err, HasSubstr("interrupted"));
  }
  // Every cache entry is complete; no report and no `latest` from the interrupted run.
  Cache c(d / "cache");
  int entries = 0;
  for (auto& shard : fs::directory_iterator(d / "cache")) {
    if (!shard.is_directory() || shard.path().filename().string().size() != 2) continue;
    for (auto& e : fs::directory_iterator(shard.path())) {
      ++entries;
      EXPECT_TRUE(c.lookup(e.path().filename().string()).has_value()) << e.path();
    }
  }
  EXPECT_EQ(entries, 2);  // a and b
  EXPECT_FALSE(fs::exists(d / "reports/killme/latest"));

  Done rerun = qpipe(d, {"run", "spec.yaml", "--threads", "2", "--cache-dir", "cache", "--reports-dir", "reports"});
  ASSERT_EQ(rerun.code, 0) << rerun.err;
  EXPECT_THAT(rerun.out, HasSubstr("3 ran, 2 reused"));
  EXPECT_EQ(pipetest::slurp(d / "reports/killme/latest/report.json"), pipetest::slurp(d / "clean-reports/killme/latest/report.json"));
  EXPECT_TRUE(fs::is_empty(d / "cache/tmp"));  // the dead run's staging folder was cleaned
}

TEST_F(PipelineCli, SigkillMidStageThenRerunGivesTheSameReport) { interrupted_run_then_rerun(SIGKILL); }

TEST_F(PipelineCli, SigintMidStageThenRerunGivesTheSameReport) { interrupted_run_then_rerun(SIGINT); }

}  // namespace
}  // namespace qpipe
