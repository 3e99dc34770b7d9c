#include "pipeline/scheduler.h"

#include <oneapi/tbb/flow_graph.h>
#include <oneapi/tbb/task_arena.h>

#include <memory>

#include "pipeline/sha256.h"
#include "pipeline/text_util.h"

namespace qpipe {
namespace fs = std::filesystem;
using nlohmann::json;

const char* status_name(StageStatus s) {
  switch (s) {
    case StageStatus::kPending: return "pending";
    case StageStatus::kOk: return "ok";
    case StageStatus::kFailed: return "failed";
    case StageStatus::kSkipped: return "skipped";
    case StageStatus::kCancelled: return "cancelled";
  }
  return "?";
}

std::vector<json> hash_path_params(const Spec& spec, Cache& cache) {
  std::vector<json> out(spec.stages.size(), json::object());
  Diagnostics diag;
  std::map<std::string, std::string> hashed;
  for (std::size_t i = 0; i < spec.stages.size(); ++i) {
    const StageSpec& s = spec.stages[i];
    if (!s.stage_type) continue;
    for (const auto& d : s.stage_type->params) {
      if (d.kind != ParamKind::kPath || !s.params.contains(d.name)) continue;
      std::string p = s.params[d.name].get<std::string>();
      std::error_code ec;
      if (!fs::exists(p, ec)) {
        if (d.must_exist) {
          diag.error(s.loc, fmt::format("stage '{}' ({}): param '{}': {} not found: {}", s.id, s.type, d.name,
                                        fs::path(p).has_extension() ? "file" : "file or folder", p));
        }
        out[i][d.name] = {{"path", p}, {"sha256", nullptr}};
        continue;
      }
      auto it = hashed.find(p);
      if (it == hashed.end()) {
        try {
          it = hashed.emplace(p, cache.hash_input(p)).first;
        } catch (const PtqError& e) {
          diag.error(s.loc, fmt::format("stage '{}' ({}): param '{}': {}", s.id, s.type, d.name, e.what()));
          continue;
        }
      }
      out[i][d.name] = {{"path", p}, {"sha256", it->second}};
    }
  }
  cache.save_hash_index();
  diag.throw_if_any(ErrorKind::kInput, spec.paths.spec_file.string());
  return out;
}

namespace {

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : sep) + x;
  return s;
}

// Why a stage must run, given the previous run's record for the same stage id.
std::string miss_reason(bool force, const std::optional<json>& prev, const json& material) {
  if (force) return "forced (--force)";
  if (!prev || !prev->contains("material")) return "no cache entry (first run of this stage)";
  auto changes = explain_material_change((*prev)["material"], material);
  if (changes.empty()) return "no cache entry (removed from the cache?); nothing changed since the last run";
  return join(changes, "; ");
}

std::string hit_reason(const std::string& key, const std::optional<json>& prev, const json& material) {
  std::string r = "cache hit " + key.substr(0, 12);
  if (prev && prev->contains("material")) {
    auto changes = explain_material_change((*prev)["material"], material);
    if (!changes.empty()) r += " (an earlier result; since the last run: " + join(changes, "; ") + ")";
  }
  return r;
}

class Runner {
 public:
  Runner(const Spec& spec, const Dag& dag, const StageRegistry& reg, Cache& cache, const std::vector<json>& files,
         const SchedulerOptions& opt)
      : spec_(spec), dag_(dag), reg_(reg), cache_(cache), files_(files), opt_(opt), records_(spec.stages.size()) {
    for (std::size_t i = 0; i < spec.stages.size(); ++i) {
      records_[i].id = spec.stages[i].id;
      records_[i].type = spec.stages[i].type;
    }
  }

  std::vector<StageRecord> run() {
    int threads = std::max(1, opt_.threads);
    tbb::task_arena arena(threads);
    arena_ = &arena;
    arena.execute([&] {
      // The graph is created inside the arena so every node runs in it.
      tbb::flow::graph g;
      using Node = tbb::flow::continue_node<tbb::flow::continue_msg>;
      std::vector<std::unique_ptr<Node>> nodes;
      nodes.reserve(spec_.stages.size());
      for (std::size_t i = 0; i < spec_.stages.size(); ++i) {
        nodes.push_back(std::make_unique<Node>(g, [this, i](const tbb::flow::continue_msg&) { execute(i); }));
      }
      for (std::size_t i = 0; i < spec_.stages.size(); ++i) {
        for (std::size_t d : dag_.nodes[i].deps) tbb::flow::make_edge(*nodes[d], *nodes[i]);
      }
      for (std::size_t i = 0; i < spec_.stages.size(); ++i) {
        if (dag_.nodes[i].deps.empty()) nodes[i]->try_put(tbb::flow::continue_msg());
      }
      g.wait_for_all();
    });
    return std::move(records_);
  }

 private:
  bool cancelled() const { return opt_.cancel && opt_.cancel->load(); }

  void execute(std::size_t i) noexcept {
    StageRecord& rec = records_[i];
    const StageSpec& s = spec_.stages[i];
    try {
      for (auto* o : opt_.observers) o->on_stage_start(s, rec);
      execute_inner(i, rec, s);
    } catch (const std::exception& e) {  // observers or bookkeeping; never escape a node
      rec.status = StageStatus::kFailed;
      rec.message = e.what();
    } catch (...) {
      rec.status = StageStatus::kFailed;
      rec.message = "unknown exception";
    }
    for (auto* o : opt_.observers) {
      try {
        o->on_stage_finish(s, rec);
      } catch (...) {
      }
    }
  }

  void execute_inner(std::size_t i, StageRecord& rec, const StageSpec& s) {
    if (cancelled()) {
      rec.status = StageStatus::kCancelled;
      rec.message = "not started: the run was interrupted";
      return;
    }
    for (std::size_t d : dag_.nodes[i].deps) {
      const StageRecord& dr = records_[d];
      if (dr.status != StageStatus::kOk) {
        rec.status = StageStatus::kSkipped;
        rec.message = fmt::format("dependency '{}' {}", dr.id, status_name(dr.status));
        rec.reason = rec.message;
        return;
      }
    }
    std::map<std::string, std::vector<Artifact>> inputs;
    for (const auto& [port, ins] : dag_.nodes[i].inputs) {
      auto& list = inputs[port];
      for (const auto& in : ins) {
        const StageRecord& pr = records_[in.producer];
        auto it = pr.outputs.find(in.port);
        if (it == pr.outputs.end()) {
          rec.status = StageStatus::kFailed;
          rec.message = fmt::format("input '{}': stage '{}' did not produce its optional output '{}'", port, pr.id, in.port);
          return;
        }
        list.push_back(it->second);
      }
    }
    const StageType& type = *s.stage_type;
    rec.material = key_material(type, s.params, inputs, files_[i]);
    rec.key = Cache::key_of(rec.material);
    auto prev = cache_.last_run(spec_.experiment, s.id);
    json run_record = {{"key", rec.key}, {"material", rec.material}};

    if (!opt_.force) {
      if (auto entry = cache_.lookup(rec.key)) {
        rec.cache_hit = true;
        rec.reason = hit_reason(rec.key, prev, rec.material);
        rec.outputs = entry->outputs;
        for (auto* o : opt_.observers) o->on_stage_decided(s, rec);
        rec.status = StageStatus::kOk;
        cache_.record_run(spec_.experiment, s.id, run_record);
        return;
      }
    }
    rec.reason = miss_reason(opt_.force, prev, rec.material);
    for (auto* o : opt_.observers) o->on_stage_decided(s, rec);

    fs::path staging = cache_.make_staging(rec.key);
    try {
      StageContextInit init;
      init.type = &type;
      init.registry = &reg_;
      init.experiment = spec_.experiment;
      init.stage_id = s.id;
      init.params = s.params;
      init.matrix = s.matrix;
      init.inputs = inputs;
      init.staging_dir = staging;
      init.cache_key = rec.key;
      init.events = opt_.events;
      init.cancel = opt_.cancel;
      init.arena = arena_;
      init.threads = std::max(1, opt_.threads);
      init.batch_size = opt_.batch_size;
      StageContext ctx(std::move(init));
      // Isolation: while this stage waits inside its own parallel loops, its
      // thread must not pick up another stage's node (which would nest a whole
      // stage on this stack and distort both stages' wall times).
      tbb::this_task_arena::isolate([&] { type.run(ctx); });
      rec.progress = ctx.last_progress();
      CacheEntry entry = cache_.commit(staging, rec.key, rec.material, type, reg_, opt_.force);
      rec.outputs = entry.outputs;
      rec.status = StageStatus::kOk;
      cache_.record_run(spec_.experiment, s.id, run_record);
    } catch (const StageCancelled& e) {
      cache_.discard(staging);
      rec.status = StageStatus::kCancelled;
      rec.message = e.what();
      rec.error_kind = ErrorKind::kInterrupted;
    } catch (const PtqError& e) {
      cache_.discard(staging);
      rec.status = StageStatus::kFailed;
      rec.message = e.what();
      rec.error_kind = e.kind();
    } catch (const std::exception& e) {
      cache_.discard(staging);
      rec.status = StageStatus::kFailed;
      rec.message = e.what();
      rec.error_kind = ErrorKind::kRuntime;
    } catch (...) {
      cache_.discard(staging);
      rec.status = StageStatus::kFailed;
      rec.message = "unknown exception";
      rec.error_kind = ErrorKind::kRuntime;
    }
  }

  const Spec& spec_;
  const Dag& dag_;
  const StageRegistry& reg_;
  Cache& cache_;
  const std::vector<json>& files_;
  const SchedulerOptions& opt_;
  std::vector<StageRecord> records_;
  tbb::task_arena* arena_ = nullptr;
};

// Measures every stage's wall time from the runner (STYLE.md 15).
class TimingObserver : public RunObserver {
 public:
  void on_stage_start(const StageSpec&, StageRecord& r) override { r.started = std::chrono::steady_clock::now(); }
  void on_stage_finish(const StageSpec&, StageRecord& r) override {
    r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.started).count();
  }
};

}  // namespace

std::vector<StageRecord> run_stages(const Spec& spec, const Dag& dag, const StageRegistry& registry, Cache& cache,
                                    const std::vector<json>& files, const SchedulerOptions& options) {
  if (dag.topo.size() != spec.stages.size()) {
    fail(ErrorKind::kRuntime, "run_stages: the DAG was not validated (no complete topological order)");
  }
  TimingObserver timing;
  SchedulerOptions opt = options;
  opt.observers.insert(opt.observers.begin(), &timing);
  Runner runner(spec, dag, registry, cache, files, opt);
  return runner.run();
}

std::vector<PlanEntry> plan_stages(const Spec& spec, const Dag& dag, const StageRegistry& registry, Cache& cache,
                                   const std::vector<json>& files, bool force) {
  (void)registry;
  std::vector<PlanEntry> plan(spec.stages.size());
  std::vector<std::optional<CacheEntry>> entries(spec.stages.size());
  for (std::size_t i : dag.topo) {
    const StageSpec& s = spec.stages[i];
    PlanEntry& pe = plan[i];
    std::map<std::string, std::vector<Artifact>> inputs;
    std::string blocked;
    for (const auto& [port, ins] : dag.nodes[i].inputs) {
      for (const auto& in : ins) {
        if (!entries[in.producer]) {
          if (blocked.empty()) blocked = spec.stages[in.producer].id;
          continue;
        }
        auto it = entries[in.producer]->outputs.find(in.port);
        if (it != entries[in.producer]->outputs.end()) inputs[port].push_back(it->second);
      }
    }
    if (!blocked.empty()) {
      pe.reuse = false;
      pe.reason = fmt::format("input from '{}', which runs first (reused afterwards if its new output is identical)", blocked);
      continue;
    }
    json material = key_material(*s.stage_type, s.params, inputs, files[i]);
    pe.key = Cache::key_of(material);
    auto prev = cache.last_run(spec.experiment, s.id);
    if (!force) {
      if (auto e = cache.lookup(pe.key)) {
        pe.reuse = true;
        pe.reason = hit_reason(pe.key, prev, material);
        entries[i] = std::move(e);
        continue;
      }
    }
    pe.reason = miss_reason(force, prev, material);
  }
  return plan;
}

std::map<std::string, Artifact> run_stage_standalone(const StageType& type, const StageRegistry& registry,
                                                     const json& params,
                                                     const std::map<std::string, std::vector<Artifact>>& inputs,
                                                     const fs::path& out_dir, int threads) {
  json resolved = json::object();
  Diagnostics diag;
  if (!params.is_object()) fail(ErrorKind::kSpec, "stage type '{}': params must be a JSON object", type.name);
  for (const auto& [k, v] : params.items()) {
    const ParamDecl* d = type.find_param(k);
    if (!d) {
      diag.error(fmt::format("unknown param '{}'{}", k, did_you_mean(k, type.param_names())));
      continue;
    }
    std::string err = check_param_value(*d, v);
    if (!err.empty()) diag.error(fmt::format("param '{}': {}", k, err));
    resolved[k] = v;
  }
  for (const auto& d : type.params) {
    if (resolved.contains(d.name)) continue;
    if (!d.default_value.is_null()) resolved[d.name] = d.default_value;
    else if (d.required) diag.error(fmt::format("missing required param '{}'", d.name));
  }
  for (const auto& [port, arts] : inputs) {
    if (!type.find_input(port)) diag.error(fmt::format("unknown input '{}'", port));
  }
  diag.throw_if_any(ErrorKind::kSpec, "stage type '" + type.name + "'");
  fs::create_directories(out_dir);
  tbb::task_arena arena(std::max(1, threads));
  StageContextInit init;
  init.type = &type;
  init.registry = &registry;
  init.experiment = "standalone";
  init.stage_id = type.name;
  init.params = resolved;
  init.inputs = inputs;
  init.staging_dir = out_dir;
  init.cache_key = sha256_hex(canonical_json(key_material(type, resolved, inputs, json::object())));
  init.arena = &arena;
  init.threads = std::max(1, threads);
  StageContext ctx(std::move(init));
  arena.execute([&] { type.run(ctx); });
  std::map<std::string, Artifact> outs;
  for (const auto& port : type.outputs) {
    fs::path p = ctx.output_path(port.name);
    std::error_code ec;
    if (!fs::exists(p, ec)) {
      if (port.optional) continue;
      fail(ErrorKind::kRuntime, "stage type '{}' did not write its output '{}' ({})", type.name, port.name, p.string());
    }
    outs[port.name] = Artifact{port.type, p, sha256_path(p)};
  }
  return outs;
}

}  // namespace qpipe
