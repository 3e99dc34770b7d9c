#pragma once
// The experiment's dependency graph, built and validated once before anything
// runs (STYLE.md 7, 9; DVC build_graph + check_acyclic). Edges come from input
// references ("<stage>.<output>") and `needs`. Validation reports every
// problem at once, naming every stage involved:
//  - missing producers: a reference to an undefined stage or to an output its
//    type does not have;
//  - two producers of one output: a stage id defined twice (in two files, or
//    a matrix producing the same variant twice);
//  - type mismatches: a consumer port expecting another artifact type;
//  - ambiguous matrix references (a single-artifact port bound to several
//    variants);
//  - cycles, each named with every stage on it.
//
// Matrix references: a reference to matrix stage B from stage C binds the
// variants of B that agree with C on every axis they share (C[act=int8]
// consumes B[act=int8]); an explicit selector B[axis=value] narrows further.
// A port declared `multiple` takes all the matching variants, in spec order.

#include <cstddef>
#include <map>
#include <string>
#include <vector>

#include "pipeline/spec.h"

namespace qpipe {

struct DagInput {
  std::size_t producer;  // index into Spec::stages
  std::string port;      // the producer's output port
};

struct DagNode {
  std::map<std::string, std::vector<DagInput>> inputs;  // consumer port -> bound artifacts
  std::vector<std::size_t> deps;        // producers and needs, sorted, unique
  std::vector<std::size_t> dependents;  // sorted, unique
};

struct Dag {
  std::vector<DagNode> nodes;     // parallel to Spec::stages
  std::vector<std::size_t> topo;  // topological order; ties broken by spec order

  // Every stage that (transitively) depends on `i`.
  std::vector<std::size_t> downstream(std::size_t i) const;
};

// Builds the graph; problems go to `diag`. The returned Dag is usable (with
// a complete topo order) only when no error was added.
Dag build_dag(const Spec& spec, const StageRegistry& registry, Diagnostics& diag);

// GraphViz DOT of the graph. `notes` (optional, parallel to stages) adds a
// line to each node label and colors it: reused nodes green, others orange.
std::string dag_to_dot(const Spec& spec, const Dag& dag, const std::vector<std::string>* notes = nullptr,
                       const std::vector<bool>* reused = nullptr);

}  // namespace qpipe
