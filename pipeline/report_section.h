#pragma once
// How report sections are contributed. Three ways, from least to most work
// for a stage author:
//  1. Write a top-level "metrics" object of numbers into a JSON output: the
//     numbers land in report.json "metrics" (and `qpipe compare` diffs them).
//  2. Write a top-level "report" object into a JSON output:
//       {"title": "...", "markdown": "...", "figures": ["<output port>", ...]}
//     and it becomes a section of report.md (the "fragments" section kind);
//     the named figure outputs (SVG) are copied next to report.md.
//  3. Register a SectionKind for an artifact type (StageRegistry::
//     add_section_kind): a renderer that sees every artifact of that type in
//     the run (in spec order) and returns markdown + structured data, e.g. the
//     milestone table over all `eval` results.
//
// Metric names that `qpipe compare` understands: "accuracy" (fraction),
// "class/<name>/accuracy", "sqnr_db/<tensor>"; others are shown, not judged.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/artifact.h"

namespace qpipe {

// One artifact of a finished stage, as section renderers see it.
struct ReportItem {
  std::string stage_id;
  std::string stage_type;
  std::string port;
  Artifact artifact;
  nlohmann::json data;  // parsed JSON for JSON kinds, null otherwise
  std::vector<std::pair<std::string, std::string>> matrix;  // axis values of the stage
  std::map<std::string, Artifact> stage_outputs;  // every output of the same stage
};

struct Figure {
  std::filesystem::path source;  // file to copy
  std::string name;              // file name under <report dir>/figures/
  std::string caption;
};

struct RenderedSection {
  std::string kind;
  std::string title;
  std::string markdown;   // body without heading; figures referenced as figures/<name>
  nlohmann::json data;    // structured content, stored in report.json "sections"
  std::vector<Figure> figures;
};

struct SectionInput {
  const nlohmann::json& config;          // the section's entry in the spec (kind, title, ...)
  const std::vector<ReportItem>& items;  // every artifact of the kind's type, spec order
};

// Returns nothing when there is nothing to show (no such artifacts).
using SectionRenderer = std::function<std::optional<RenderedSection>(const SectionInput&)>;

struct SectionKind {
  std::string name;           // used in the spec: report.sections[].kind
  std::string artifact_type;  // whose artifacts it renders ("" = none)
  std::string description;
  std::vector<std::string> config_keys;  // keys allowed in its spec entry besides kind/title
  SectionRenderer render;
};

}  // namespace qpipe
