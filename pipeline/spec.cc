#include "pipeline/spec.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <map>
#include <optional>
#include <regex>

#include "pipeline/atomic_file.h"
#include "pipeline/sha256.h"
#include "pipeline/text_util.h"

namespace qpipe {
namespace fs = std::filesystem;
using nlohmann::json;

// ---------------------------------------------------------------------------
// Diagnostics, locations, paths, references
// ---------------------------------------------------------------------------

std::string SourceLoc::str() const {
  if (line <= 0) return file;
  return fmt::format("{}:{}:{}", file, line, col);
}

void Diagnostics::error(const SourceLoc& loc, const std::string& message) {
  std::string where = loc.str();
  error(where.empty() ? message : where + ": " + message);
}

void Diagnostics::error(const std::string& message) {
  if (seen_.insert(message).second) messages_.push_back(message);
}

void Diagnostics::throw_if_any(ErrorKind kind, const std::string& subject) const {
  if (messages_.empty()) return;
  std::string msg = fmt::format("{}: {} error{}:", subject, messages_.size(), messages_.size() == 1 ? "" : "s");
  for (const auto& m : messages_) msg += "\n  " + m;
  throw PtqError(kind, msg);
}

SpecPaths resolve_spec_paths(const fs::path& spec_file) {
  SpecPaths p;
  p.spec_file = spec_file;
  std::error_code ec;
  fs::path abs = fs::absolute(spec_file, ec).lexically_normal();
  p.spec_dir = abs.parent_path();
  if (const char* root = std::getenv("QPIPE_ROOT"); root && *root) {
    p.repo_root = fs::absolute(root, ec).lexically_normal();
    p.repo_found = true;
  } else {
    for (fs::path d = p.spec_dir; !d.empty(); d = d.parent_path()) {
      if (fs::exists(d / "CMakeLists.txt", ec) && fs::exists(d / ".git", ec)) {
        p.repo_root = d;
        p.repo_found = true;
        break;
      }
      if (d == d.parent_path()) break;
    }
    if (!p.repo_found) p.repo_root = p.spec_dir;
  }
  if (const char* sh = std::getenv("QPIPE_SHARED"); sh && *sh) {
    p.shared = fs::absolute(sh, ec).lexically_normal();
  } else {
    p.shared = (p.repo_root / ".." / "shared").lexically_normal();
  }
  // Keep a trailing-separator-free form ("/a/b" not "/a/b/").
  if (p.repo_root.has_filename() == false) p.repo_root = p.repo_root.parent_path();
  if (p.shared.has_filename() == false) p.shared = p.shared.parent_path();
  return p;
}

namespace {
const std::regex& id_regex() {
  static const std::regex r("[A-Za-z_][A-Za-z0-9_-]*");
  return r;
}
}  // namespace

std::string parse_stage_ref(std::string_view text, bool want_port, StageRef& out) {
  out = StageRef{};
  out.text = std::string(text);
  std::size_t i = 0;
  while (i < text.size() && text[i] != '[' && text[i] != '.') ++i;
  out.stage = std::string(text.substr(0, i));
  if (out.stage.empty() || !std::regex_match(out.stage, id_regex())) {
    return fmt::format("'{}' is not a stage reference: expected {}", text,
                       want_port ? "'<stage>.<output>' or '<stage>[axis=value].<output>'"
                                 : "'<stage>' or '<stage>[axis=value]'");
  }
  if (i < text.size() && text[i] == '[') {
    std::size_t close = text.find(']', i);
    if (close == std::string_view::npos) return fmt::format("'{}': unclosed '['", text);
    std::string_view inner = text.substr(i + 1, close - i - 1);
    std::size_t start = 0;
    while (start <= inner.size()) {
      std::size_t comma = inner.find(',', start);
      std::string_view item = inner.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
      std::size_t eq = item.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return fmt::format("'{}': matrix selector items are 'axis=value', got '{}'", text, item);
      }
      out.selector.emplace_back(std::string(item.substr(0, eq)), std::string(item.substr(eq + 1)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    i = close + 1;
  }
  if (i < text.size()) {
    if (text[i] != '.') return fmt::format("'{}': unexpected '{}' after the stage name", text, text[i]);
    out.port = std::string(text.substr(i + 1));
    if (!want_port) return fmt::format("'{}': expected a stage name without an output", text);
    if (out.port.empty() || !std::regex_match(out.port, id_regex())) {
      return fmt::format("'{}': '{}' is not an output name", text, out.port);
    }
  } else if (want_port) {
    return fmt::format("'{}' names no output: expected '<stage>.<output>'", text);
  }
  return "";
}

std::string variant_id(const std::string& base, const std::vector<std::pair<std::string, std::string>>& matrix) {
  if (matrix.empty()) return base;
  std::string s = base + "[";
  for (std::size_t i = 0; i < matrix.size(); ++i) {
    if (i) s += ",";
    s += matrix[i].first + "=" + matrix[i].second;
  }
  return s + "]";
}

const StageSpec* Spec::find_stage(std::string_view id) const {
  for (const auto& s : stages) {
    if (s.id == id) return &s;
  }
  return nullptr;
}

std::vector<std::string> Spec::stage_ids() const {
  std::vector<std::string> v;
  for (const auto& s : stages) v.push_back(s.id);
  return v;
}

std::vector<std::string> Spec::base_ids() const {
  std::vector<std::string> v;
  for (const auto& s : stages) {
    if (v.empty() || v.back() != s.base_id) v.push_back(s.base_id);
  }
  return v;
}

const std::vector<FrameworkSection>& framework_section_kinds() {
  static const std::vector<FrameworkSection> k = {
      {"summary", "status, run id, gate and stage counts", {}},
      {"gates", "every gate check: metric, measured, required, PASS/FAIL", {}},
      {"failures", "every failed or skipped stage with its error", {}},
      {"stages", "every stage: type, status, cache hit/miss and why, wall time, throughput", {}},
      {"environment", "CPU, threads, qpipe version and commit, input file hashes", {}},
      {"text", "free Markdown: {title, body}", {"body"}},
      {"fragments", "the 'report' objects stages wrote into their JSON outputs", {"stages"}},
  };
  return k;
}

// ---------------------------------------------------------------------------
// YAML -> a small tree that keeps source locations
// ---------------------------------------------------------------------------
namespace {

struct YVal {
  enum Kind { kNull, kScalar, kSeq, kMap };
  Kind kind = kNull;
  std::string scalar;
  bool quoted = false;
  std::vector<YVal> seq;
  std::vector<std::pair<std::string, YVal>> map;
  std::vector<SourceLoc> key_locs;
  SourceLoc loc;

  const YVal* get(std::string_view k) const {
    for (const auto& [key, v] : map) {
      if (key == k) return &v;
    }
    return nullptr;
  }
  SourceLoc key_loc(std::string_view k) const {
    for (std::size_t i = 0; i < map.size(); ++i) {
      if (map[i].first == k) return key_locs[i];
    }
    return loc;
  }
  std::vector<std::string> keys() const {
    std::vector<std::string> v;
    for (const auto& kv : map) v.push_back(kv.first);
    return v;
  }
  const char* kind_name() const {
    switch (kind) {
      case kNull: return "nothing (null)";
      case kScalar: return "a scalar";
      case kSeq: return "a list";
      case kMap: return "a map";
    }
    return "?";
  }
};

SourceLoc mark_loc(const std::string& file, const YAML::Mark& m) {
  return SourceLoc{file, m.line + 1, m.column + 1};
}

YVal convert(const YAML::Node& n, const std::string& file, Diagnostics& diag) {
  YVal v;
  v.loc = mark_loc(file, n.Mark());
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
      v.kind = YVal::kNull;
      break;
    case YAML::NodeType::Scalar:
      v.kind = YVal::kScalar;
      v.scalar = n.Scalar();
      v.quoted = n.Tag() == "!";
      break;
    case YAML::NodeType::Sequence:
      v.kind = YVal::kSeq;
      for (const auto& c : n) v.seq.push_back(convert(c, file, diag));
      break;
    case YAML::NodeType::Map:
      v.kind = YVal::kMap;
      for (auto it = n.begin(); it != n.end(); ++it) {
        SourceLoc kl = mark_loc(file, it->first.Mark());
        if (!it->first.IsScalar()) {
          diag.error(kl, "map keys must be plain names");
          continue;
        }
        std::string key = it->first.Scalar();
        if (const YVal* prev = v.get(key)) {
          (void)prev;
          diag.error(kl, fmt::format("duplicate key '{}' (first at {})", key, v.key_loc(key).str()));
          continue;
        }
        v.map.emplace_back(key, convert(it->second, file, diag));
        v.key_locs.push_back(kl);
      }
      break;
  }
  return v;
}

bool parse_int(const std::string& s, int64_t& out) {
  static const std::regex r("[-+]?[0-9]+");
  if (!std::regex_match(s, r)) return false;
  errno = 0;
  char* end = nullptr;
  long long x = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) return false;
  out = x;
  return true;
}

bool parse_float(const std::string& s, double& out) {
  static const std::regex r("[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  if (!std::regex_match(s, r)) return false;
  out = std::strtod(s.c_str(), nullptr);
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "True" || s == "TRUE") return out = true, true;
  if (s == "false" || s == "False" || s == "FALSE") return out = false, true;
  return false;
}

// YAML value -> JSON with YAML 1.2 core-schema typing of plain scalars.
json auto_json(const YVal& v) {
  switch (v.kind) {
    case YVal::kNull: return nullptr;
    case YVal::kScalar: {
      if (v.quoted) return v.scalar;
      int64_t i;
      double d;
      bool b;
      if (parse_int(v.scalar, i)) return i;
      if (parse_float(v.scalar, d)) return d;
      if (parse_bool(v.scalar, b)) return b;
      if (v.scalar == "null" || v.scalar == "~") return nullptr;
      return v.scalar;
    }
    case YVal::kSeq: {
      json a = json::array();
      for (const auto& c : v.seq) a.push_back(auto_json(c));
      return a;
    }
    case YVal::kMap: {
      json o = json::object();
      for (const auto& [k, c] : v.map) o[k] = auto_json(c);
      return o;
    }
  }
  return nullptr;
}

// Checks the keys of a map against the allowed set.
void check_keys(const YVal& m, const std::vector<std::string>& allowed, const std::string& where, Diagnostics& diag) {
  for (std::size_t i = 0; i < m.map.size(); ++i) {
    const std::string& k = m.map[i].first;
    bool ok = false;
    for (const auto& a : allowed) ok = ok || a == k;
    if (!ok) {
      diag.error(m.key_locs[i], fmt::format("unknown key '{}' in {}{}; allowed: {}", k, where,
                                            did_you_mean(k, allowed), quoted_list(allowed)));
    }
  }
}

bool expect_kind(const YVal& v, YVal::Kind kind, const std::string& what, Diagnostics& diag) {
  if (v.kind == kind) return true;
  const char* want = kind == YVal::kMap ? "a map" : kind == YVal::kSeq ? "a list" : "a scalar";
  diag.error(v.loc, fmt::format("{} must be {}, got {}", what, want, v.kind_name()));
  return false;
}

// ---------------------------------------------------------------------------
// Variable interpolation: ${shared} ${repo} ${spec_dir} ${experiment}
// ${models.x.y} ${datasets.x.y} ${presets.x.y} ${vars.x} ${matrix.axis}
// ---------------------------------------------------------------------------

struct Scope {
  const YVal* root = nullptr;  // map: models, datasets, presets, vars, and builtins
  const std::vector<std::pair<std::string, YVal>>* matrix = nullptr;
  std::vector<std::string> matrix_axes_available;  // axes (for did-you-mean) when matrix is null
};

const YVal* lookup(const Scope& scope, const std::string& ref, std::string& err) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = ref.find('.', start);
    parts.push_back(ref.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  if (parts[0] == "matrix") {
    if (parts.size() != 2) {
      err = fmt::format("'${{{}}}': use ${{matrix.<axis>}}", ref);
      return nullptr;
    }
    if (!scope.matrix) {
      err = fmt::format("'${{{}}}' used outside a stage with a matrix", ref);
      return nullptr;
    }
    std::vector<std::string> axes;
    for (const auto& [k, v] : *scope.matrix) {
      if (k == parts[1]) return &v;
      axes.push_back(k);
    }
    err = fmt::format("'${{{}}}': the stage's matrix has no axis '{}'{}; axes: {}", ref, parts[1],
                      did_you_mean(parts[1], axes), quoted_list(axes));
    return nullptr;
  }
  const YVal* cur = scope.root;
  std::string path;
  for (const auto& p : parts) {
    if (cur->kind != YVal::kMap) {
      err = fmt::format("'${{{}}}': '{}' is {}, it has no member '{}'", ref, path, cur->kind_name(), p);
      return nullptr;
    }
    const YVal* next = cur->get(p);
    if (!next) {
      std::vector<std::string> keys = cur->keys();
      if (path.empty()) keys.push_back("matrix");
      err = fmt::format("unknown variable '${{{}}}': {} has no '{}'{}", ref,
                        path.empty() ? std::string("the spec") : "'" + path + "'", p, did_you_mean(p, keys));
      return nullptr;
    }
    path += (path.empty() ? "" : ".") + p;
    cur = next;
  }
  return cur;
}

YVal substitute(const YVal& v, const Scope& scope, Diagnostics& diag, int depth = 0);

YVal substitute_scalar(const YVal& v, const Scope& scope, Diagnostics& diag, int depth) {
  const std::string& s = v.scalar;
  if (s.find('$') == std::string::npos) return v;
  if (depth > 16) {
    diag.error(v.loc, fmt::format("variable references nest too deeply (a cycle?) in '{}'", s));
    return v;
  }
  // Whole-value reference keeps the referenced value's structure and type.
  if (s.size() > 3 && s.rfind("${", 0) == 0 && s.find('}') == s.size() - 1 && s.find("${", 2) == std::string::npos) {
    std::string err;
    const YVal* r = lookup(scope, s.substr(2, s.size() - 3), err);
    if (!r) {
      diag.error(v.loc, err);
      return v;
    }
    YVal out = substitute(*r, scope, diag, depth + 1);
    if (out.kind == YVal::kScalar || out.kind == YVal::kNull) out.loc = v.loc;
    return out;
  }
  YVal out = v;
  out.scalar.clear();
  for (std::size_t i = 0; i < s.size();) {
    if (s.compare(i, 3, "$${") == 0) {
      out.scalar += "${";
      i += 3;
      continue;
    }
    if (s.compare(i, 2, "${") == 0) {
      std::size_t close = s.find('}', i);
      if (close == std::string::npos) {
        diag.error(v.loc, fmt::format("unclosed '${{' in '{}'", s));
        return v;
      }
      std::string err;
      const YVal* r = lookup(scope, s.substr(i + 2, close - i - 2), err);
      if (!r) {
        diag.error(v.loc, err);
        return v;
      }
      YVal sub = substitute(*r, scope, diag, depth + 1);
      if (sub.kind != YVal::kScalar) {
        diag.error(v.loc, fmt::format("'{}' is {}; only scalars can be embedded in text ('{}')",
                                      s.substr(i, close - i + 1), sub.kind_name(), s));
        return v;
      }
      out.scalar += sub.scalar;
      i = close + 1;
      continue;
    }
    out.scalar += s[i++];
  }
  return out;
}

YVal substitute(const YVal& v, const Scope& scope, Diagnostics& diag, int depth) {
  switch (v.kind) {
    case YVal::kNull: return v;
    case YVal::kScalar: return substitute_scalar(v, scope, diag, depth);
    case YVal::kSeq: {
      YVal o = v;
      for (auto& c : o.seq) c = substitute(c, scope, diag, depth);
      return o;
    }
    case YVal::kMap: {
      YVal o = v;
      for (auto& [k, c] : o.map) c = substitute(c, scope, diag, depth);
      return o;
    }
  }
  return v;
}

// Typed conversion of one param value. Returns nullopt (with `err`) on a
// type error; a null value means "unset".
std::optional<json> typed_param(const ParamDecl& d, const YVal& v, const fs::path& base_dir, std::string& err) {
  if (v.kind == YVal::kNull) return json(nullptr);
  auto need_scalar = [&]() {
    if (v.kind == YVal::kScalar) return true;
    err = fmt::format("expected {}, got {}", d.kind == ParamKind::kPath ? "a path" : param_kind_name(d.kind), v.kind_name());
    return false;
  };
  json out;
  switch (d.kind) {
    case ParamKind::kString:
      if (!need_scalar()) return std::nullopt;
      out = v.scalar;
      break;
    case ParamKind::kPath: {
      if (!need_scalar()) return std::nullopt;
      if (v.scalar.empty()) {
        err = "empty path";
        return std::nullopt;
      }
      fs::path p(v.scalar);
      if (p.is_relative()) p = base_dir / p;
      out = p.lexically_normal().string();
      break;
    }
    case ParamKind::kInt: {
      if (!need_scalar()) return std::nullopt;
      int64_t i;
      if (!parse_int(v.scalar, i)) {
        err = fmt::format("expected an integer, got '{}'", v.scalar);
        return std::nullopt;
      }
      out = i;
      break;
    }
    case ParamKind::kFloat: {
      if (!need_scalar()) return std::nullopt;
      double x;
      if (!parse_float(v.scalar, x)) {
        err = fmt::format("expected a number, got '{}'", v.scalar);
        return std::nullopt;
      }
      int64_t i;
      out = parse_int(v.scalar, i) ? json(static_cast<double>(i)) : json(x);
      break;
    }
    case ParamKind::kBool: {
      if (!need_scalar()) return std::nullopt;
      bool b;
      if (!parse_bool(v.scalar, b)) {
        err = fmt::format("expected true or false, got '{}'", v.scalar);
        return std::nullopt;
      }
      out = b;
      break;
    }
    case ParamKind::kList:
      if (v.kind != YVal::kSeq) {
        err = fmt::format("expected a list, got {}", v.kind_name());
        return std::nullopt;
      }
      out = auto_json(v);
      break;
    case ParamKind::kMap:
      if (v.kind != YVal::kMap) {
        err = fmt::format("expected a map, got {}", v.kind_name());
        return std::nullopt;
      }
      out = auto_json(v);
      break;
  }
  err = check_param_value(d, out);
  if (!err.empty()) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------
// The loader
// ---------------------------------------------------------------------------

struct NamedDef {
  YVal val;
  SourceLoc loc;
};

struct StageDef {
  std::string id;
  YVal val;
  SourceLoc loc;
  fs::path dir;
};

const std::vector<std::string> kDefMaps = {"models", "datasets", "presets", "vars"};
const std::vector<std::string> kRootKeys = {"experiment", "description", "include", "settings", "stages",
                                            "gates", "report", "models", "datasets", "presets", "vars"};
const std::vector<std::string> kFragmentKeys = {"description", "include", "stages", "models", "datasets",
                                                "presets", "vars"};
const std::vector<std::string> kStageKeys = {"type", "desc", "description", "params", "inputs",
                                             "needs", "matrix", "preset"};
const std::vector<std::string> kGateKeys = {"name", "desc", "metric", "op", "value", "for_each", "exclude", "drop_vs"};
const std::vector<std::string> kOps = {">=", "<=", ">", "<", "==", "!="};

class Loader {
 public:
  Loader(const StageRegistry& reg, Diagnostics& diag, Spec& spec) : reg_(reg), diag_(diag), spec_(spec) {}

  void run(const fs::path& file) {
    spec_.paths = resolve_spec_paths(file);
    std::optional<YVal> root = load_file(file, nullptr);
    if (!root) return;
    if (!expect_kind(*root, YVal::kMap, "the spec's top level", diag_)) return;
    check_keys(*root, kRootKeys, "the spec's top level", diag_);

    const YVal* exp = root->get("experiment");
    if (!exp) {
      diag_.error(root->loc, "missing key 'experiment' (the experiment's name)");
    } else if (expect_kind(*exp, YVal::kScalar, "'experiment'", diag_)) {
      static const std::regex r("[A-Za-z0-9][A-Za-z0-9._-]*");
      if (!std::regex_match(exp->scalar, r)) {
        diag_.error(exp->loc, fmt::format("experiment name '{}' must match [A-Za-z0-9][A-Za-z0-9._-]* "
                                          "(it names the report folder)", exp->scalar));
      } else {
        spec_.experiment = exp->scalar;
      }
    }
    if (const YVal* d = root->get("description"); d && d->kind != YVal::kNull) {
      if (expect_kind(*d, YVal::kScalar, "'description'", diag_)) spec_.description = d->scalar;
    }
    build_scope();
    if (const YVal* s = root->get("settings")) parse_settings(*s);
    for (const auto& def : stage_defs_) parse_stage(def);
    if (stage_defs_.empty()) diag_.error(root->loc, "the spec defines no stages (key 'stages')");
    if (const YVal* g = root->get("gates")) parse_gates(*g);
    if (const YVal* r = root->get("report")) parse_report(*r);

    Sha256 h;
    for (const auto& [path, sha] : spec_.source_files) {
      h.update(fs::path(path).lexically_relative(spec_.paths.spec_dir).generic_string());
      h.update(std::string_view("\0", 1));
      h.update(sha + "\n");
    }
    spec_.sha256 = h.hex_digest();
  }

 private:
  std::string display(const fs::path& p) const { return p.lexically_normal().string(); }

  // Reads, parses and merges one file (and its includes). Returns its top level.
  std::optional<YVal> load_file(const fs::path& file, const SourceLoc* from) {
    std::string name = display(file);
    fs::path abs = fs::absolute(file).lexically_normal();
    for (const auto& s : stack_) {
      if (s == abs) {
        diag_.error(from ? *from : SourceLoc{name}, fmt::format("include cycle: '{}' includes itself", name));
        return std::nullopt;
      }
    }
    for (const auto& [loaded, sha] : spec_.source_files) {
      if (fs::absolute(loaded).lexically_normal() == abs) return std::nullopt;  // included twice: once is enough
    }
    std::string text;
    try {
      text = read_file(file);
    } catch (const PtqError& e) {
      diag_.error(from ? *from : SourceLoc{name}, from ? fmt::format("cannot read included file '{}'", name) : e.what());
      return std::nullopt;
    }
    spec_.source_files.emplace_back(name, sha256_hex(text));
    YAML::Node node;
    try {
      node = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      diag_.error(mark_loc(name, e.mark), "YAML syntax error: " + e.msg);
      return std::nullopt;
    }
    YVal top = convert(node, name, diag_);
    if (top.kind == YVal::kNull) {
      diag_.error(SourceLoc{name, 1, 1}, "the file is empty");
      return std::nullopt;
    }
    bool is_root = stack_.empty();
    if (!expect_kind(top, YVal::kMap, is_root ? "the spec's top level" : "an included file's top level", diag_)) {
      return std::nullopt;
    }
    if (!is_root) check_keys(top, kFragmentKeys, "an included file (fragments define models, datasets, presets, vars, stages)", diag_);

    stack_.push_back(abs);
    fs::path dir = abs.parent_path();
    if (const YVal* inc = top.get("include")) {
      std::vector<const YVal*> items;
      if (inc->kind == YVal::kScalar) items.push_back(inc);
      else if (inc->kind == YVal::kSeq) for (const auto& c : inc->seq) items.push_back(&c);
      else if (inc->kind != YVal::kNull) diag_.error(inc->loc, fmt::format("'include' must be a file name or a list of them, got {}", inc->kind_name()));
      for (const YVal* it : items) {
        if (!expect_kind(*it, YVal::kScalar, "an include entry", diag_)) continue;
        fs::path rel(it->scalar);
        fs::path cand = rel.is_absolute() ? rel : fs::path(file).parent_path() / rel;
        if (!fs::exists(cand) && rel.is_relative()) {
          fs::path alt = spec_.paths.repo_root / "configs" / rel;
          if (fs::exists(alt)) cand = alt;
          else {
            diag_.error(it->loc, fmt::format("included file '{}' not found (looked for {} and {})", it->scalar,
                                             display(cand), display(alt)));
            continue;
          }
        }
        load_file(cand, &it->loc);
      }
    }
    for (const auto& m : kDefMaps) {
      const YVal* defs = top.get(m);
      if (!defs || defs->kind == YVal::kNull) continue;
      if (!expect_kind(*defs, YVal::kMap, "'" + m + "'", diag_)) continue;
      auto& table = defs_[m];
      for (std::size_t i = 0; i < defs->map.size(); ++i) {
        const auto& [k, v] = defs->map[i];
        if (auto prev = table.find(k); prev != table.end()) {
          diag_.error(defs->key_locs[i], fmt::format("'{}.{}' is defined twice (first at {}); rename one", m, k,
                                                     prev->second.loc.str()));
          continue;
        }
        table[k] = NamedDef{v, defs->key_locs[i]};
      }
    }
    if (const YVal* st = top.get("stages"); st && st->kind != YVal::kNull) {
      if (expect_kind(*st, YVal::kMap, "'stages'", diag_)) {
        for (std::size_t i = 0; i < st->map.size(); ++i) {
          stage_defs_.push_back(StageDef{st->map[i].first, st->map[i].second, st->key_locs[i], dir});
        }
      }
    }
    stack_.pop_back();
    return top;
  }

  void build_scope() {
    root_scope_.kind = YVal::kMap;
    auto add_scalar = [&](const std::string& k, const std::string& v) {
      YVal s;
      s.kind = YVal::kScalar;
      s.scalar = v;
      s.quoted = true;
      root_scope_.map.emplace_back(k, s);
      root_scope_.key_locs.push_back(SourceLoc{});
    };
    add_scalar("shared", spec_.paths.shared.string());
    add_scalar("repo", spec_.paths.repo_root.string());
    add_scalar("spec_dir", spec_.paths.spec_dir.string());
    add_scalar("experiment", spec_.experiment);
    for (const auto& m : kDefMaps) {
      YVal t;
      t.kind = YVal::kMap;
      for (const auto& [k, d] : defs_[m]) {
        t.map.emplace_back(k, d.val);
        t.key_locs.push_back(d.loc);
      }
      root_scope_.map.emplace_back(m, t);
      root_scope_.key_locs.push_back(SourceLoc{});
    }
  }

  void parse_settings(const YVal& s) {
    if (s.kind == YVal::kNull) return;
    if (!expect_kind(s, YVal::kMap, "'settings'", diag_)) return;
    check_keys(s, {"threads", "batch_size"}, "'settings'", diag_);
    Scope scope{&root_scope_, nullptr, {}};
    auto get_int = [&](const char* key, int min, int& out) {
      const YVal* v = s.get(key);
      if (!v) return;
      YVal x = substitute(*v, scope, diag_);
      int64_t i;
      if (x.kind != YVal::kScalar || !parse_int(x.scalar, i) || i < min || i > 1 << 20) {
        diag_.error(v->loc, fmt::format("settings.{} must be an integer >= {}, got {}", key, min,
                                        x.kind == YVal::kScalar ? "'" + x.scalar + "'" : x.kind_name()));
        return;
      }
      out = static_cast<int>(i);
    };
    get_int("threads", 0, spec_.settings.threads);
    get_int("batch_size", 1, spec_.settings.batch_size);
  }

  // --- stages ---------------------------------------------------------------

  void parse_stage(const StageDef& def) {
    std::string where = fmt::format("stage '{}'", def.id);
    if (!std::regex_match(def.id, id_regex())) {
      diag_.error(def.loc, fmt::format("stage id '{}' must match [A-Za-z_][A-Za-z0-9_-]*", def.id));
      return;
    }
    const YVal& v = def.val;
    if (!expect_kind(v, YVal::kMap, where, diag_)) return;
    check_keys(v, kStageKeys, where, diag_);

    StageSpec base;
    base.base_id = def.id;
    base.loc = def.loc;
    base.dir = def.dir;
    const YVal* type = v.get("type");
    if (!type) {
      diag_.error(def.loc, fmt::format("{}: missing key 'type' (one of {})", where, quoted_list(reg_.stage_type_names())));
    } else if (expect_kind(*type, YVal::kScalar, where + ": 'type'", diag_)) {
      base.type = type->scalar;
      base.stage_type = reg_.find(type->scalar);
      if (!base.stage_type) {
        diag_.error(type->loc, fmt::format("{}: unknown stage type '{}'{}; known types: {}", where, type->scalar,
                                           did_you_mean(type->scalar, reg_.stage_type_names()),
                                           quoted_list(reg_.stage_type_names())));
      }
    }
    where = base.stage_type ? fmt::format("stage '{}' ({})", def.id, base.type) : where;
    for (const char* dk : {"desc", "description"}) {
      if (const YVal* d = v.get(dk); d && d->kind != YVal::kNull) {
        if (expect_kind(*d, YVal::kScalar, where + ": '" + dk + "'", diag_)) base.desc = d->scalar;
      }
    }

    // Matrix axes.
    std::vector<std::pair<std::string, std::vector<YVal>>> axes;
    if (const YVal* m = v.get("matrix"); m && m->kind != YVal::kNull) {
      if (expect_kind(*m, YVal::kMap, where + ": 'matrix'", diag_)) {
        if (m->map.empty()) diag_.error(m->loc, where + ": 'matrix' has no axes");
        for (std::size_t i = 0; i < m->map.size(); ++i) {
          const auto& [axis, vals] = m->map[i];
          if (!std::regex_match(axis, id_regex())) {
            diag_.error(m->key_locs[i], fmt::format("{}: matrix axis name '{}' must match [A-Za-z_][A-Za-z0-9_-]*", where, axis));
            continue;
          }
          if (vals.kind != YVal::kSeq) {
            diag_.error(vals.loc, fmt::format("{}: matrix axis '{}' must be a list of values, got {}", where, axis, vals.kind_name()));
            continue;
          }
          if (vals.seq.empty()) {
            diag_.error(m->key_locs[i], fmt::format("{}: matrix axis '{}' is empty; every axis needs at least one value", where, axis));
            continue;
          }
          std::set<std::string> seen;
          bool ok = true;
          for (const auto& x : vals.seq) {
            if (x.kind != YVal::kScalar) {
              diag_.error(x.loc, fmt::format("{}: matrix values must be scalars, got {} in axis '{}'", where, x.kind_name(), axis));
              ok = false;
            } else if (x.scalar.find_first_of(",]=") != std::string::npos || x.scalar.empty()) {
              diag_.error(x.loc, fmt::format("{}: matrix value '{}' of axis '{}' must be non-empty without ',', ']' or '='", where, x.scalar, axis));
              ok = false;
            } else if (!seen.insert(x.scalar).second) {
              diag_.error(x.loc, fmt::format("{}: matrix axis '{}' lists '{}' twice: both variants would produce the same outputs",
                                             where, axis, x.scalar));
              ok = false;
            }
          }
          if (ok) axes.emplace_back(axis, vals.seq);
        }
      }
    }

    // Presets, then explicit params (explicit wins). Each entry remembers its origin.
    struct ParamSrc {
      YVal val;
      SourceLoc key_loc;
      std::string origin;  // "" or "preset 'x'"
    };
    std::vector<std::pair<std::string, ParamSrc>> merged;
    auto put = [&](const std::string& k, ParamSrc src) {
      for (auto& [mk, mv] : merged) {
        if (mk == k) {
          mv = std::move(src);
          return;
        }
      }
      merged.emplace_back(k, std::move(src));
    };
    if (const YVal* p = v.get("preset"); p && p->kind != YVal::kNull) {
      std::vector<const YVal*> names;
      if (p->kind == YVal::kScalar) names.push_back(p);
      else if (p->kind == YVal::kSeq) for (const auto& c : p->seq) names.push_back(&c);
      else diag_.error(p->loc, fmt::format("{}: 'preset' must be a preset name or a list of names, got {}", where, p->kind_name()));
      auto& presets = defs_["presets"];
      for (const YVal* n : names) {
        if (!expect_kind(*n, YVal::kScalar, where + ": preset name", diag_)) continue;
        auto it = presets.find(n->scalar);
        if (it == presets.end()) {
          std::vector<std::string> known;
          for (const auto& [k, d] : presets) known.push_back(k);
          diag_.error(n->loc, fmt::format("{}: unknown preset '{}'{}; defined presets: {}", where, n->scalar,
                                          did_you_mean(n->scalar, known), quoted_list(known)));
          continue;
        }
        const YVal& pv = it->second.val;
        if (!expect_kind(pv, YVal::kMap, fmt::format("preset '{}'", n->scalar), diag_)) continue;
        for (std::size_t i = 0; i < pv.map.size(); ++i) {
          put(pv.map[i].first, ParamSrc{pv.map[i].second, pv.key_locs[i], fmt::format(" (from preset '{}')", n->scalar)});
        }
      }
    }
    if (const YVal* p = v.get("params"); p && p->kind != YVal::kNull) {
      if (expect_kind(*p, YVal::kMap, where + ": 'params'", diag_)) {
        for (std::size_t i = 0; i < p->map.size(); ++i) put(p->map[i].first, ParamSrc{p->map[i].second, p->key_locs[i], ""});
      }
    }

    // Inputs and needs (the same for every variant).
    if (const YVal* in = v.get("inputs"); in && in->kind != YVal::kNull) {
      if (expect_kind(*in, YVal::kMap, where + ": 'inputs'", diag_)) {
        for (std::size_t i = 0; i < in->map.size(); ++i) {
          const auto& [port, refs] = in->map[i];
          const PortDecl* decl = base.stage_type ? base.stage_type->find_input(port) : nullptr;
          if (base.stage_type && !decl) {
            diag_.error(in->key_locs[i], fmt::format("{}: unknown input '{}'{}; inputs of '{}': {}", where, port,
                                                     did_you_mean(port, base.stage_type->input_names()), base.type,
                                                     quoted_list(base.stage_type->input_names())));
            continue;
          }
          std::vector<const YVal*> items;
          if (refs.kind == YVal::kScalar) items.push_back(&refs);
          else if (refs.kind == YVal::kSeq) for (const auto& c : refs.seq) items.push_back(&c);
          else {
            diag_.error(refs.loc, fmt::format("{}: input '{}' must be '<stage>.<output>' or a list of them, got {}", where, port, refs.kind_name()));
            continue;
          }
          if (decl && !decl->multiple && refs.kind == YVal::kSeq && items.size() != 1) {
            diag_.error(refs.loc, fmt::format("{}: input '{}' takes one artifact, got a list of {}", where, port, items.size()));
            continue;
          }
          auto& list = base.inputs[port];
          for (const YVal* r : items) {
            if (!expect_kind(*r, YVal::kScalar, where + ": input reference", diag_)) continue;
            StageRef ref;
            std::string err = parse_stage_ref(r->scalar, true, ref);
            ref.loc = r->loc;
            if (!err.empty()) diag_.error(r->loc, fmt::format("{}: input '{}': {}", where, port, err));
            else list.push_back(ref);
          }
        }
      }
    }
    if (base.stage_type) {
      for (const auto& p : base.stage_type->inputs) {
        if (!p.optional && !base.inputs.count(p.name)) {
          diag_.error(def.loc, fmt::format("{}: missing required input '{}' ({}{}{})", where, p.name, p.type,
                                           p.doc.empty() ? "" : ": ", p.doc));
        }
      }
    }
    if (const YVal* nd = v.get("needs"); nd && nd->kind != YVal::kNull) {
      std::vector<const YVal*> items;
      if (nd->kind == YVal::kScalar) items.push_back(nd);
      else if (nd->kind == YVal::kSeq) for (const auto& c : nd->seq) items.push_back(&c);
      else diag_.error(nd->loc, fmt::format("{}: 'needs' must be a stage id or a list of them, got {}", where, nd->kind_name()));
      for (const YVal* r : items) {
        if (!expect_kind(*r, YVal::kScalar, where + ": 'needs' entry", diag_)) continue;
        StageRef ref;
        std::string err = parse_stage_ref(r->scalar, false, ref);
        ref.loc = r->loc;
        if (!err.empty()) diag_.error(r->loc, fmt::format("{}: needs: {}", where, err));
        else base.needs.push_back(ref);
      }
    }

    // Expand the matrix: cartesian product, first axis outermost.
    std::vector<std::vector<std::pair<std::string, YVal>>> variants(1);
    for (const auto& [axis, vals] : axes) {
      std::vector<std::vector<std::pair<std::string, YVal>>> next;
      for (const auto& partial : variants) {
        for (const auto& x : vals) {
          auto p = partial;
          p.emplace_back(axis, x);
          next.push_back(std::move(p));
        }
      }
      variants = std::move(next);
    }
    for (const auto& var : variants) {
      StageSpec s = base;
      for (const auto& [axis, x] : var) s.matrix.emplace_back(axis, x.scalar);
      s.id = variant_id(def.id, s.matrix);
      Scope scope{&root_scope_, axes.empty() ? nullptr : &var, {}};
      auto params = merged;
      if (base.stage_type) {
        for (const auto& [axis, x] : var) {
          bool present = false;
          for (const auto& [k, src] : params) present = present || k == axis;
          if (!present && base.stage_type->find_param(axis)) {
            params.emplace_back(axis, ParamSrc{x, x.loc, fmt::format(" (from matrix axis '{}')", axis)});
          }
        }
      }
      json out = json::object();
      for (const auto& [k, src] : params) {
        YVal val = substitute(src.val, scope, diag_);
        if (!base.stage_type) continue;
        const ParamDecl* d = base.stage_type->find_param(k);
        if (!d) {
          diag_.error(src.key_loc, fmt::format("{}: unknown param '{}'{}{}; '{}' reads: {}", where, k, src.origin,
                                               did_you_mean(k, base.stage_type->param_names()), base.type,
                                               quoted_list(base.stage_type->param_names())));
          continue;
        }
        std::string err;
        std::optional<json> j = typed_param(*d, val, s.dir, err);
        if (!j) {
          diag_.error(val.loc, fmt::format("{}: param '{}'{} ({}): {}", where, k, src.origin, param_kind_name(d->kind), err));
          continue;
        }
        if (!j->is_null()) out[k] = *j;
      }
      if (base.stage_type) {
        for (const auto& d : base.stage_type->params) {
          if (out.contains(d.name)) continue;
          if (!d.default_value.is_null()) {
            out[d.name] = d.default_value;
          } else if (d.required) {
            diag_.error(def.loc, fmt::format("{}: missing required param '{}' ({}{}{})", where, d.name,
                                             param_kind_name(d.kind), d.doc.empty() ? "" : ": ", d.doc));
          }
        }
      }
      s.params = std::move(out);
      spec_.stages.push_back(std::move(s));
    }
  }

  // --- gates ----------------------------------------------------------------

  // Stages a reference names: every variant of a base id, or those matching a selector.
  std::vector<const StageSpec*> resolve_stages(const StageRef& ref, std::string& err) const {
    std::vector<const StageSpec*> out;
    bool any = false;
    for (const auto& s : spec_.stages) {
      if (s.base_id != ref.stage && s.id != ref.stage) continue;
      any = true;
      bool match = true;
      for (const auto& [axis, val] : ref.selector) {
        bool found = false;
        for (const auto& [a, x] : s.matrix) found = found || (a == axis && x == val);
        match = match && found;
      }
      if (match) out.push_back(&s);
    }
    if (!any) {
      err = fmt::format("no stage '{}'{}", ref.stage, did_you_mean(ref.stage, spec_.base_ids()));
    } else if (out.empty()) {
      err = fmt::format("no variant of '{}' matches {}", ref.stage, ref.text);
    }
    return out;
  }

  // Splits "a.b[c=d].e" at dots outside brackets.
  static std::vector<std::string> split_dots(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    int depth = 0;
    for (char c : s) {
      if (c == '[') ++depth;
      if (c == ']') --depth;
      if (c == '.' && depth == 0) {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    out.push_back(cur);
    return out;
  }

  static std::string parse_segment(const std::string& text, MetricSeg& seg) {
    static const std::regex r("([A-Za-z0-9_-]+)(\\[([^\\]]*)\\])?");
    std::smatch m;
    if (!std::regex_match(text, m, r)) return fmt::format("'{}' is not a metric path segment (key, key[3], key[*] or key[field=value])", text);
    seg.key = m[1];
    if (!m[2].matched) return "";
    std::string inner = m[3];
    int64_t i;
    if (inner == "*") {
      seg.select = MetricSeg::Select::kAll;
    } else if (parse_int(inner, i) && i >= 0) {
      seg.select = MetricSeg::Select::kIndex;
      seg.index = static_cast<std::size_t>(i);
    } else if (auto eq = inner.find('='); eq != std::string::npos && eq > 0) {
      seg.select = MetricSeg::Select::kMatch;
      seg.match_field = inner.substr(0, eq);
      seg.match_value = inner.substr(eq + 1);
    } else {
      return fmt::format("'{}': selector must be an index, '*' or field=value", text);
    }
    return "";
  }

  void parse_gates(const YVal& g) {
    if (g.kind == YVal::kNull) return;
    if (!expect_kind(g, YVal::kSeq, "'gates'", diag_)) return;
    Scope scope{&root_scope_, nullptr, {}};
    for (std::size_t gi = 0; gi < g.seq.size(); ++gi) {
      const YVal& e = g.seq[gi];
      if (!expect_kind(e, YVal::kMap, "a gate", diag_)) continue;
      GateSpec gate;
      gate.loc = e.loc;
      std::string where = fmt::format("gate #{}", gi + 1);
      if (const YVal* n = e.get("name"); n && expect_kind(*n, YVal::kScalar, where + ": 'name'", diag_)) {
        gate.name = n->scalar;
        where = fmt::format("gate '{}'", gate.name);
      }
      check_keys(e, kGateKeys, where, diag_);
      if (const YVal* d = e.get("desc"); d && d->kind == YVal::kScalar) gate.desc = d->scalar;
      const YVal* metric = e.get("metric");
      const YVal* op = e.get("op");
      const YVal* value = e.get("value");
      bool ok = true;
      for (auto [key, node] : {std::pair{"metric", metric}, std::pair{"op", op}, std::pair{"value", value}}) {
        if (!node) {
          diag_.error(e.loc, fmt::format("{}: missing key '{}'", where, key));
          ok = false;
        }
      }
      if (!ok) continue;
      bool bad = false;  // op/value problems: keep checking the metric, then drop the gate
      if (!expect_kind(*metric, YVal::kScalar, where + ": 'metric'", diag_)) continue;
      if (!expect_kind(*op, YVal::kScalar, where + ": 'op'", diag_)) continue;
      gate.metric = metric->scalar;
      gate.op = op->scalar;
      if (std::find(kOps.begin(), kOps.end(), gate.op) == kOps.end()) {
        diag_.error(op->loc, fmt::format("{}: unknown op '{}'{}; ops: {}", where, gate.op, did_you_mean(gate.op, kOps), quoted_list(kOps)));
        bad = true;
      }
      YVal vv = substitute(*value, scope, diag_);
      gate.value = auto_json(vv);
      bool ordering = gate.op != "==" && gate.op != "!=";
      if (ordering ? !gate.value.is_number() : !(gate.value.is_primitive() && !gate.value.is_null())) {
        diag_.error(value->loc, fmt::format("{}: 'value' must be {}, got '{}'", where, ordering ? "a number" : "a scalar",
                                            vv.kind == YVal::kScalar ? vv.scalar : vv.kind_name()));
        bad = true;
      }
      if (gate.name.empty()) gate.name = gate.metric;

      // Which stages: for_each (a stage type or a list of stage ids) or the metric's stage.
      std::vector<const StageSpec*> targets;
      std::vector<std::string> path_parts;
      const YVal* each = e.get("for_each");
      if (each && each->kind != YVal::kNull) {
        if (each->kind == YVal::kScalar) {
          const std::string& t = each->scalar;
          if (!reg_.find(t)) {
            diag_.error(each->loc, fmt::format("{}: for_each names unknown stage type '{}'{}", where, t,
                                               did_you_mean(t, reg_.stage_type_names())));
            continue;
          }
          for (const auto& s : spec_.stages) {
            if (s.type == t) targets.push_back(&s);
          }
          if (targets.empty()) {
            diag_.error(each->loc, fmt::format("{}: for_each: no stage of type '{}' in this experiment", where, t));
            continue;
          }
        } else if (each->kind == YVal::kSeq) {
          for (const auto& x : each->seq) {
            StageRef ref;
            std::string err = x.kind == YVal::kScalar ? parse_stage_ref(x.scalar, false, ref) : "expected a stage id";
            if (err.empty()) {
              auto found = resolve_stages(ref, err);
              targets.insert(targets.end(), found.begin(), found.end());
            }
            if (!err.empty()) diag_.error(x.loc, fmt::format("{}: for_each: {}", where, err));
          }
          if (targets.empty()) continue;
        } else {
          diag_.error(each->loc, fmt::format("{}: for_each must be a stage type or a list of stage ids", where));
          continue;
        }
        path_parts = split_dots(gate.metric);
      } else {
        auto parts = split_dots(gate.metric);
        StageRef ref;
        std::string err = parse_stage_ref(parts[0], false, ref);
        if (err.empty() && parts.size() < 2) err = "expected '<stage>.<key>...'";
        if (err.empty()) targets = resolve_stages(ref, err);
        if (!err.empty()) {
          diag_.error(metric->loc, fmt::format("{}: metric '{}': {}", where, gate.metric, err));
          continue;
        }
        path_parts.assign(parts.begin() + 1, parts.end());
      }
      if (const YVal* ex = e.get("exclude"); ex && ex->kind != YVal::kNull) {
        std::vector<const YVal*> items;
        if (ex->kind == YVal::kScalar) items.push_back(ex);
        else if (ex->kind == YVal::kSeq) for (const auto& c : ex->seq) items.push_back(&c);
        for (const YVal* x : items) {
          StageRef ref;
          std::string err = x->kind == YVal::kScalar ? parse_stage_ref(x->scalar, false, ref) : "expected a stage id";
          std::vector<const StageSpec*> drop;
          if (err.empty()) drop = resolve_stages(ref, err);
          if (!err.empty()) {
            diag_.error(x->loc, fmt::format("{}: exclude: {}", where, err));
            continue;
          }
          std::erase_if(targets, [&](const StageSpec* s) { return std::find(drop.begin(), drop.end(), s) != drop.end(); });
        }
      }
      if (const YVal* dv = e.get("drop_vs"); dv && dv->kind != YVal::kNull) {
        StageRef ref;
        std::string err = dv->kind == YVal::kScalar ? parse_stage_ref(dv->scalar, false, ref) : "expected a stage id";
        std::vector<const StageSpec*> base;
        if (err.empty()) base = resolve_stages(ref, err);
        if (err.empty() && base.size() != 1) err = fmt::format("'{}' names {} stages; drop_vs needs exactly one", dv->scalar, base.size());
        if (!err.empty()) {
          diag_.error(dv->loc, fmt::format("{}: drop_vs: {}", where, err));
          continue;
        }
        gate.drop_vs = base[0]->id;
        targets.push_back(base[0]);  // checked below for port/keys like the others
      }
      // Port and path, checked against every target's type.
      std::vector<MetricSeg> segs;
      std::string port;
      bool path_ok = !path_parts.empty() && !path_parts[0].empty();
      const StageType* t0 = targets.empty() ? nullptr : targets[0]->stage_type;
      if (t0 && path_ok && t0->find_output(path_parts[0]) && path_parts[0].find('[') == std::string::npos) {
        port = path_parts[0];
        path_parts.erase(path_parts.begin());
        path_ok = !path_parts.empty();
      }
      if (!path_ok) {
        diag_.error(metric->loc, fmt::format("{}: metric '{}' names no key inside the stage's output", where, gate.metric));
        continue;
      }
      for (const auto& p : path_parts) {
        MetricSeg seg;
        std::string err = parse_segment(p, seg);
        if (!err.empty()) {
          diag_.error(metric->loc, fmt::format("{}: metric '{}': {}", where, gate.metric, err));
          ok = false;
          break;
        }
        segs.push_back(seg);
      }
      if (!ok) continue;
      std::set<std::string> reported;
      for (const StageSpec* s : targets) {
        if (!s->stage_type) continue;
        std::string p = port;
        if (p.empty()) {
          for (const auto& o : s->stage_type->outputs) {
            const ArtifactType* at = reg_.artifact_type(o.type);
            if (at && at->storage == Storage::kJson) {
              p = o.name;
              break;
            }
          }
        }
        const PortDecl* out = p.empty() ? nullptr : s->stage_type->find_output(p);
        if (!out) {
          diag_.error(metric->loc, fmt::format("{}: stage '{}' ({}) has no JSON output{}", where, s->id, s->type,
                                               port.empty() ? "" : " named '" + port + "'"));
          ok = false;
          break;
        }
        if (gate.port.empty()) gate.port = p;
        const ArtifactType* at = reg_.artifact_type(out->type);
        if (at && !at->known_keys.empty() &&
            std::find(at->known_keys.begin(), at->known_keys.end(), segs[0].key) == at->known_keys.end() &&
            reported.insert(at->name).second) {
          diag_.error(metric->loc, fmt::format("{}: unknown metric '{}' for '{}' ({} output '{}'){}; top-level keys of {}: {}",
                                               where, segs[0].key, s->id, at->name, p,
                                               did_you_mean(segs[0].key, at->known_keys), at->name, quoted_list(at->known_keys)));
          ok = false;
        }
      }
      if (!ok || bad) continue;
      if (!gate.drop_vs.empty()) targets.pop_back();
      gate.path = std::move(segs);
      for (const StageSpec* s : targets) gate.stages.push_back(s->id);
      spec_.gates.push_back(std::move(gate));
    }
  }

  // --- report ---------------------------------------------------------------

  void parse_report(const YVal& r) {
    if (r.kind == YVal::kNull) return;
    if (!expect_kind(r, YVal::kMap, "'report'", diag_)) return;
    check_keys(r, {"title", "sections"}, "'report'", diag_);
    Scope scope{&root_scope_, nullptr, {}};
    if (const YVal* t = r.get("title"); t && expect_kind(*t, YVal::kScalar, "report.title", diag_)) {
      spec_.report.title = substitute(*t, scope, diag_).scalar;
    }
    const YVal* secs = r.get("sections");
    if (!secs || secs->kind == YVal::kNull) return;
    if (!expect_kind(*secs, YVal::kSeq, "report.sections", diag_)) return;
    spec_.report.sections_given = true;
    std::vector<std::string> kinds;
    for (const auto& f : framework_section_kinds()) kinds.push_back(f.name);
    for (const auto& k : reg_.section_kinds()) kinds.push_back(k.name);
    for (const auto& e : secs->seq) {
      SectionSpec sec;
      sec.loc = e.loc;
      const YVal* kind = nullptr;
      if (e.kind == YVal::kScalar) {
        kind = &e;
        sec.config = json{{"kind", e.scalar}};
      } else if (e.kind == YVal::kMap) {
        kind = e.get("kind");
        if (!kind) {
          diag_.error(e.loc, fmt::format("report section: missing key 'kind' (one of {})", quoted_list(kinds)));
          continue;
        }
        sec.config = auto_json(substitute(e, scope, diag_));
      } else {
        diag_.error(e.loc, "report section must be a kind name or a map with 'kind'");
        continue;
      }
      if (kind->kind != YVal::kScalar) {
        diag_.error(kind->loc, "report section 'kind' must be a name");
        continue;
      }
      sec.kind = kind->scalar;
      std::vector<std::string> allowed = {"kind", "title"};
      bool known = false;
      for (const auto& f : framework_section_kinds()) {
        if (f.name == sec.kind) {
          known = true;
          allowed.insert(allowed.end(), f.config_keys.begin(), f.config_keys.end());
        }
      }
      if (const SectionKind* k = reg_.section_kind(sec.kind)) {
        known = true;
        allowed.insert(allowed.end(), k->config_keys.begin(), k->config_keys.end());
      }
      if (!known) {
        diag_.error(kind->loc, fmt::format("unknown report section kind '{}'{}; kinds: {}", sec.kind,
                                           did_you_mean(sec.kind, kinds), quoted_list(kinds)));
        continue;
      }
      if (e.kind == YVal::kMap) check_keys(e, allowed, fmt::format("report section '{}'", sec.kind), diag_);
      // Stage references inside section configs: baseline, rows, stages.
      bool refs_ok = true;
      auto check_ref = [&](const json& id, const std::string& key) {
        if (!id.is_string()) {
          diag_.error(e.loc, fmt::format("report section '{}': '{}' entries must be stage ids", sec.kind, key));
          refs_ok = false;
          return;
        }
        StageRef ref;
        std::string err = parse_stage_ref(id.get<std::string>(), false, ref);
        if (err.empty()) resolve_stages(ref, err);
        if (!err.empty()) {
          diag_.error(e.loc, fmt::format("report section '{}': {}: {}", sec.kind, key, err));
          refs_ok = false;
        }
      };
      if (sec.config.contains("baseline")) check_ref(sec.config["baseline"], "baseline");
      for (const char* key : {"rows", "stages"}) {
        if (!sec.config.contains(key)) continue;
        const json& rows = sec.config[key];
        if (!rows.is_array()) {
          diag_.error(e.loc, fmt::format("report section '{}': '{}' must be a list", sec.kind, key));
          refs_ok = false;
          continue;
        }
        for (const auto& row : rows) check_ref(row.is_object() && row.contains("stage") ? row["stage"] : row, key);
      }
      if (refs_ok) spec_.report.sections.push_back(std::move(sec));
    }
  }

  const StageRegistry& reg_;
  Diagnostics& diag_;
  Spec& spec_;
  std::vector<fs::path> stack_;
  std::map<std::string, std::map<std::string, NamedDef>> defs_;
  std::vector<StageDef> stage_defs_;
  YVal root_scope_;
};

}  // namespace

Spec load_spec(const fs::path& spec_file, const StageRegistry& registry, Diagnostics& diag) {
  Spec spec;
  Loader(registry, diag, spec).run(spec_file);
  return spec;
}

}  // namespace qpipe
