// DAG validation: cycles, missing producers, duplicate outputs, type
// mismatches and ambiguous matrix references — each named with every stage
// involved, all reported in one error — plus a deterministic topological
// order and the DOT dump.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "pipeline/dag.h"
#include "tests/pipeline_test_util.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;

using pipetest::load_error;
using pipetest::registry;
using pipetest::TempDir;
using ::testing::HasSubstr;

TEST(PipelineDag, CycleNamesEveryStage) {
  TempDir d;
  ErrorKind k{};
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a: {type: test_emit, inputs: {in: c.out}}\n"
                             "  b: {type: test_emit, inputs: {in: a.out}}\n"
                             "  c: {type: test_emit, needs: [b]}\n"
                             "  ok: {type: test_emit}\n"
                             "  self: {type: test_emit, inputs: {in: self.out}}\n",
                             &k);
  EXPECT_EQ(k, ErrorKind::kSpec);
  EXPECT_THAT(m, HasSubstr("spec.yaml:3:3: cycle between stages 'a', 'b', 'c': a -> b -> c -> a"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:7:3: cycle: stage 'self' depends on itself"));
  EXPECT_THAT(m, ::testing::Not(HasSubstr("'ok'")));
}

TEST(PipelineDag, MissingProducers) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a: {type: test_emit}\n"
                             "  b: {type: test_emit, inputs: {in: aa.out}}\n"
                             "  c: {type: test_emit, inputs: {in: a.outt}}\n"
                             "  d: {type: test_emit, needs: [zz]}\n"
                             "  m: {type: test_emit, matrix: {text: [p, q]}}\n"
                             "  e: {type: test_emit, inputs: {in: 'm[text=r].out'}}\n"
                             "  f: {type: test_emit, inputs: {in: 'm[txt=p].out'}}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:4:37: missing producer: stage 'b' input 'in' refers to 'aa.out', but no stage 'aa' is "
                           "defined (did you mean 'a'?)"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:37: missing producer: stage 'c' input 'in' refers to 'a.outt', but stage 'a' (test_emit) "
                           "has no output 'outt' (did you mean 'out'?); its outputs: 'out'"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:6:32: missing producer: stage 'd' needs 'zz', but no stage 'zz' is defined"));
  EXPECT_THAT(m, HasSubstr("spec.yaml:8:37: missing producer: stage 'e' input 'in' refers to 'm[text=r].out', but no variant of "
                           "'m' matches; variants: 'm[text=p]', 'm[text=q]'"));
  EXPECT_THAT(m, HasSubstr("stage 'f' input 'in' refers to 'm[txt=p].out': stage 'm' has no matrix axis 'txt' (did you mean 'text'?)"));
}

TEST(PipelineDag, DuplicateOutputsNameEveryDefinition) {
  TempDir d;
  d.write("frag.yaml", "stages:\n  a: {type: test_model}\n");
  std::string m = load_error(d,
                             "experiment: x\n"
                             "include: [frag.yaml]\n"
                             "stages:\n"
                             "  a: {type: test_model, params: {content: other}}\n");
  EXPECT_THAT(m, HasSubstr("duplicate output: stage 'a' is defined 2 times (" + (d / "frag.yaml").string() + ":2:3, " +
                           (d / "spec.yaml").string() + ":4:3), so a.model would have 2 producers; rename all but one"));
}

TEST(PipelineDag, TypeMismatchNamesBothEnds) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  ev: {type: test_eval, params: {accuracy: 0.5}}\n"
                             "  mo: {type: test_model}\n"
                             "  c: {type: test_emit, inputs: {model: ev.eval, in: [ev.eval, mo.model]}}\n");
  EXPECT_THAT(m, HasSubstr("spec.yaml:5:40: type mismatch: stage 'c' (test_emit) input 'model' expects a 'model' artifact, but "
                           "'ev.eval' (stage 'ev', test_eval) is a 'eval' artifact"));
  EXPECT_THAT(m, HasSubstr("type mismatch: stage 'c' (test_emit) input 'in' expects a 'json' artifact, but 'mo.model' (stage 'mo', "
                           "test_model) is a 'model' artifact"));
  // A 'json' port accepts any JSON kind (ev.eval into 'in' is fine).
  EXPECT_THAT(m, ::testing::Not(HasSubstr("input 'in' expects a 'json' artifact, but 'ev.eval'")));
}

TEST(PipelineDag, AmbiguousMatrixReference) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  m: {type: test_model, matrix: {content: [a, b]}}\n"
                             "  c: {type: test_emit, inputs: {model: m.model}}\n");
  EXPECT_THAT(m, HasSubstr("stage 'c' input 'model' takes one artifact, but 'm.model' matches 2 variants ('m[content=a]', "
                           "'m[content=b]'); give 'c' the same matrix axes ('content') or select one, e.g. "
                           "'m[content=a].model'"));
}

TEST(PipelineDag, AllGraphProblemsAtOnce) {
  TempDir d;
  std::string m = load_error(d,
                             "experiment: x\n"
                             "stages:\n"
                             "  a: {type: test_emit, inputs: {in: b.out}}\n"
                             "  b: {type: test_emit, inputs: {in: a.out}}\n"
                             "  c: {type: test_emit, inputs: {in: nothere.out}}\n"
                             "  mo: {type: test_model}\n"
                             "  e: {type: test_emit, inputs: {in: mo.model}}\n");
  EXPECT_THAT(m, HasSubstr("3 errors"));
  EXPECT_THAT(m, HasSubstr("cycle between stages 'a', 'b'"));
  EXPECT_THAT(m, HasSubstr("no stage 'nothere'"));
  EXPECT_THAT(m, HasSubstr("type mismatch: stage 'e'"));
}

TEST(PipelineDag, TopologicalOrderIsDeterministicAndDotLists) {
  TempDir d;
  Experiment e = load_experiment(d.write("spec.yaml",
                                         "experiment: x\n"
                                         "stages:\n"
                                         "  late: {type: test_emit, inputs: {in: [mid.out, early.out]}}\n"
                                         "  mid: {type: test_emit, inputs: {in: early.out}}\n"
                                         "  early: {type: test_emit}\n"
                                         "  solo: {type: test_emit, needs: early}\n"),
                                 registry());
  std::vector<std::string> order;
  for (std::size_t i : e.dag.topo) order.push_back(e.spec.stages[i].id);
  EXPECT_EQ(order, (std::vector<std::string>{"early", "mid", "late", "solo"}));
  EXPECT_EQ(e.dag.downstream(2), (std::vector<std::size_t>{0, 1, 3}));
  std::string dot = dag_to_dot(e.spec, e.dag);
  EXPECT_THAT(dot, HasSubstr("digraph \"x\""));
  EXPECT_THAT(dot, HasSubstr("n2 [label=\"early\\ntest_emit\""));
  EXPECT_THAT(dot, HasSubstr("n1 -> n0 [label=\"out→in\"]"));
  EXPECT_THAT(dot, HasSubstr("n2 -> n3 [style=dashed]"));
}

}  // namespace
}  // namespace qpipe
