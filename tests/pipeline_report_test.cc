// Reports, gates and compare: the milestone and per-class tables, gate
// checks (fan-out, drop vs baseline, not-measured), report files and the
// `latest` pointer, stage fragments and metrics, and the regression diff.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>

#include "pipeline/compare.h"
#include "pipeline/gates.h"
#include "tests/pipeline_test_util.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;

using pipetest::record;
using pipetest::Runner;
using pipetest::TempDir;
using ::testing::HasSubstr;
using nlohmann::json;

const char* kMilestone =
    "experiment: mile\n"
    "description: the study's table\n"
    "stages:\n"
    "  fp32: {type: test_eval, params: {accuracy: 0.8719, framework: 'ONNX (FP32 baseline)', model_size_bytes: 319598,\n"
    "         total: 10000}}\n"
    "  u8: {type: test_eval, params: {accuracy: 0.8675, framework: ONNX Runtime, dtype: uint8, model_size_bytes: 125952,\n"
    "       per_class: [0.9, 0.93, 0.8, 0.72, 0.87, 0.744, 0.9, 0.9, 0.92, 0.99]}}\n"
    "  i8: {type: test_eval, params: {accuracy: 0.8558, framework: ONNX Runtime, dtype: int8, model_size_bytes: 125952,\n"
    "       per_class: [0.9, 0.93, 0.8, 0.72, 0.87, 0.68, 0.9, 0.9, 0.92, 0.928]}}\n"
    "  notes: {type: test_emit, params: {report_markdown: 'Why int8 differs: fused kernels.', metrics: {sqnr_db/conv1: 30.5}}}\n"
    "gates:\n"
    "  - {name: accuracy floor, for_each: test_eval, metric: overall.accuracy, op: '>=', value: 0.85}\n"
    "  - {name: drop vs fp32, for_each: test_eval, exclude: [fp32], metric: overall.accuracy, drop_vs: fp32, op: '<=', value: 5}\n"
    "  - {name: dog floor, metric: 'i8.per_class[class_name=dog].accuracy', op: '>=', value: 0.7}\n"
    "report:\n"
    "  title: Milestone v1.2\n"
    "  sections:\n"
    "    - summary\n"
    "    - kind: milestone\n"
    "      baseline: fp32\n"
    "      rows: [fp32, u8, {stage: i8, published: 0.8558, note: ORT fused int8 kernels}]\n"
    "    - per_class\n"
    "    - {kind: text, title: Notes, body: 'Reference semantics give 86.11%.'}\n"
    "    - fragments\n"
    "    - gates\n"
    "    - stages\n"
    "    - environment\n";

TEST(PipelineReport, MilestoneTableGatesAndFiles) {
  TempDir d;
  d.write("spec.yaml", kMilestone);
  Runner r(d);
  RunResult res = r.run("spec.yaml");
  // The dog floor fails (0.68 < 0.7): exit code "gate failed", every stage ok.
  EXPECT_EQ(res.status, "gates_failed");
  EXPECT_EQ(res.exit_code, exit_code(ErrorKind::kGateFailed));
  const json& rep = res.report.report;
  EXPECT_EQ(rep["schema_version"], "1");
  EXPECT_EQ(rep["title"], "Milestone v1.2");

  // Milestone section data.
  const json* mile = nullptr;
  for (const auto& s : rep["sections"]) {
    if (s["kind"] == "milestone") mile = &s;
  }
  ASSERT_NE(mile, nullptr);
  const json& rows = (*mile)["data"]["rows"];
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0]["baseline"], true);
  EXPECT_EQ(rows[1]["dtype"], "uint8");
  EXPECT_DOUBLE_EQ(rows[1]["delta_pp"].get<double>(), -0.44);
  EXPECT_DOUBLE_EQ(rows[2]["delta_pp"].get<double>(), -1.61);
  EXPECT_NEAR(rows[1]["size_reduction"].get<double>(), 1.0 - 125952.0 / 319598.0, 1e-9);
  EXPECT_EQ(rows[2]["published"], 0.8558);

  const std::string& md = res.report.markdown;
  EXPECT_THAT(md, HasSubstr("# Milestone v1.2"));
  EXPECT_THAT(md, HasSubstr("| Framework | Data type | Accuracy | Δ vs baseline (pp) | Model size (KB) | Size reduction | Published | Note |"));
  EXPECT_THAT(md, HasSubstr("| ONNX (FP32 baseline) | float32 | 87.19% | baseline | 312 | - | - |  |"));
  EXPECT_THAT(md, HasSubstr("| ONNX Runtime | uint8 | 86.75% | -0.44 | 123 | 60.6% (2.54x smaller) | - |  |"));
  EXPECT_THAT(md, HasSubstr("| ONNX Runtime | int8 | 85.58% | -1.61 | 123 | 60.6% (2.54x smaller) | 85.58% | ORT fused int8 kernels |"));
  EXPECT_THAT(md, HasSubstr("| dog | 87.20% | 74.40% (-12.80) | 68.00% (-19.20) |"));
  EXPECT_THAT(md, HasSubstr("## Notes\n\nReference semantics give 86.11%."));
  EXPECT_THAT(md, HasSubstr("## Notes from notes\n\nWhy int8 differs: fused kernels."));
  EXPECT_THAT(md, HasSubstr("| dog floor | `i8.per_class[class_name=dog].accuracy` | 0.68 | >= | 0.7 | **FAIL** |"));
  EXPECT_THAT(md, HasSubstr("| drop vs fp32 | `drop of u8.overall.accuracy vs fp32 (pp)` | 0.44 | <= | 5 | **PASS** |"));

  // Gates in report.json.
  const json& checks = rep["gates"]["checks"];
  EXPECT_EQ(rep["gates"]["passed"], false);
  ASSERT_EQ(checks.size(), 3u + 2u + 1u);
  EXPECT_EQ(checks[5]["result"], "FAIL");
  EXPECT_EQ(checks[5]["measured"], 0.68);

  // Metrics for compare.
  EXPECT_EQ(rep["metrics"]["u8"]["accuracy"], 0.8675);
  EXPECT_EQ(rep["metrics"]["u8"]["class/dog/accuracy"], 0.744);
  EXPECT_EQ(rep["metrics"]["notes"]["sqnr_db/conv1"], 30.5);

  // Files: report.json, report.md, run.json, latest -> the run.
  EXPECT_TRUE(fs::exists(res.report_dir / "report.json"));
  EXPECT_TRUE(fs::exists(res.report_dir / "report.md"));
  EXPECT_TRUE(fs::exists(res.report_dir / "run.json"));
  EXPECT_EQ(fs::canonical(r.reports_dir / "mile/latest"), fs::canonical(res.report_dir));
  EXPECT_EQ(read_json_file((res.report_dir / "report.json").string()), rep);
  RunResult again = r.run("spec.yaml");
  EXPECT_NE(again.report_dir, res.report_dir);
  EXPECT_EQ(fs::canonical(r.reports_dir / "mile/latest"), fs::canonical(again.report_dir));
  // Nothing half-written is left in the report folder.
  for (auto& e : fs::directory_iterator(r.reports_dir / "mile")) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
  }
}

TEST(PipelineReport, DefaultSectionsAndRunIdFormat) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: defaults\n"
          "stages:\n"
          "  a: {type: test_eval, params: {accuracy: 0.9}}\n"
          "  b: {type: test_eval, params: {accuracy: 0.8, dtype: int8}}\n");
  RunResult res = Runner(d).run("spec.yaml");
  EXPECT_EQ(res.exit_code, 0);  // no gates: nothing to fail
  EXPECT_THAT(res.report.markdown, HasSubstr("## Milestone table"));
  EXPECT_THAT(res.report.markdown, HasSubstr("## Per-class accuracy"));
  EXPECT_THAT(res.report.markdown, HasSubstr("## Stages"));
  EXPECT_THAT(res.report.markdown, HasSubstr("## Environment"));
  std::string id = res.report_dir.filename().string();
  EXPECT_TRUE(std::regex_match(id, std::regex("[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}"))) << id;
  EXPECT_EQ(id.substr(id.size() - 6), res.report.report["spec"]["sha256"].get<std::string>().substr(0, 6));
}

TEST(PipelineGates, NotMeasuredWhenTheStageFailedOrTheKeyIsMissing) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: g\n"
          "stages:\n"
          "  up: {type: test_emit, params: {fail: true}}\n"
          "  e: {type: test_eval, params: {accuracy: 0.9}, inputs: {after: up.out}}\n"
          "  v: {type: test_emit, params: {value: 2}}\n"
          "gates:\n"
          "  - {name: acc, metric: e.overall.accuracy, op: '>=', value: 0.5}\n"
          "  - {name: missing key, metric: v.nothere, op: '>=', value: 1}\n"
          "  - {name: value, metric: v.value, op: '==', value: 2}\n");
  RunResult res = Runner(d).run("spec.yaml");
  EXPECT_EQ(res.exit_code, exit_code(ErrorKind::kRuntime));  // stage failures outrank gate failures
  ASSERT_EQ(res.gates.size(), 3u);
  EXPECT_FALSE(res.gates[0].passed);
  EXPECT_TRUE(res.gates[0].measured.is_null());
  EXPECT_EQ(res.gates[0].note, "not measured: stage 'e' skipped (dependency 'up' failed)");
  EXPECT_FALSE(res.gates[1].passed);
  EXPECT_EQ(res.gates[1].note, "not measured: no key 'nothere' at '(top)'");
  EXPECT_TRUE(res.gates[2].passed);
  EXPECT_EQ(describe_gate_result(res.gates[2]), "gate 'value': v.value = 2.0, required == 2 (PASS)");
}

TEST(PipelineGates, WildcardFansOutPerElement) {
  TempDir d;
  d.write("spec.yaml",
          "experiment: g\n"
          "stages:\n"
          "  e: {type: test_eval, params: {accuracy: 0.9, per_class: [0.9, 0.9, 0.9, 0.9, 0.9, 0.5, 0.9, 0.9, 0.9, 0.9]}}\n"
          "gates:\n"
          "  - {name: floor, metric: 'e.per_class[*].accuracy', op: '>=', value: 0.6}\n");
  RunResult res = Runner(d).run("spec.yaml");
  ASSERT_EQ(res.gates.size(), 10u);
  int failed = 0;
  for (const auto& g : res.gates) {
    if (!g.passed) {
      ++failed;
      EXPECT_EQ(g.metric, "e.per_class[class_name=dog].accuracy");
    }
  }
  EXPECT_EQ(failed, 1);
}

json report_with(double acc, double dog, double sqnr) {
  return {{"schema_version", "1"},
          {"experiment", "nightly"},
          {"status", "passed"},
          {"metrics",
           {{"eval_int8", {{"accuracy", acc}, {"class/dog/accuracy", dog}, {"model_size_bytes", 125952}}},
            {"sqnr", {{"sqnr_db/conv1", sqnr}}}}}};
}

TEST(PipelineCompare, DetectsRegressionsBeyondTolerance) {
  CompareOptions opt;
  opt.tolerance_pp = 0.5;
  CompareResult same = compare_reports(report_with(0.8611, 0.70, 30), report_with(0.8611, 0.70, 30), opt);
  EXPECT_FALSE(same.regression());
  EXPECT_THAT(same.markdown, HasSubstr("| `eval_int8` | accuracy | 86.11% | 86.11% | +0.00 pp | ok |"));
  EXPECT_THAT(same.markdown, HasSubstr("No regression beyond tolerance."));

  CompareResult within = compare_reports(report_with(0.8611, 0.70, 30), report_with(0.8561, 0.60, 20), opt);
  EXPECT_FALSE(within.regression()) << within.markdown;  // exactly 0.5 pp; classes and SQNR not judged by default
  EXPECT_THAT(within.markdown, HasSubstr("| `eval_int8` | class/dog/accuracy | 70.00% | 60.00% | -10.00 pp | lower (not judged) |"));

  CompareResult worse = compare_reports(report_with(0.8611, 0.70, 30), report_with(0.8550, 0.70, 30), opt);
  ASSERT_TRUE(worse.regression());
  EXPECT_THAT(worse.regressions[0], HasSubstr("eval_int8: accuracy 86.11% -> 85.50% (-0.61 pp; tolerance 0.5 pp)"));
  EXPECT_THAT(worse.markdown, HasSubstr("**REGRESSION**"));

  opt.class_tolerance_pp = 2;
  opt.sqnr_tolerance_db = 1;
  CompareResult strict = compare_reports(report_with(0.8611, 0.70, 30), report_with(0.8611, 0.67, 28.5), opt);
  EXPECT_EQ(strict.regressions.size(), 2u);
  EXPECT_THAT(strict.markdown, HasSubstr("## Per-tensor SQNR"));
  EXPECT_THAT(strict.markdown, HasSubstr("| `sqnr` | sqnr_db/conv1 | 30.00 dB | 28.50 dB | -1.50 dB | **REGRESSION** |"));

  json missing = report_with(0.8611, 0.70, 30);
  missing["metrics"].erase("eval_int8");
  CompareResult gone = compare_reports(report_with(0.8611, 0.70, 30), missing, CompareOptions{});
  ASSERT_TRUE(gone.regression());
  EXPECT_THAT(gone.regressions[0], HasSubstr("stage 'eval_int8' has no metrics in current"));

  try {
    check_report_document(json{{"hello", 1}}, "x.json");
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_THAT(e.what(), HasSubstr("x.json: not a qpipe report.json"));
  }
}

TEST(PipelineCompare, WorksOnRealReports) {
  TempDir d;
  d.write("spec.yaml", kMilestone);
  RunResult base = Runner(d, "c1", "r1").run("spec.yaml");
  std::string worse = kMilestone;
  worse.replace(worse.find("accuracy: 0.8675"), 16, "accuracy: 0.8575");
  d.write("spec.yaml", worse);
  RunResult cur = Runner(d, "c1", "r2").run("spec.yaml");
  CompareResult c = compare_reports(base.report.report, cur.report.report, CompareOptions{});
  ASSERT_TRUE(c.regression());
  EXPECT_THAT(c.regressions[0], HasSubstr("u8: accuracy 86.75% -> 85.75% (-1.00 pp; tolerance 0.5 pp)"));
}

}  // namespace
}  // namespace qpipe
