#include "pipeline/stage_context.h"

#include <system_error>

#include "pipeline/atomic_file.h"
#include "pipeline/sha256.h"
#include "pipeline/text_util.h"

namespace qpipe {
namespace fs = std::filesystem;

StageContext::StageContext(StageContextInit init) : init_(std::move(init)) {
  if (!init_.type) fail(ErrorKind::kRuntime, "StageContext for '{}' without a stage type", init_.stage_id);
}

const ParamDecl& StageContext::declared_param(std::string_view name) const {
  const ParamDecl* d = init_.type->find_param(name);
  if (!d) {
    fail(ErrorKind::kRuntime,
         "stage type '{}' reads param '{}', which it does not declare (declared: {}); "
         "add it to the type's params so specs can set it and the cache key covers it",
         init_.type->name, name, quoted_list(init_.type->param_names()));
  }
  return *d;
}

void StageContext::param_error(std::string_view name, const char* wanted) const {
  fail(ErrorKind::kRuntime, "stage '{}' ({}): param '{}' is {}, not {}", init_.stage_id,
       init_.type->name, name, init_.params.at(std::string(name)).type_name(), wanted);
}

bool StageContext::has_param(std::string_view name) const {
  declared_param(name);
  auto it = init_.params.find(std::string(name));
  return it != init_.params.end() && !it->is_null();
}

bool StageContext::has_input(std::string_view port) const {
  auto it = init_.inputs.find(std::string(port));
  return it != init_.inputs.end() && !it->second.empty();
}

const std::vector<Artifact>& StageContext::inputs(std::string_view port) const {
  if (!init_.type->find_input(port)) {
    fail(ErrorKind::kRuntime, "stage type '{}' reads input '{}', which it does not declare (declared: {})",
         init_.type->name, port, quoted_list(init_.type->input_names()));
  }
  static const std::vector<Artifact> kEmpty;
  auto it = init_.inputs.find(std::string(port));
  return it == init_.inputs.end() ? kEmpty : it->second;
}

const Artifact& StageContext::input(std::string_view port) const {
  const auto& v = inputs(port);
  if (v.size() != 1) {
    fail(ErrorKind::kRuntime, "stage '{}' ({}): input '{}' has {} artifacts bound, expected exactly one",
         init_.stage_id, init_.type->name, port, v.size());
  }
  return v.front();
}

nlohmann::json StageContext::input_json(std::string_view port) const {
  return read_json_file(input(port).path.string());
}

fs::path StageContext::output_path(std::string_view port) const {
  const PortDecl* out = init_.type->find_output(port);
  if (!out) {
    fail(ErrorKind::kRuntime, "stage type '{}' writes output '{}', which it does not declare (declared: {})",
         init_.type->name, port, quoted_list(init_.type->output_names()));
  }
  // The registry guarantees the type exists; the runner passes a registry-checked type.
  fs::path p = init_.staging_dir / std::string(port);
  const ArtifactType* t = nullptr;
  static const StageRegistry kBuiltins;
  t = (init_.registry ? *init_.registry : kBuiltins).artifact_type(out->type);
  if (!t) fail(ErrorKind::kRuntime, "output '{}' of stage type '{}' has unknown artifact type '{}'", port, init_.type->name, out->type);
  p += t->extension;
  if (t->storage == Storage::kDirectory) fs::create_directories(p);
  return p;
}

void StageContext::write_json(std::string_view port, const nlohmann::json& doc) const {
  write_text(port, pretty_json(doc));
}

void StageContext::write_text(std::string_view port, std::string_view bytes) const {
  // The staging folder is private and committed by rename; a plain write is enough,
  // but the atomic helper also creates the folder and reports errors well.
  write_file_atomic(output_path(port), bytes);
}

fs::path StageContext::scratch_dir() const {
  fs::path p = init_.staging_dir / ".scratch";
  fs::create_directories(p);
  return p;
}

void StageContext::log(LogLevel level, const std::string& message) const {
  if (init_.events) init_.events->stage_log(init_.stage_id, level, message);
}

void StageContext::progress(uint64_t done, uint64_t total, std::string_view unit) {
  {
    std::lock_guard<std::mutex> lock(progress_mu_);
    progress_.done = done;
    progress_.total = total;
    progress_.unit = std::string(unit);
  }
  if (init_.events) init_.events->stage_progress(init_.stage_id, done, total, std::string(unit));
}

StageContext::Progress StageContext::last_progress() const {
  std::lock_guard<std::mutex> lock(progress_mu_);
  return progress_;
}

uint64_t StageContext::seed() const {
  std::string h = sha256_hex("seed:" + init_.cache_key);
  return std::stoull(h.substr(0, 16), nullptr, 16);
}

}  // namespace qpipe
