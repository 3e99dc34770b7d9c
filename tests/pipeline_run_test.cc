// Running experiments: cache hits and misses with their reasons, --force,
// failure isolation, concurrency and the thread budget, determinism across
// thread counts, crash safety of the cache (a stage dying mid-write, stale
// staging folders), cancellation, input files.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "pipeline/cache.h"
#include "pipeline/scheduler.h"
#include "pipeline/sha256.h"
#include "tests/pipeline_test_util.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;

using pipetest::record;
using pipetest::registry;
using pipetest::Runner;
using pipetest::TempDir;
using ::testing::HasSubstr;

const char* kChain =
    "experiment: chain\n"
    "description: first\n"
    "stages:\n"
    "  a: {type: test_emit, params: {value: 1}}\n"
    "  b: {type: test_emit, params: {value: 10}, inputs: {in: a.out}}\n"
    "  c: {type: test_emit, inputs: {in: [a.out, b.out]}}\n"
    "  solo: {type: test_emit, params: {value: 7}}\n";

std::string spec_with(const std::string& from, const std::string& to) {
  std::string s = kChain;
  s.replace(s.find(from), from.size(), to);
  return s;
}

// Every entry folder in the cache is complete (has stage.json and its outputs).
void expect_cache_consistent(const fs::path& cache) {
  Cache c(cache);
  for (auto& shard : fs::directory_iterator(cache)) {
    std::string n = shard.path().filename().string();
    if (!shard.is_directory() || n.size() != 2) continue;
    for (auto& entry : fs::directory_iterator(shard.path())) {
      EXPECT_TRUE(c.lookup(entry.path().filename().string()).has_value()) << "incomplete cache entry " << entry.path();
    }
  }
}

TEST(PipelineRun, SecondRunReusesEverything) {
  TempDir d;
  d.write("spec.yaml", kChain);
  Runner r(d);
  RunResult first = r.run("spec.yaml");
  EXPECT_EQ(first.exit_code, 0);
  for (const auto& rec : first.records) {
    EXPECT_EQ(rec.status, StageStatus::kOk) << rec.id;
    EXPECT_FALSE(rec.cache_hit) << rec.id;
    EXPECT_EQ(rec.reason, "no cache entry (first run of this stage)");
  }
  nlohmann::json c = read_json_file(record(first, "c").outputs.at("out").path.string());
  EXPECT_EQ(c["inputs_sum"], 11.0);  // a (1) + b (10)
  RunResult second = r.run("spec.yaml");
  for (const auto& rec : second.records) {
    EXPECT_TRUE(rec.cache_hit) << rec.id;
    EXPECT_THAT(rec.reason, HasSubstr("cache hit " + rec.key.substr(0, 12)));
    EXPECT_EQ(rec.outputs.at("out").sha256, record(first, rec.id).outputs.at("out").sha256);
  }
  EXPECT_EQ(pipetest::slurp(first.report_dir / "report.json"), pipetest::slurp(second.report_dir / "report.json"));
  expect_cache_consistent(r.cache_dir);
}

TEST(PipelineRun, ParamChangeRerunsItAndItsDependentsWithReasons) {
  TempDir d;
  d.write("spec.yaml", kChain);
  Runner r(d);
  r.run("spec.yaml");
  d.write("spec.yaml", spec_with("value: 10", "value: 11"));
  std::vector<std::string> log;
  RunResult res = r.run("spec.yaml", 2, false, nullptr, &log);
  EXPECT_TRUE(record(res, "a").cache_hit);
  EXPECT_TRUE(record(res, "solo").cache_hit);
  EXPECT_FALSE(record(res, "b").cache_hit);
  EXPECT_EQ(record(res, "b").reason, "param 'value': 10.0 -> 11.0");
  EXPECT_FALSE(record(res, "c").cache_hit);
  EXPECT_THAT(record(res, "c").reason, HasSubstr("input 'in' changed ("));
  // The reasons are logged.
  bool logged = false;
  for (const auto& l : log) logged = logged || l.find("b: run: param 'value': 10.0 -> 11.0") != std::string::npos;
  EXPECT_TRUE(logged);
  // Back to the old value: reused from the cache, noting what differs from the last run.
  d.write("spec.yaml", kChain);
  RunResult back = r.run("spec.yaml");
  EXPECT_TRUE(record(back, "b").cache_hit);
  EXPECT_THAT(record(back, "b").reason, HasSubstr("(an earlier result; since the last run: param 'value': 11.0 -> 10.0)"));
}

TEST(PipelineRun, DescriptionsAreNotPartOfTheKey) {
  TempDir d;
  d.write("spec.yaml", kChain);
  Runner r(d);
  r.run("spec.yaml");
  std::string s = spec_with("description: first", "description: edited prose");
  s = s.replace(s.find("  solo: {"), 9, "  solo: {desc: 'a note', ");
  d.write("spec.yaml", s);
  RunResult res = r.run("spec.yaml");
  for (const auto& rec : res.records) EXPECT_TRUE(rec.cache_hit) << rec.id;
}

TEST(PipelineRun, ForceRerunsEverything) {
  TempDir d;
  d.write("spec.yaml", kChain);
  Runner r(d);
  RunResult first = r.run("spec.yaml");
  RunResult forced = r.run("spec.yaml", 2, true);
  for (const auto& rec : forced.records) {
    EXPECT_FALSE(rec.cache_hit);
    EXPECT_EQ(rec.reason, "forced (--force)");
    EXPECT_EQ(rec.outputs.at("out").sha256, record(first, rec.id).outputs.at("out").sha256);
  }
  expect_cache_consistent(r.cache_dir);
}

TEST(PipelineRun, FailureSkipsOnlyDependents) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: iso\n"
          "stages:\n"
          "  bad: {type: test_emit, params: {fail: true, value: 3}}\n"
          "  child: {type: test_emit, inputs: {in: bad.out}}\n"
          "  grandchild: {type: test_emit, inputs: {in: child.out}}\n"
          "  after: {type: test_emit, needs: bad}\n"
          "  other: {type: test_emit, params: {sleep_ms: 50}}\n"
          "  other2: {type: test_emit, inputs: {in: other.out}}\n");
  Runner r(d);
  for (int threads : {1, 2}) {
    RunResult res = r.run("spec.yaml", threads);
    EXPECT_EQ(res.exit_code, exit_code(ErrorKind::kRuntime));
    EXPECT_EQ(res.status, "failed");
    const StageRecord& bad = record(res, "bad");
    EXPECT_EQ(bad.status, StageStatus::kFailed);
    EXPECT_EQ(bad.message, "test_emit: failing on purpose (value 3)");
    EXPECT_EQ(bad.error_kind, ErrorKind::kRuntime);
    EXPECT_EQ(record(res, "child").status, StageStatus::kSkipped);
    EXPECT_EQ(record(res, "child").message, "dependency 'bad' failed");
    EXPECT_EQ(record(res, "grandchild").message, "dependency 'child' skipped");
    EXPECT_EQ(record(res, "after").status, StageStatus::kSkipped);
    EXPECT_EQ(record(res, "other").status, StageStatus::kOk);
    EXPECT_EQ(record(res, "other2").status, StageStatus::kOk);
    // Every failure is in the report.
    const auto& failures = res.report.report["failures"];
    ASSERT_EQ(failures.size(), 4u);
    EXPECT_EQ(failures[0]["stage"], "bad");
    EXPECT_EQ(failures[0]["experiment"], "iso");
    EXPECT_EQ(failures[0]["error_kind"], "runtime error");
  }
  // No cache entry and no staging folder is left for the failed stage.
  for (auto& e : fs::directory_iterator(r.cache_dir / "tmp")) ADD_FAILURE() << "left behind: " << e.path();
  expect_cache_consistent(r.cache_dir);
}

TEST(PipelineRun, InputErrorsInStagesGiveTheInputExitCode) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: corrupt\n"
          "stages:\n"
          "  load: {type: test_emit, params: {fail: true, fail_kind: input}}\n"
          "  fine: {type: test_emit}\n");
  RunResult res = Runner(d).run("spec.yaml");
  EXPECT_EQ(res.exit_code, exit_code(ErrorKind::kInput));
  EXPECT_EQ(record(res, "load").error_kind, ErrorKind::kInput);
}

TEST(PipelineRun, IndependentStagesRunConcurrentlyWithinTheThreadBudget) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: par\n"
          "stages:\n"
          "  p: {type: test_probe, matrix: {id: [a, b, c, d]}}\n");
  for (int threads : {1, 2}) {
    pipetest::g_probe_max = 0;
    RunResult res = Runner(d, "cache" + std::to_string(threads)).run("spec.yaml", threads);
    ASSERT_EQ(res.exit_code, 0);
    EXPECT_EQ(pipetest::g_probe_max.load(), threads) << "threads " << threads;
    nlohmann::json out = read_json_file(res.records[0].outputs.at("out").path.string());
    EXPECT_EQ(out["arena_threads"], threads);  // stage-internal parallelism shares the run's arena
    EXPECT_EQ(out["ctx_threads"], threads);
  }
}

TEST(PipelineRun, ReportJsonIsByteIdenticalForAnyThreadCount) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: det\n"
          "stages:\n"
          "  src: {type: test_emit, matrix: {value: [1, 2, 3, 4, 5, 6]}, params: {sleep_ms: 20}}\n"
          "  sum: {type: test_emit, inputs: {in: src.out}}\n"
          "  e: {type: test_eval, matrix: {accuracy: [0.87, 0.86]}, inputs: {after: sum.out}}\n"
          "  bad: {type: test_emit, params: {fail: true}}\n"
          "  dep: {type: test_emit, inputs: {in: bad.out}}\n"
          "gates:\n"
          "  - {name: acc, for_each: test_eval, metric: 'per_class[*].accuracy', op: '>=', value: 0.865}\n");
  std::string reference;
  for (int threads : {1, 2}) {
    RunResult res = Runner(d, "cache" + std::to_string(threads), "reports" + std::to_string(threads)).run("spec.yaml", threads);
    EXPECT_EQ(res.exit_code, exit_code(ErrorKind::kRuntime));
    std::string json = pipetest::slurp(res.report_dir / "report.json");
    if (reference.empty()) reference = json;
    EXPECT_EQ(json, reference) << "threads " << threads;
    // Timings and thread counts live in run.json.
    nlohmann::json run = read_json_file((res.report_dir / "run.json").string());
    EXPECT_EQ(run["threads"], threads);
  }
  EXPECT_EQ(reference.find("wall"), std::string::npos);
  EXPECT_EQ(reference.find("threads\": 2"), std::string::npos);
}

TEST(PipelineRun, StageDyingMidWriteLeavesNoCacheEntry) {
  TempDir d;
  d.write("spec.yaml", "experiment: crash\nstages:\n  w: {type: test_emit, params: {value: 5, partial_write: true}}\n");
  Runner r(d);
  RunResult res = r.run("spec.yaml");
  const StageRecord& w = record(res, "w");
  EXPECT_EQ(w.status, StageStatus::kFailed);
  EXPECT_THAT(w.message, HasSubstr("simulated crash after writing half"));
  Cache c(r.cache_dir);
  EXPECT_FALSE(c.lookup(w.key).has_value());
  EXPECT_FALSE(fs::exists(c.entry_dir(w.key)));
  EXPECT_TRUE(fs::is_empty(r.cache_dir / "tmp"));
  // The same key without the crash (partial_write is part of the key, so use the API directly):
  d.write("spec.yaml", "experiment: crash\nstages:\n  w: {type: test_emit, params: {value: 5}}\n");
  RunResult ok = r.run("spec.yaml");
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(read_json_file(record(ok, "w").outputs.at("out").path.string())["value"], 5.0);
}

TEST(PipelineRun, StaleStagingFoldersOfDeadProcessesAreRemoved) {
  TempDir d;
  Cache c(d / "cache");
  // A pid that cannot exist (above pid_max) and our own live one.
  fs::create_directories(d / "cache/tmp/abcd.999999999.0123456/partial");
  fs::create_directories(d / ("cache/tmp/abcd." + std::to_string(::getpid()) + ".1abcdef"));
  EXPECT_EQ(c.clean_stale(), 1);
  EXPECT_FALSE(fs::exists(d / "cache/tmp/abcd.999999999.0123456"));
  EXPECT_TRUE(fs::exists(d / ("cache/tmp/abcd." + std::to_string(::getpid()) + ".1abcdef")));
}

TEST(PipelineRun, CancellationStopsSchedulingAndKeepsTheCacheConsistent) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: cancel\n"
          "stages:\n"
          "  quick: {type: test_emit, params: {value: 1}}\n"
          "  slow: {type: test_emit, params: {sleep_ms: 5000}, inputs: {in: quick.out}}\n"
          "  after: {type: test_emit, inputs: {in: slow.out}}\n");
  Runner r(d);
  std::atomic<bool> cancel{false};
  std::thread stopper([&] {
    // Wait until the slow stage has a staging folder, then "press Ctrl-C".
    for (int i = 0; i < 500 && !cancel; ++i) {
      std::error_code ec;
      for (auto& e : fs::directory_iterator(r.cache_dir / "tmp", ec)) {
        (void)e;
        cancel = true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    cancel = true;
  });
  auto t0 = std::chrono::steady_clock::now();
  RunResult res = r.run("spec.yaml", 2, false, &cancel);
  stopper.join();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 4.0);
  EXPECT_EQ(res.exit_code, 130);
  EXPECT_EQ(res.status, "interrupted");
  EXPECT_EQ(record(res, "quick").status, StageStatus::kOk);
  EXPECT_EQ(record(res, "slow").status, StageStatus::kCancelled);
  EXPECT_EQ(record(res, "after").status, StageStatus::kCancelled);  // not started: interrupted
  EXPECT_EQ(record(res, "after").message, "not started: the run was interrupted");
  EXPECT_TRUE(fs::is_empty(r.cache_dir / "tmp"));
  expect_cache_consistent(r.cache_dir);
  // An interrupted run does not move `latest`.
  EXPECT_FALSE(fs::exists(r.reports_dir / "cancel/latest"));
  // The next run picks up where it stopped.
  d.write("spec.yaml",
          "experiment: cancel\n"
          "stages:\n"
          "  quick: {type: test_emit, params: {value: 1}}\n"
          "  slow: {type: test_emit, params: {sleep_ms: 50}, inputs: {in: quick.out}}\n"
          "  after: {type: test_emit, inputs: {in: slow.out}}\n");
  RunResult again = r.run("spec.yaml");
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_TRUE(record(again, "quick").cache_hit);
}

TEST(PipelineRun, InputFilesAreHashedIntoTheKeyAndMissingOnesReportedAtOnce) {
  TempDir d;
  d.write("data.bin", "version one");
  d.write("spec.yaml", "experiment: files\nstages:\n  f: {type: test_file, params: {file: data.bin}}\n");
  Runner r(d);
  RunResult first = r.run("spec.yaml");
  ASSERT_EQ(first.exit_code, 0);
  EXPECT_TRUE(fs::exists(r.cache_dir / "file-hashes.json"));
  EXPECT_EQ(first.report.report["environment"]["input_files"][(d / "data.bin").string()], sha256_hex("version one"));
  EXPECT_TRUE(record(r.run("spec.yaml"), "f").cache_hit);
  d.write("data.bin", "version two, longer");
  RunResult changed = r.run("spec.yaml");
  EXPECT_FALSE(record(changed, "f").cache_hit);
  EXPECT_THAT(record(changed, "f").reason, HasSubstr("file 'file' (" + (d / "data.bin").string() + ") content changed"));

  d.write("spec.yaml",
          "experiment: files\n"
          "stages:\n"
          "  f: {type: test_file, params: {file: missing.onnx}}\n"
          "  g: {type: test_file, params: {file: gone/}}\n");
  try {
    r.run("spec.yaml");
    FAIL() << "expected an input error";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_THAT(e.what(), HasSubstr("2 errors"));
    EXPECT_THAT(e.what(), HasSubstr("spec.yaml:3:3: stage 'f' (test_file): param 'file': file not found: " + (d / "missing.onnx").string()));
    EXPECT_THAT(e.what(), HasSubstr("stage 'g' (test_file): param 'file': file or folder not found"));
  }
}

TEST(PipelineRun, MalformedOutputsAndUndeclaredParamsFailTheStage) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: contract\n"
          "stages:\n"
          "  e: {type: test_bad_eval}\n"
          "  s: {type: test_sneaky}\n");
  RunResult res = Runner(d).run("spec.yaml");
  EXPECT_THAT(record(res, "e").message, HasSubstr("output 'eval' (eval) lacks required key 'per_class'"));
  EXPECT_THAT(record(res, "s").message, HasSubstr("stage type 'test_sneaky' reads param 'undeclared', which it does not declare"));
}

TEST(PipelineRun, StandaloneStageExecution) {
  TempDir d;
  const StageType* t = registry().find("test_emit");
  auto outs = run_stage_standalone(*t, registry(), {{"value", 4.0}}, {}, d / "out");
  ASSERT_TRUE(outs.count("out"));
  EXPECT_EQ(read_json_file(outs["out"].path.string())["value"], 4.0);
  EXPECT_EQ(outs["out"].sha256, sha256_file(outs["out"].path));
  try {
    run_stage_standalone(*t, registry(), {{"valeu", 4.0}}, {}, d / "out2");
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSpec);
    EXPECT_THAT(e.what(), HasSubstr("unknown param 'valeu' (did you mean 'value'?)"));
  }
}

TEST(PipelineRun, RegistryRejectsDuplicatesAndBadDeclarations) {
  StageRegistry r;
  register_test_stages(r);
  try {
    register_test_stages(r);
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("cannot register stage type 'test_emit': a stage type with this name is already registered"));
  }
  StageType t;
  t.name = "broken";
  t.run = [](StageContext&) {};
  t.outputs = {{"out", "nonsense", false, false, ""}};
  EXPECT_THROW(r.add(t), PtqError);
  t.outputs = {{"out", "json", false, false, ""}};
  t.params = {{"x", ParamKind::kInt, false, "not an int", ""}};
  EXPECT_THROW(r.add(t), PtqError);
}

}  // namespace
}  // namespace qpipe
