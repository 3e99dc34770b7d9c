#pragma once
// Experiment specs: YAML in, a validated, matrix-expanded Spec out. The format
// is documented in docs/spec.md. Loading checks everything that can be checked
// without running anything and reports ALL problems in one PtqError(kSpec),
// one line each, "file:line:col: what is wrong (did you mean ...?)":
// YAML syntax, unknown keys at every level, wrong value types, unknown stage
// types, unknown or missing params, unknown input ports, malformed stage
// references, unknown presets/variables, empty matrix axes, gates on unknown
// stages or metrics, unknown report sections. Graph-level checks (missing
// producers, cycles, type mismatches) are in dag.h; load_experiment() in
// pipeline.h runs both and reports their errors together.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "pipeline/stage_registry.h"

namespace qpipe {

struct SourceLoc {
  std::string file;
  int line = 0;  // 1-based; 0 = unknown
  int col = 0;
  std::string str() const;  // "file:line:col" (or "file")
};

// Collects errors; throw_if_any() throws one PtqError listing all of them.
// Identical messages at the same place are kept once (a typo inside a matrix
// stage is reported once, not once per variant).
class Diagnostics {
 public:
  void error(const SourceLoc& loc, const std::string& message);
  void error(const std::string& message);
  bool empty() const { return messages_.empty(); }
  std::size_t size() const { return messages_.size(); }
  const std::vector<std::string>& messages() const { return messages_; }
  void throw_if_any(ErrorKind kind, const std::string& subject) const;

 private:
  std::vector<std::string> messages_;
  std::set<std::string> seen_;
};

// Where a spec lives and what ${repo} / ${shared} mean for it.
struct SpecPaths {
  std::filesystem::path spec_file;  // as given
  std::filesystem::path spec_dir;   // absolute
  std::filesystem::path repo_root;  // $QPIPE_ROOT, else the first ancestor of the spec
                                    // holding CMakeLists.txt and .git, else spec_dir
  bool repo_found = false;
  std::filesystem::path shared;     // $QPIPE_SHARED, else <repo_root>/../shared
};
SpecPaths resolve_spec_paths(const std::filesystem::path& spec_file);

// "stage", "stage.port", "stage[axis=value,...].port".
struct StageRef {
  std::string stage;
  std::vector<std::pair<std::string, std::string>> selector;
  std::string port;  // empty when no port was written
  std::string text;  // as written
  SourceLoc loc;
};
// Parses `text`; returns "" or what is wrong.
std::string parse_stage_ref(std::string_view text, bool want_port, StageRef& out);
// "base[a=x,b=y]" (or "base" without axes).
std::string variant_id(const std::string& base,
                       const std::vector<std::pair<std::string, std::string>>& matrix);

struct StageSpec {
  std::string id;       // variant id for matrix stages
  std::string base_id;  // the id as written in the spec
  std::string type;
  const StageType* stage_type = nullptr;  // null when the type is unknown
  std::string desc;
  std::vector<std::pair<std::string, std::string>> matrix;  // axis -> value, declared order
  nlohmann::json params = nlohmann::json::object();  // typed, defaults applied, paths absolute
  std::map<std::string, std::vector<StageRef>> inputs;
  std::vector<StageRef> needs;
  SourceLoc loc;             // the stage's key in the spec
  std::filesystem::path dir; // folder of the file that defines it
};

// One path segment of a metric: key, key[3], key[*], key[field=value].
struct MetricSeg {
  enum class Select { kNone, kIndex, kAll, kMatch };
  std::string key;
  Select select = Select::kNone;
  std::size_t index = 0;
  std::string match_field, match_value;
};

struct GateSpec {
  std::string name;
  std::string desc;
  std::string metric;                 // as written
  std::string port;                   // the output port the metric reads
  std::vector<MetricSeg> path;        // inside that output's JSON
  std::string op;                     // >= <= > < == !=
  nlohmann::json value;               // required value
  std::vector<std::string> stages;    // every stage the gate applies to (variant ids)
  std::string drop_vs;                // baseline stage id: measured = (baseline - stage) * 100 pp
  SourceLoc loc;
};

struct SectionSpec {
  std::string kind;
  nlohmann::json config;  // the whole entry, "kind" included
  SourceLoc loc;
};

struct ReportSpec {
  std::string title;
  bool sections_given = false;  // false: the default section list
  std::vector<SectionSpec> sections;
};

struct Settings {
  int threads = 0;  // 0 = all cores
  int batch_size = 100;
};

struct Spec {
  SpecPaths paths;
  std::string experiment;
  std::string description;
  std::vector<StageSpec> stages;  // spec order (includes first), matrix expanded
  std::vector<GateSpec> gates;
  ReportSpec report;
  Settings settings;
  std::vector<std::pair<std::string, std::string>> source_files;  // (path, sha256), spec first
  std::string sha256;  // over all source files' contents

  const StageSpec* find_stage(std::string_view id) const;
  std::vector<std::string> stage_ids() const;
  std::vector<std::string> base_ids() const;
};

// Loads and validates; adds every problem to `diag` (never throws for spec
// problems). The returned Spec holds whatever could be understood.
Spec load_spec(const std::filesystem::path& spec_file, const StageRegistry& registry, Diagnostics& diag);

// Section kinds rendered by the framework itself (besides the registry's).
struct FrameworkSection {
  const char* name;
  const char* description;
  std::vector<std::string> config_keys;
};
const std::vector<FrameworkSection>& framework_section_kinds();

}  // namespace qpipe
