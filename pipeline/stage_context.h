#pragma once
// What a running stage sees. The runner builds one StageContext per stage
// execution; the stage reads its declared params and input artifacts, writes
// each declared output to ctx.output_path(port) (a path inside the stage's
// private staging folder), and returns. The runner then checks and hashes the
// outputs and moves the whole folder into the cache in one rename, so a stage
// never deals with atomicity, caching or timing itself.
//
//   void run_evaluate(StageContext& ctx) {
//     const Artifact& model = ctx.input("model");          // .path, .sha256
//     int64_t limit = ctx.param<int64_t>("max_samples");
//     for (...) { ctx.check_cancelled(); ...; ctx.progress(done, total, "images"); }
//     ctx.write_json("eval", result);                      // or ctx.output_path("eval")
//   }
//
// Threads: the stage already runs inside the run's single tbb::task_arena, so
// tbb::parallel_for & co. called from run() share the run's thread budget (no
// oversubscription). ctx.threads() is that budget; ctx.arena() the arena.
// Determinism: outputs must not depend on the thread count, timing or
// completion order; derive any random seed from ctx.seed().

#include <nlohmann/json.hpp>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "engine/error.h"
#include "pipeline/artifact.h"
#include "pipeline/stage_registry.h"

namespace qpipe {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// Where stage logs and progress go (the runner's logger implements it).
class StageEvents {
 public:
  virtual ~StageEvents() = default;
  virtual void stage_log(const std::string& stage_id, LogLevel level, const std::string& message) = 0;
  virtual void stage_progress(const std::string& stage_id, uint64_t done, uint64_t total,
                              const std::string& unit) = 0;
};

// Thrown by check_cancelled(); the runner records the stage as cancelled.
class StageCancelled : public PtqError {
 public:
  explicit StageCancelled(const std::string& stage)
      : PtqError(ErrorKind::kInterrupted, "stage '" + stage + "' cancelled (SIGINT)") {}
};

struct StageContextInit {
  const StageType* type = nullptr;
  const StageRegistry* registry = nullptr;  // for artifact types; null = built-in types only
  std::string experiment;
  std::string stage_id;
  nlohmann::json params = nlohmann::json::object();  // resolved, typed, defaults applied
  std::vector<std::pair<std::string, std::string>> matrix;
  std::map<std::string, std::vector<Artifact>> inputs;
  std::filesystem::path staging_dir;  // must exist
  std::string cache_key;
  StageEvents* events = nullptr;           // may be null (logs dropped)
  const std::atomic<bool>* cancel = nullptr;  // may be null (never cancelled)
  tbb::task_arena* arena = nullptr;
  int threads = 1;
  int batch_size = 100;
};

class StageContext {
 public:
  explicit StageContext(StageContextInit init);

  const std::string& experiment() const { return init_.experiment; }
  const std::string& stage_id() const { return init_.stage_id; }
  const StageType& type() const { return *init_.type; }
  const std::string& cache_key() const { return init_.cache_key; }
  // Axis values when the stage is a matrix variant ("act_type" -> "int8").
  const std::vector<std::pair<std::string, std::string>>& matrix() const { return init_.matrix; }

  // ---- params (only declared names; anything else is a bug in the stage) ----
  // T: std::string, std::filesystem::path, bool, int, int64_t, double, float,
  // nlohmann::json, std::vector<std::string|double|int64_t>. Throws when the
  // param is unset (optional without default) — test with has_param().
  template <typename T>
  T param(std::string_view name) const;
  template <typename T>
  T param_or(std::string_view name, T fallback) const {
    return has_param(name) ? param<T>(name) : fallback;
  }
  bool has_param(std::string_view name) const;
  const nlohmann::json& params() const { return init_.params; }

  // ---- inputs ----
  bool has_input(std::string_view port) const;
  // The single artifact bound to `port` (error if unbound or several).
  const Artifact& input(std::string_view port) const;
  // Every artifact bound to a `multiple` port, in spec order (may be empty).
  const std::vector<Artifact>& inputs(std::string_view port) const;
  nlohmann::json input_json(std::string_view port) const;

  // ---- outputs ----
  // Where to write output `port`: <staging>/<port><ext>. For directory
  // outputs the folder is created. Writing there needs no atomicity.
  std::filesystem::path output_path(std::string_view port) const;
  void write_json(std::string_view port, const nlohmann::json& doc) const;
  void write_text(std::string_view port, std::string_view bytes) const;
  // A private scratch folder (not kept in the cache).
  std::filesystem::path scratch_dir() const;

  // ---- services ----
  void log(LogLevel level, const std::string& message) const;
  void info(const std::string& message) const { log(LogLevel::kInfo, message); }
  void warn(const std::string& message) const { log(LogLevel::kWarn, message); }
  // Progress in `unit`s (e.g. images); the runner turns it into a progress
  // line with rate and ETA, and into the stage's throughput in the report.
  void progress(uint64_t done, uint64_t total, std::string_view unit);
  bool cancelled() const { return init_.cancel && init_.cancel->load(std::memory_order_relaxed); }
  void check_cancelled() const {
    if (cancelled()) throw StageCancelled(init_.stage_id);
  }
  int threads() const { return init_.threads; }
  tbb::task_arena* arena() const { return init_.arena; }
  int batch_size() const { return init_.batch_size; }
  // A seed derived from the cache key: same key, same seed, on any machine.
  uint64_t seed() const;

  // Last progress report (the runner reads it for throughput).
  struct Progress {
    uint64_t done = 0, total = 0;
    std::string unit;
  };
  Progress last_progress() const;

  const std::filesystem::path& staging_dir() const { return init_.staging_dir; }

 private:
  const ParamDecl& declared_param(std::string_view name) const;
  [[noreturn]] void param_error(std::string_view name, const char* wanted) const;

  StageContextInit init_;
  mutable std::mutex progress_mu_;
  Progress progress_;
};

template <typename T>
T StageContext::param(std::string_view name) const {
  declared_param(name);
  auto it = init_.params.find(std::string(name));
  if (it == init_.params.end() || it->is_null()) {
    fail(ErrorKind::kRuntime, "stage '{}' ({}): param '{}' is not set (optional, no default)",
         init_.stage_id, init_.type->name, name);
  }
  const nlohmann::json& v = *it;
  if constexpr (std::is_same_v<T, nlohmann::json>) {
    return v;
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (!v.is_string()) param_error(name, "a string");
    return v.get<std::string>();
  } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
    if (!v.is_string()) param_error(name, "a path");
    return std::filesystem::path(v.get<std::string>());
  } else if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) param_error(name, "a bool");
    return v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) param_error(name, "an integer");
    return static_cast<T>(v.get<int64_t>());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!v.is_number()) param_error(name, "a number");
    return static_cast<T>(v.get<double>());
  } else {
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      param_error(name, "the requested C++ type");
    }
  }
}

}  // namespace qpipe
