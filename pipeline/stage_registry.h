#pragma once
// Stage types and the explicit table that holds them (STYLE.md 3 and 7: no
// hidden static self-registration). A stage type declares, like a DVC stage:
// its name and code version, the exact set of params it reads (each with a
// kind, required/default and a doc line), its input ports and output ports
// (each with an artifact type), and run(StageContext&).
//
// The declarations are the contract the rest of the framework enforces:
// specs may set only declared params (and must set the required ones), with
// the declared kind; inputs may only bind declared ports to producers of a
// compatible artifact type; the StageContext refuses to hand out undeclared
// params or accept undeclared outputs; the cache key covers the version, the
// param values, the input hashes and the content of files named by `path`
// params. Bump `version` whenever a change in the code changes its outputs.
//
// Registration: stages/registry.cc defines register_builtin_stages(), which
// adds every stage type, one line each.

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "pipeline/artifact.h"
#include "pipeline/report_section.h"

namespace qpipe {

class StageContext;

enum class ParamKind { kString, kInt, kFloat, kBool, kList, kMap, kPath };
const char* param_kind_name(ParamKind k);

struct ParamDecl {
  ParamDecl() = default;
  // Positional form used by stage declarations:
  //   {"batch", ParamKind::kInt, false, 32, "images per batch"}
  //   {"split", ParamKind::kString, false, "test", "test or train", {"test", "train"}}
  ParamDecl(std::string name_, ParamKind kind_, bool required_ = false, nlohmann::json default_value_ = nullptr,
            std::string doc_ = "", std::vector<std::string> choices_ = {}, bool must_exist_ = true)
      : name(std::move(name_)), kind(kind_), required(required_), default_value(std::move(default_value_)),
        doc(std::move(doc_)), choices(std::move(choices_)), must_exist(must_exist_) {}

  std::string name;
  ParamKind kind = ParamKind::kString;
  bool required = false;
  nlohmann::json default_value = nullptr;  // null: no default (unset unless given)
  std::string doc;
  std::vector<std::string> choices;  // kString: allowed values (empty = any)
  bool must_exist = true;            // kPath: the file/folder must exist before the run
};

struct PortDecl {
  PortDecl() = default;
  // {"model", "model", false, false, "the model to evaluate"}
  PortDecl(std::string name_, std::string type_, bool optional_ = false, bool multiple_ = false, std::string doc_ = "")
      : name(std::move(name_)), type(std::move(type_)), optional(optional_), multiple(multiple_), doc(std::move(doc_)) {}

  std::string name;
  std::string type;       // an artifact type name (see artifact.h), or "any"
  bool optional = false;  // inputs: may be left unbound; outputs: may be left unwritten
  bool multiple = false;  // inputs: accepts a list of artifacts (e.g. every variant)
  std::string doc;
};

struct StageType {
  std::string name;
  std::string version = "1";
  std::string description;
  std::vector<ParamDecl> params;
  std::vector<PortDecl> inputs;
  std::vector<PortDecl> outputs;
  std::function<void(StageContext&)> run;

  const ParamDecl* find_param(std::string_view n) const;
  const PortDecl* find_input(std::string_view n) const;
  const PortDecl* find_output(std::string_view n) const;
  std::vector<std::string> param_names() const;
  std::vector<std::string> input_names() const;
  std::vector<std::string> output_names() const;
};

class StageRegistry {
 public:
  // Starts with the built-in artifact types and report section kinds.
  StageRegistry();

  // Adds a stage type. Throws PtqError(kRuntime) when the name is taken or
  // the declaration is inconsistent (duplicate param/port names, unknown
  // artifact type, default of the wrong kind, no run function).
  void add(StageType type);
  void add_artifact_type(ArtifactType type);
  void add_section_kind(SectionKind kind);

  const StageType* find(std::string_view name) const;
  const ArtifactType* artifact_type(std::string_view name) const;
  const SectionKind* section_kind(std::string_view name) const;

  const std::vector<StageType>& stage_types() const { return stages_; }
  const std::vector<SectionKind>& section_kinds() const { return sections_; }
  std::vector<std::string> stage_type_names() const;
  std::vector<std::string> section_kind_names() const;

 private:
  std::vector<StageType> stages_;
  std::vector<ArtifactType> artifacts_;
  std::vector<SectionKind> sections_;
};

// Checks a JSON value against a param's kind; returns "" or what is wrong
// ("expected an integer, got a string").
std::string check_param_value(const ParamDecl& decl, const nlohmann::json& value);

}  // namespace qpipe

// Defined in stages/registry.cc: every production stage type, one line each.
namespace qpipe {
void register_builtin_stages(StageRegistry& registry);
// Defined in stages/test_stages.cc: stage types for the framework's own tests
// (test_emit, test_eval, test_model, test_file). The CLI adds them only when
// QPIPE_ENABLE_TEST_STAGES=1.
void register_test_stages(StageRegistry& registry);
}  // namespace qpipe
