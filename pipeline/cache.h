#pragma once
// The content-addressed artifact cache (DVC's run cache, STYLE.md 5 and 8).
//
// A stage's key is the SHA-256 of the canonical JSON (text_util.h) of its
// "material": {qpipe_version, stage_type, stage_version, params (resolved
// values, defaults included), inputs (port -> [artifact sha256...]), files
// (path param -> {path, sha256 of the content})}. Descriptions, stage ids and
// other cosmetic fields are not part of it, so editing prose reuses results
// and two stages doing the same work share one entry.
//
// Layout under the cache folder:
//   <k[:2]>/<k>/stage.json        the material, and every output's file, type, sha256, size
//   <k[:2]>/<k>/<port><ext>       the outputs
//   tmp/<k>.<pid>.<n>/            a stage's staging folder while it runs
//   runs/<experiment>/<stage>.json  the material of the stage's last run (for "why did it rerun")
//   file-hashes.json              content hashes of input files by (path, size, mtime)
//
// Atomicity: a stage writes only into its staging folder; commit() writes
// stage.json, fsyncs, and renames the folder to <k[:2]>/<k> in one step. An
// entry therefore either exists completely or not at all, whenever the
// process dies. Staging folders of dead processes are removed by
// clean_stale() at the start of the next run.

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/artifact.h"
#include "pipeline/stage_registry.h"

namespace qpipe {

struct CacheEntry {
  std::string key;
  std::filesystem::path dir;
  std::map<std::string, Artifact> outputs;  // by port
  nlohmann::json material;
};

class Cache {
 public:
  // Creates the folder if needed. Throws PtqError(kInput) if it cannot.
  explicit Cache(std::filesystem::path dir);
  const std::filesystem::path& dir() const { return dir_; }

  // Removes staging folders whose process is gone; returns how many.
  int clean_stale();

  static std::string key_of(const nlohmann::json& material);
  std::filesystem::path entry_dir(const std::string& key) const;
  // A complete entry (stage.json readable, every listed output present), or nothing.
  std::optional<CacheEntry> lookup(const std::string& key) const;

  // A fresh, empty staging folder for `key`.
  std::filesystem::path make_staging(const std::string& key);
  // Hashes the outputs found in `staging` (files named <port><ext>, as
  // StageContext::output_path makes them), writes stage.json and renames the
  // folder into place. If an entry for the key exists it is replaced when
  // `replace` (--force), otherwise kept (the staging folder is discarded).
  CacheEntry commit(const std::filesystem::path& staging, const std::string& key, const nlohmann::json& material,
                    const StageType& type, const StageRegistry& registry, bool replace);
  void discard(const std::filesystem::path& staging);

  // Content hash of an input file or folder named by a path param. Files are
  // hashed once per (path, size, mtime) and remembered in file-hashes.json,
  // so a 180 MB dataset is read only when it changes. Thread-safe.
  std::string hash_input(const std::filesystem::path& p);
  void save_hash_index();

  std::optional<nlohmann::json> last_run(const std::string& experiment, const std::string& stage_id) const;
  void record_run(const std::string& experiment, const std::string& stage_id, const nlohmann::json& record);

  // `p` relative to the cache folder (generic separators), for reports.
  std::string relative(const std::filesystem::path& p) const;

 private:
  std::string hash_file_memo(const std::filesystem::path& file);
  std::filesystem::path run_record_path(const std::string& experiment, const std::string& stage_id) const;

  std::filesystem::path dir_;
  std::mutex index_mu_;
  nlohmann::json index_;  // path -> {size, mtime_ns, sha256}
  bool index_loaded_ = false;
  bool index_dirty_ = false;
};

// The key material of a stage execution.
nlohmann::json key_material(const StageType& type, const nlohmann::json& params,
                            const std::map<std::string, std::vector<Artifact>>& inputs,
                            const nlohmann::json& files);

// What differs between two materials, one readable line each:
//   param 'act_type': "int8" -> "uint8"; input 'model' changed (3fa2c1.. -> 9bb0e1..);
//   file 'dir' (/path) changed; stage version 1 -> 2; qpipe version 0.1.0 -> 0.2.0.
std::vector<std::string> explain_material_change(const nlohmann::json& before, const nlohmann::json& after);

// A file-name-safe form of a stage id (brackets and '=' kept, others %XX).
std::string safe_file_name(const std::string& s);

}  // namespace qpipe
