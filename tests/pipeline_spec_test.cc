// Spec loading: the happy path (includes, presets, variables, matrix, typed
// params, path resolution) and every kind of spec error with its place
// (file:line:col), its "did you mean" and its error kind — all errors of a
// spec in one message.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>

#include "pipeline/spec.h"
#include "tests/pipeline_test_util.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;

using pipetest::load_error;
using pipetest::registry;
using pipetest::TempDir;
using ::testing::HasSubstr;

Experiment load(const TempDir& d, const std::string& yaml, const std::string& name = "spec.yaml") {
  return load_experiment(d.write(name, yaml), registry());
}

// Each error line of a PtqError message.
std::vector<std::string> error_lines(const std::string& msg) {
  std::vector<std::string> out;
  std::size_t start = msg.find('\n');
  while (start != std::string::npos) {
    std::size_t next = msg.find('\n', start + 1);
    out.push_back(msg.substr(start + 3, next == std::string::npos ? std::string::npos : next - start - 3));
    start = next;
  }
  return out;
}

TEST(PipelineSpec, IncludesPresetsVariablesAndDefaults) {
  TempDir d;
  d.write("configs/models.yaml",
          "models:\n"
          "  resnet8: {path: \"${shared}/models/resnet8.onnx\", size: 42}\n"
          "presets:\n"
          "  loud: {text: preset-text, value: 3}\n");
  d.write("experiments/data/input.txt", "hello");
  setenv("QPIPE_SHARED", (d / "shared").c_str(), 1);
  Experiment e = load(d,
                      "experiment: happy\n"
                      "description: all features\n"
                      "include: [../configs/models.yaml]\n"
                      "vars: {threshold: 0.85, label: the-label}\n"
                      "settings: {threads: 3, batch_size: 64}\n"
                      "stages:\n"
                      "  a:\n"
                      "    type: test_emit\n"
                      "    desc: prose is not hashed\n"
                      "    preset: loud\n"
                      "    params: {value: 5, tags: [1, two, 3.5, true]}\n"
                      "  b:\n"
                      "    type: test_emit\n"
                      "    params: {text: \"${models.resnet8.path}\", value: \"${models.resnet8.size}\", metrics: {x: 1}}\n"
                      "  f:\n"
                      "    type: test_file\n"
                      "    params: {file: data/input.txt}\n"
                      "gates:\n"
                      "  - {name: g, metric: a.value, op: '>=', value: '${vars.threshold}'}\n",
                      "experiments/spec.yaml");
  unsetenv("QPIPE_SHARED");
  const Spec& s = e.spec;
  EXPECT_EQ(s.experiment, "happy");
  EXPECT_EQ(s.description, "all features");
  EXPECT_EQ(s.settings.threads, 3);
  EXPECT_EQ(s.settings.batch_size, 64);
  ASSERT_EQ(s.stages.size(), 3u);
  const StageSpec& a = s.stages[0];
  EXPECT_EQ(a.params["value"], 5.0);           // explicit param beats the preset
  EXPECT_EQ(a.params["text"], "preset-text");  // from the preset
  EXPECT_EQ(a.params["sleep_ms"], 0);          // default applied
  EXPECT_EQ(a.params["tags"], nlohmann::json::parse(R"([1, "two", 3.5, true])"));
  EXPECT_FALSE(a.params.contains("metrics"));  // optional without default: unset
  EXPECT_EQ(a.desc, "prose is not hashed");
  const StageSpec& b = s.stages[1];
  EXPECT_EQ(b.params["text"], (d / "shared/models/resnet8.onnx").string());
  EXPECT_EQ(b.params["value"], 42.0);  // whole-value reference keeps the number
  EXPECT_EQ(b.params["metrics"], nlohmann::json::parse(R"({"x": 1})"));
  // Relative paths resolve against the spec's folder.
  EXPECT_EQ(s.stages[2].params["file"], (d / "experiments/data/input.txt").string());
  ASSERT_EQ(s.gates.size(), 1u);
  EXPECT_EQ(s.gates[0].value, 0.85);
  EXPECT_EQ(s.gates[0].stages, std::vector<std::string>{"a"});
  EXPECT_EQ(s.gates[0].port, "out");
  EXPECT_EQ(s.source_files.size(), 2u);
  EXPECT_EQ(s.sha256.size(), 64u);
}

TEST(PipelineSpec, IncludeFallsBackToRepoConfigsFolder) {
  TempDir d;
  d.write("CMakeLists.txt", "");
  fs::create_directories(d / ".git");
  d.write("configs/vars.yaml", "vars: {v: 7}\n");
  Experiment e = load(d, "experiment: x\ninclude: vars.yaml\nstages:\n  a: {type: test_emit, params: {value: '${vars.v}'}}\n",
                      "experiments/x.yaml");
  EXPECT_EQ(e.spec.paths.repo_root, d.path());
  EXPECT_EQ(e.spec.stages[0].params["value"], 7.0);
}

TEST(PipelineSpec, MatrixExpandsInAxisOrderAndSubstitutes) {
  TempDir d;
  Experiment e = load(d,
                      "experiment: m\n"
                      "stages:\n"
                      "  q:\n"
                      "    type: test_emit\n"
                      "    matrix: {text: [int8, uint8], value: [1, 2.5]}\n"
                      "  r:\n"
                      "    type: test_emit\n"
                      "    matrix: {w: [a, b]}\n"
                      "    params: {text: 'w=${matrix.w}', value: 9}\n");
  std::vector<std::string> ids = e.spec.stage_ids();
  EXPECT_EQ(ids, (std::vector<std::string>{"q[text=int8,value=1]", "q[text=int8,value=2.5]", "q[text=uint8,value=1]",
                                           "q[text=uint8,value=2.5]", "r[w=a]", "r[w=b]"}));
  // Axes named like params fill them (typed by the param's kind).
  EXPECT_EQ(e.spec.stages[1].params["text"], "int8");
  EXPECT_EQ(e.spec.stages[1].params["value"], 2.5);
  EXPECT_EQ(e.spec.stages[4].params["text"], "w=a");
  EXPECT_EQ(e.spec.stages[5].params["text"], "w=b");
  EXPECT_EQ(e.spec.stages[0].matrix, (std::vector<std::pair<std::string, std::string>>{{"text", "int8"}, {"value", "1"}}));
}

TEST(PipelineSpec, MatrixConsumersZipAllOrSelect) {
  TempDir d;
  Experiment e = load(d,
                      "experiment: z\n"
                      "stages:\n"
                      "  q: {type: test_emit, matrix: {text: [a, b]}}\n"
                      "  zip: {type: test_emit, matrix: {text: [a, b]}, inputs: {in: q.out}}\n"
                      "  all: {type: test_emit, inputs: {in: q.out}}\n"
                      "  one: {type: test_emit, inputs: {model: 'm[text=b].model'}}\n"
                      "  m: {type: test_model, matrix: {text: [a, b]}, params: {content: '${matrix.text}'}}\n");
  const Spec& s = e.spec;
  auto idx = [&](const std::string& id) {
    for (std::size_t i = 0; i < s.stages.size(); ++i) {
      if (s.stages[i].id == id) return i;
    }
    throw std::runtime_error(id);
  };
  auto bound = [&](const std::string& id, const std::string& port) {
    std::vector<std::string> v;
    for (const auto& in : e.dag.nodes[idx(id)].inputs.at(port)) v.push_back(s.stages[in.producer].id);
    return v;
  };
  EXPECT_EQ(bound("zip[text=a]", "in"), std::vector<std::string>{"q[text=a]"});
  EXPECT_EQ(bound("zip[text=b]", "in"), std::vector<std::string>{"q[text=b]"});
  EXPECT_EQ(bound("all", "in"), (std::vector<std::string>{"q[text=a]", "q[text=b]"}));
  EXPECT_EQ(bound("one", "model"), std::vector<std::string>{"m[text=b]"});
}

// ---- errors, one kind per test, then all together ---------------------------

TEST(PipelineSpecErrors, YamlSyntaxErrorHasPlace) {
  TempDir d;
  ErrorKind k{};
  std::string m = load_error(d, "experiment: x\nstages:\n  a: [1, 2\n", &k);
  EXPECT_EQ(k, ErrorKind::kSpec);
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:1: YAML syntax error: end of sequence flow not found"));
}

TEST(PipelineSpecErrors, UnknownKeysAtEveryLevel) {
  TempDir d;
  ErrorKind k{};
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stagse: {}\n"
                             "stages:\n"
                             "  a:\n"
                             "    type: test_emit\n"
                             "    parms: {value: 1}\n"
                             "settings: {thread: 2}\n"
                             "gates:\n"
                             "  - {name: g, metric: a.value, op: '>=', value: 1, valeu: 2}\n"
                             "report: {titel: t}\n",
                             &k);
  EXPECT_EQ(k, ErrorKind::kSpec);
  EXPECT_THAT(m, HasSubstr("spec.yaml:2:1: unknown key 'stagse' in the spec's top level (did you mean 'stages'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:6:5: unknown key 'parms' in stage 'a' (did you mean 'params'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:7:12: unknown key 'thread' in 'settings' (did you mean 'threads'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:9:52: unknown key 'valeu' in gate 'g' (did you mean 'value'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:10:10: unknown key 'titel' in 'report' (did you mean 'title'?)"));
  EXPECT_THAT(m, HasSubstr("5 errors"));
}

TEST(PipelineSpecErrors, WrongTypes) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a:\n"
                             "    type: test_emit\n"
                             "    params: {value: high, sleep_ms: 1.5, fail: maybe, tags: 3, metrics: [1], text: {a: 1}}\n"
                             "  b: [not, a, map]\n"
                             "  c: {type: test_emit, params: {fail_kind: runtim}}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:21: stage 'a' (test_emit): param 'value' (float): expected a number, got 'high'"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:37: stage 'a' (test_emit): param 'sleep_ms' (int): expected an integer, got '1.5'"));
  EXPECT_THAT(m, HasSubstr("param 'fail' (bool): expected true or false, got 'maybe'"));
  EXPECT_THAT(m, HasSubstr("param 'tags' (list): expected a list, got a scalar"));
  EXPECT_THAT(m, HasSubstr("param 'metrics' (map): expected a map, got a list"));
  EXPECT_THAT(m, HasSubstr("param 'text' (string): expected string, got a map"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:6:6: stage 'b' must be a map, got a list"));
  EXPECT_THAT(m, HasSubstr("param 'fail_kind' (string): 'runtim' is not one of 'runtime', 'input', 'unsupported' (did you mean 'runtime'?)"));
}

TEST(PipelineSpecErrors, UnknownStageTypeSuggests) {
  TempDir d;
  ErrorKind k{};
  std::string m = load_error(d, "experiment: x\nstages:\n  a: {type: test_emt}\n", &k);
  EXPECT_EQ(k, ErrorKind::kSpec);
  EXPECT_THAT(m, HasSubstr("spec.yaml:3:13: stage 'a': unknown stage type 'test_emt' (did you mean 'test_emit'?); known types:"));
}

TEST(PipelineSpecErrors, UnknownAndMissingParamsAndPorts) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a: {type: test_emit, params: {valeu: 1}, inputs: {inn: b.out}}\n"
                             "  b: {type: test_file}\n"
                             "  c: {type: test_emit, inputs: {in: b}}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:3:33: stage 'a' (test_emit): unknown param 'valeu' (did you mean 'value'?); 'test_emit' reads: 'value', "));
  EXPECT_THAT(m, HasSubstr("spec.yaml:3:53: stage 'a' (test_emit): unknown input 'inn' (did you mean 'in'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:3: stage 'b' (test_file): missing required param 'file' (path: any file)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:37: stage 'c' (test_emit): input 'in': 'b' names no output: expected '<stage>.<output>'"));
}

TEST(PipelineSpecErrors, EmptyAndDuplicateMatrixValues) {
  TempDir d;
  ErrorKind k{};
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a: {type: test_emit, matrix: {text: []}}\n"
                             "  b: {type: test_emit, matrix: {text: [x, x]}}\n"
                             "  c: {type: test_emit, matrix: {text: notalist}}\n",
                             &k);
  EXPECT_EQ(k, ErrorKind::kSpec);
  EXPECT_THAT(m, HasSubstr("spec.yaml:3:33: stage 'a' (test_emit): matrix axis 'text' is empty; every axis needs at least one value"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:43: stage 'b' (test_emit): matrix axis 'text' lists 'x' twice"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:39: stage 'c' (test_emit): matrix axis 'text' must be a list of values, got a scalar"));
}

TEST(PipelineSpecErrors, VariablesPresetsIncludes) {
  TempDir d;
  d.write("frag.yaml", "presets: {fast: {sleep_ms: 0, bogus: 1}}\nmodels: {resnet8: {path: x.onnx}}\n");
  std::string m = load_error(d,
                             "experiment: x\n"
                             "include: [frag.yaml, nothere.yaml]\n"
                             "stages:\n"
                             "  a: {type: test_emit, preset: fsat, params: {text: '${models.resnet9.path}'}}\n"
                             "  b: {type: test_emit, preset: fast, params: {text: '${matrix.t}'}}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:2:22: included file 'nothere.yaml' not found"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:32: stage 'a' (test_emit): unknown preset 'fsat' (did you mean 'fast'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:53: unknown variable '${models.resnet9.path}': 'models' has no 'resnet9' (did you mean 'resnet8'?)"));
  EXPECT_THAT(m, HasSubstr("frag.yaml:1:31: stage 'b' (test_emit): unknown param 'bogus' (from preset 'fast')"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:53: '${matrix.t}' used outside a stage with a matrix"));
}

TEST(PipelineSpecErrors, GatesOnUnknownStagesAndMetrics) {
  TempDir d;
  ErrorKind k{};
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  eval: {type: test_eval, params: {accuracy: 0.9}}\n"
                             "gates:\n"
                             "  - {name: g1, metric: evl.overall.accuracy, op: '>=', value: 0.85}\n"
                             "  - {name: g2, metric: eval.overal.accuracy, op: '>=', value: 0.85}\n"
                             "  - {name: g3, for_each: test_evl, metric: overall.accuracy, op: '>=', value: 0.85}\n"
                             "  - {name: g4, metric: eval.overall.accuracy, op: '=>', value: high}\n"
                             "  - {name: g5, for_each: test_emit, metric: value, op: '>=', value: 1}\n"
                             "  - {name: g6, metric: eval.overall.accuracy, op: '>='}\n",
                             &k);
  EXPECT_EQ(k, ErrorKind::kSpec);
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:24: gate 'g1': metric 'evl.overall.accuracy': no stage 'evl' (did you mean 'eval'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:6:24: gate 'g2': unknown metric 'overal' for 'eval' (eval output 'eval') (did you mean 'overall'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:7:26: gate 'g3': for_each names unknown stage type 'test_evl' (did you mean 'test_eval'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:8:51: gate 'g4': unknown op '=>' (did you mean '>='?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:8:64: gate 'g4': 'value' must be a number, got 'high'"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:9:26: gate 'g5': for_each: no stage of type 'test_emit' in this experiment"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:10:5: gate 'g6': missing key 'value'"));
}

TEST(PipelineSpecErrors, ReportSectionsAndTopLevel) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: 'bad name!'\n"
                             "stages:\n"
                             "  e: {type: test_eval, params: {accuracy: 0.9}}\n"
                             "report:\n"
                             "  sections:\n"
                             "    - milestone\n"
                             "    - gatez\n"
                             "    - {kind: milestone, baseline: nope}\n"
                             "    - {kind: text, bdy: x}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:1:13: experiment name 'bad name!' must match"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:7:7: unknown report section kind 'gatez' (did you mean 'gates'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:8:7: report section 'milestone': baseline: no stage 'nope'"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:9:20: unknown key 'bdy' in report section 'text' (did you mean 'body'?)"));
}

TEST(PipelineSpecErrors, DuplicateKeysAndEmptyFiles) {
  TempDir d;
  std::string m = load_error(d, "experiment: x\nstages:\n  a: {type: test_emit}\n  a: {type: test_emit}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:3: duplicate key 'a' (first at " + (d / "spec.yaml").string() + ":3:3)"));
  m = load_error(d, "");
  EXPECT_THAT(m, HasSubstr("the file is empty"));
  m = load_error(d, "stages: {}\n");
  EXPECT_THAT(m, HasSubstr("missing key 'experiment'"));
  EXPECT_THAT(m, HasSubstr("the spec defines no stages"));
  try {
    load_experiment(d / "nope.yaml", registry());
    FAIL() << "expected an error";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSpec);
    EXPECT_THAT(e.what(), HasSubstr("nope.yaml: cannot open"));
  }
}

TEST(PipelineSpecErrors, AllErrorsInOneMessageEachOnItsLine) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a: {type: test_emt}\n"
                             "  b: {type: test_emit, params: {valeu: 1}}\n"
                             "  c: {type: test_emit, matrix: {text: []}}\n"
                             "  d: {type: test_emit, inputs: {in: nothere.out}}\n"
                             "gates:\n"
                             "  - {name: g, metric: zz.x, op: '>=', value: 1}\n");
  auto lines = error_lines(m);
  ASSERT_EQ(lines.size(), 5u) << m;
  EXPECT_THAT(m, HasSubstr("spec.yaml: 5 errors:"));
  for (const auto& l : lines) EXPECT_THAT(l, HasSubstr("spec.yaml:")) << l;
}

}  // namespace
}  // namespace qpipe
