#include "pipeline/stage_registry.h"

#include <regex>
#include <set>

#include "engine/error.h"
#include "pipeline/report.h"
#include "pipeline/text_util.h"

namespace qpipe {

const char* param_kind_name(ParamKind k) {
  switch (k) {
    case ParamKind::kString: return "string";
    case ParamKind::kInt: return "int";
    case ParamKind::kFloat: return "float";
    case ParamKind::kBool: return "bool";
    case ParamKind::kList: return "list";
    case ParamKind::kMap: return "map";
    case ParamKind::kPath: return "path";
  }
  return "?";
}

namespace {
template <typename V>
std::vector<std::string> names_of(const V& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.name);
  return out;
}
template <typename V>
auto find_named(const V& v, std::string_view n) -> decltype(&v.front()) {
  for (const auto& x : v) {
    if (x.name == n) return &x;
  }
  return nullptr;
}
}  // namespace

const ParamDecl* StageType::find_param(std::string_view n) const { return find_named(params, n); }
const PortDecl* StageType::find_input(std::string_view n) const { return find_named(inputs, n); }
const PortDecl* StageType::find_output(std::string_view n) const { return find_named(outputs, n); }
std::vector<std::string> StageType::param_names() const { return names_of(params); }
std::vector<std::string> StageType::input_names() const { return names_of(inputs); }
std::vector<std::string> StageType::output_names() const { return names_of(outputs); }

std::string check_param_value(const ParamDecl& decl, const nlohmann::json& v) {
  auto got = [&] { return std::string(v.type_name()); };
  switch (decl.kind) {
    case ParamKind::kString:
      if (!v.is_string()) return "expected a string, got " + got();
      if (!decl.choices.empty()) {
        std::string s = v.get<std::string>();
        bool ok = false;
        for (const auto& c : decl.choices) ok = ok || c == s;
        if (!ok) {
          return fmt::format("'{}' is not one of {}{}", s, quoted_list(decl.choices),
                             did_you_mean(s, decl.choices));
        }
      }
      return "";
    case ParamKind::kPath:
      return v.is_string() ? "" : "expected a path (string), got " + got();
    case ParamKind::kInt:
      return v.is_number_integer() ? "" : "expected an integer, got " + got();
    case ParamKind::kFloat:
      return v.is_number() ? "" : "expected a number, got " + got();
    case ParamKind::kBool:
      return v.is_boolean() ? "" : "expected true or false, got " + got();
    case ParamKind::kList:
      return v.is_array() ? "" : "expected a list, got " + got();
    case ParamKind::kMap:
      return v.is_object() ? "" : "expected a map, got " + got();
  }
  return "";
}

StageRegistry::StageRegistry() {
  for (auto& t : builtin_artifact_types()) add_artifact_type(std::move(t));
  register_framework_sections(*this);
}

void StageRegistry::add(StageType t) {
  static const std::regex kName("[a-z][a-z0-9_]*");
  auto bad = [&](const std::string& what) {
    fail(ErrorKind::kRuntime, "cannot register stage type '{}': {}", t.name, what);
  };
  if (!std::regex_match(t.name, kName)) bad("names are lowercase [a-z][a-z0-9_]*");
  if (find(t.name)) bad("a stage type with this name is already registered");
  if (t.version.empty()) bad("empty version");
  if (!t.run) bad("no run function");
  std::set<std::string> seen;
  for (const auto& p : t.params) {
    if (p.name.empty() || !seen.insert(p.name).second) bad("duplicate or empty param name '" + p.name + "'");
    if (!p.default_value.is_null()) {
      std::string err = check_param_value(p, p.default_value);
      if (!err.empty()) bad("default of param '" + p.name + "': " + err);
    }
    if (p.required && !p.default_value.is_null()) bad("param '" + p.name + "' is required and has a default");
  }
  for (const auto* ports : {&t.inputs, &t.outputs}) {
    seen.clear();
    for (const auto& p : *ports) {
      if (p.name.empty() || p.name.find_first_of(".[]") != std::string::npos || !seen.insert(p.name).second) {
        bad("duplicate or invalid port name '" + p.name + "'");
      }
      if (p.type != "any" && !artifact_type(p.type)) bad("port '" + p.name + "' has unknown artifact type '" + p.type + "'");
      if (ports == &t.outputs && p.type == "any") bad("output '" + p.name + "' must have a concrete type");
      if (ports == &t.outputs && p.multiple) bad("output '" + p.name + "' cannot be 'multiple'");
    }
  }
  stages_.push_back(std::move(t));
}

void StageRegistry::add_artifact_type(ArtifactType t) {
  if (t.name.empty() || artifact_type(t.name) || t.name == "any") {
    fail(ErrorKind::kRuntime, "cannot register artifact type '{}': empty or already registered", t.name);
  }
  artifacts_.push_back(std::move(t));
}

void StageRegistry::add_section_kind(SectionKind k) {
  if (k.name.empty() || section_kind(k.name)) {
    fail(ErrorKind::kRuntime, "cannot register report section kind '{}': empty or already registered", k.name);
  }
  if (!k.artifact_type.empty() && !artifact_type(k.artifact_type)) {
    fail(ErrorKind::kRuntime, "report section kind '{}' renders unknown artifact type '{}'", k.name, k.artifact_type);
  }
  if (!k.render) fail(ErrorKind::kRuntime, "report section kind '{}' has no renderer", k.name);
  sections_.push_back(std::move(k));
}

const StageType* StageRegistry::find(std::string_view name) const { return find_named(stages_, name); }
const ArtifactType* StageRegistry::artifact_type(std::string_view name) const { return find_named(artifacts_, name); }
const SectionKind* StageRegistry::section_kind(std::string_view name) const { return find_named(sections_, name); }
std::vector<std::string> StageRegistry::stage_type_names() const { return names_of(stages_); }
std::vector<std::string> StageRegistry::section_kind_names() const { return names_of(sections_); }

}  // namespace qpipe
