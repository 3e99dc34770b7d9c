#pragma once
// Runs a validated DAG on oneTBB (STYLE.md 9, 10, 15). The graph is built
// once: one tbb::flow::continue_node per stage, an edge per dependency, all
// inside one tbb::task_arena(threads) — the run's whole thread budget; stages
// that use tbb::parallel_for inside share it, so nothing oversubscribes.
// Independent stages run concurrently.
//
// Each node body: skip when a dependency did not succeed or the run was
// interrupted; otherwise compute the cache key from the stage's params, the
// hashes of its input artifacts and of the files its path params name; reuse
// the cache entry if there is one (unless --force); else run the stage in a
// private staging folder and commit it to the cache. Nothing escapes a node
// body: a throwing stage is recorded as failed (message, error kind) and its
// dependents are skipped with the reason; unrelated stages finish. (An
// exception escaping a flow-graph node would cancel the whole graph.)
//
// Observation stays outside the stages: RunObserver hooks see every stage
// start, cache decision and finish; wall time is measured by the runner.

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "pipeline/cache.h"
#include "pipeline/dag.h"
#include "pipeline/spec.h"
#include "pipeline/stage_context.h"

namespace qpipe {

enum class StageStatus { kPending, kOk, kFailed, kSkipped, kCancelled };
const char* status_name(StageStatus s);  // "pending", "ok", "failed", "skipped", "cancelled"

struct StageRecord {
  std::string id;
  std::string type;
  StageStatus status = StageStatus::kPending;
  bool cache_hit = false;
  std::string reason;   // why it ran, was reused or skipped
  std::string key;      // cache key (empty when skipped before keying)
  nlohmann::json material;
  std::map<std::string, Artifact> outputs;
  std::string message;  // failed: the error; skipped/cancelled: why
  ErrorKind error_kind = ErrorKind::kRuntime;
  double wall_seconds = 0;  // runner-measured (observer), cache lookups included
  StageContext::Progress progress;
  std::chrono::steady_clock::time_point started;
};

class RunObserver {
 public:
  virtual ~RunObserver() = default;
  virtual void on_stage_start(const StageSpec&, StageRecord&) {}
  // The cache decision is known (rec.cache_hit, rec.reason); the stage runs next unless hit.
  virtual void on_stage_decided(const StageSpec&, StageRecord&) {}
  virtual void on_stage_finish(const StageSpec&, StageRecord&) {}
};

struct SchedulerOptions {
  int threads = 1;
  bool force = false;
  int batch_size = 100;
  const std::atomic<bool>* cancel = nullptr;
  StageEvents* events = nullptr;
  std::vector<RunObserver*> observers;
};

// For every stage, {param: {path, sha256}} of the files/folders its path
// params name. Throws PtqError(kInput) listing every missing file at once.
std::vector<nlohmann::json> hash_path_params(const Spec& spec, Cache& cache);

std::vector<StageRecord> run_stages(const Spec& spec, const Dag& dag, const StageRegistry& registry, Cache& cache,
                                    const std::vector<nlohmann::json>& files, const SchedulerOptions& options);

// What a run would do, without running: a stage is reused when its key can be
// computed (every producer is reused) and has a cache entry.
struct PlanEntry {
  bool reuse = false;
  std::string reason;
  std::string key;  // empty when unknown (a producer runs first)
};
std::vector<PlanEntry> plan_stages(const Spec& spec, const Dag& dag, const StageRegistry& registry, Cache& cache,
                                   const std::vector<nlohmann::json>& files, bool force);

// Runs one stage type by hand (unit tests of stage implementations): params
// are checked against the declaration (defaults applied, unknown/missing
// rejected), outputs land in `out_dir` as <port><ext>. Returns the outputs.
std::map<std::string, Artifact> run_stage_standalone(const StageType& type, const StageRegistry& registry,
                                                     const nlohmann::json& params,
                                                     const std::map<std::string, std::vector<Artifact>>& inputs,
                                                     const std::filesystem::path& out_dir, int threads = 1);

}  // namespace qpipe
