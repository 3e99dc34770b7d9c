#include "pipeline/cache.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <set>

#include "engine/error.h"
#include "pipeline/atomic_file.h"
#include "pipeline/sha256.h"
#include "pipeline/text_util.h"
#include "qpipe/version.h"

namespace qpipe {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void fsync_file(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void fsync_tree(const fs::path& dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) fsync_file(it->path());
    else if (it->is_directory()) fsync_directory(it->path());
  }
  fsync_directory(dir);
}

std::string short_hash(const json& j) {
  return j.is_string() ? j.get<std::string>().substr(0, 12) : canonical_json(j);
}

}  // namespace

std::string safe_file_name(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '_' || c == '-' || c == '[' || c == ']' || c == '=' || c == ',' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  if (out.empty() || out[0] == '.') out = "%2E" + out.substr(out.empty() ? 0 : 1);
  return out;
}

Cache::Cache(fs::path dir) : dir_(fs::absolute(dir).lexically_normal()) {
  std::error_code ec;
  fs::create_directories(dir_ / "tmp", ec);
  if (ec) fail(ErrorKind::kInput, "cache folder {}: cannot create: {}", dir_.string(), ec.message());
}

int Cache::clean_stale() {
  int removed = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir_ / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    // <key>.<pid>.<n...>
    auto d1 = name.find('.');
    auto d2 = d1 == std::string::npos ? d1 : name.find('.', d1 + 1);
    long pid = 0;
    if (d2 != std::string::npos) pid = std::strtol(name.substr(d1 + 1, d2 - d1 - 1).c_str(), nullptr, 10);
    bool alive = pid > 0 && (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
    if (pid == ::getpid()) alive = true;
    if (!alive) {
      std::error_code rec;
      fs::remove_all(it->path(), rec);
      if (!rec) ++removed;
    }
  }
  return removed;
}

std::string Cache::key_of(const json& material) { return sha256_hex(canonical_json(material)); }

fs::path Cache::entry_dir(const std::string& key) const { return dir_ / key.substr(0, 2) / key; }

std::optional<CacheEntry> Cache::lookup(const std::string& key) const {
  fs::path d = entry_dir(key);
  std::error_code ec;
  if (!fs::is_directory(d, ec)) return std::nullopt;
  json sj;
  try {
    sj = read_json_file((d / "stage.json").string());
  } catch (const PtqError&) {
    return std::nullopt;
  }
  CacheEntry e;
  e.key = key;
  e.dir = d;
  e.material = sj.value("material", json::object());
  if (!sj.contains("outputs") || !sj["outputs"].is_object()) return std::nullopt;
  for (const auto& [port, o] : sj["outputs"].items()) {
    Artifact a;
    a.type = o.value("type", "");
    a.path = d / o.value("file", "");
    a.sha256 = o.value("sha256", "");
    if (a.type.empty() || a.sha256.size() != 64 || !fs::exists(a.path, ec)) return std::nullopt;
    e.outputs[port] = a;
  }
  return e;
}

fs::path Cache::make_staging(const std::string& key) {
  fs::path p = dir_ / "tmp" / (key + "." + unique_suffix());
  std::error_code ec;
  fs::create_directories(p, ec);
  if (ec) fail(ErrorKind::kRuntime, "cannot create staging folder {}: {}", p.string(), ec.message());
  return p;
}

void Cache::discard(const fs::path& staging) {
  std::error_code ec;
  fs::remove_all(staging, ec);
}

CacheEntry Cache::commit(const fs::path& staging, const std::string& key, const json& material, const StageType& type,
                         const StageRegistry& registry, bool replace) {
  std::error_code ec;
  fs::remove_all(staging / ".scratch", ec);
  json outputs = json::object();
  for (const auto& port : type.outputs) {
    const ArtifactType* at = registry.artifact_type(port.type);
    std::string file = port.name + (at ? at->extension : std::string());
    fs::path p = staging / file;
    if (!fs::exists(p, ec)) {
      if (port.optional) continue;
      fail(ErrorKind::kRuntime, "stage type '{}' did not write its output '{}' ({}, expected as '{}' in its staging folder)",
           type.name, port.name, port.type, file);
    }
    bool is_dir = fs::is_directory(p, ec);
    if (at && at->storage == Storage::kDirectory && !is_dir) {
      fail(ErrorKind::kRuntime, "stage type '{}': output '{}' must be a folder", type.name, port.name);
    }
    if (at && at->storage != Storage::kDirectory && is_dir) {
      fail(ErrorKind::kRuntime, "stage type '{}': output '{}' must be a file", type.name, port.name);
    }
    if (at && at->storage == Storage::kJson) {
      json doc;
      try {
        doc = read_json_file(p.string());
      } catch (const PtqError& e) {
        fail(ErrorKind::kRuntime, "stage type '{}': output '{}' is not valid JSON: {}", type.name, port.name, e.what());
      }
      for (const auto& k : at->required_keys) {
        if (!doc.is_object() || !doc.contains(k)) {
          fail(ErrorKind::kRuntime, "stage type '{}': output '{}' ({}) lacks required key '{}' (required: {})",
               type.name, port.name, at->name, k, quoted_list(at->required_keys));
        }
      }
    }
    uintmax_t bytes = is_dir ? 0 : fs::file_size(p, ec);
    outputs[port.name] = {{"type", port.type}, {"file", file}, {"sha256", sha256_path(p)}, {"bytes", bytes}};
  }
  json sj = {{"key", key}, {"material", material}, {"outputs", outputs}};
  write_file_atomic(staging / "stage.json", pretty_json(sj));
  fsync_tree(staging);

  fs::path final_dir = entry_dir(key);
  fs::create_directories(final_dir.parent_path(), ec);
  if (::rename(staging.c_str(), final_dir.c_str()) != 0) {
    int err = errno;
    if (err != EEXIST && err != ENOTEMPTY) {
      discard(staging);
      fail(ErrorKind::kRuntime, "cannot move {} into the cache at {}: {}", staging.string(), final_dir.string(),
           std::strerror(err));
    }
    auto existing = lookup(key);
    if (existing && !replace) {
      discard(staging);  // someone produced the same key meanwhile; keep theirs
      return *existing;
    }
    fs::path old = dir_ / "tmp" / (key + "." + unique_suffix() + ".old");
    if (::rename(final_dir.c_str(), old.c_str()) != 0 || ::rename(staging.c_str(), final_dir.c_str()) != 0) {
      int err2 = errno;
      discard(staging);
      fail(ErrorKind::kRuntime, "cannot replace cache entry {}: {}", final_dir.string(), std::strerror(err2));
    }
    fs::remove_all(old, ec);
  }
  fsync_directory(final_dir.parent_path());
  auto entry = lookup(key);
  if (!entry) fail(ErrorKind::kRuntime, "cache entry {} unreadable right after commit", final_dir.string());
  return *entry;
}

std::string Cache::hash_file_memo(const fs::path& file) {
  std::error_code ec;
  auto size = fs::file_size(file, ec);
  if (ec) fail(ErrorKind::kInput, "{}: cannot read: {}", file.string(), ec.message());
  auto mtime = fs::last_write_time(file, ec).time_since_epoch().count();
  std::string k = file.string();
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    if (!index_loaded_) {
      index_loaded_ = true;
      try {
        if (fs::exists(dir_ / "file-hashes.json")) index_ = read_json_file((dir_ / "file-hashes.json").string());
      } catch (const PtqError&) {
        index_ = json::object();  // a broken index is only a lost optimization
      }
      if (!index_.is_object()) index_ = json::object();
    }
    if (auto it = index_.find(k); it != index_.end() && it->is_object() &&
                                  it->value("size", uintmax_t{0}) == size &&
                                  it->value("mtime_ns", int64_t{0}) == static_cast<int64_t>(mtime) &&
                                  it->value("sha256", std::string()).size() == 64) {
      return (*it)["sha256"].get<std::string>();
    }
  }
  std::string h = sha256_file(file);
  std::lock_guard<std::mutex> lock(index_mu_);
  index_[k] = {{"size", size}, {"mtime_ns", static_cast<int64_t>(mtime)}, {"sha256", h}};
  index_dirty_ = true;
  return h;
}

std::string Cache::hash_input(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_directory(p, ec)) return hash_file_memo(p);
  std::vector<std::pair<std::string, fs::path>> files;
  for (fs::recursive_directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) files.emplace_back(it->path().lexically_relative(p).generic_string(), it->path());
  }
  if (ec) fail(ErrorKind::kInput, "{}: cannot list folder: {}", p.string(), ec.message());
  std::sort(files.begin(), files.end());
  Sha256 h;  // same construction as sha256_directory()
  for (const auto& [rel, path] : files) {
    h.update(rel);
    h.update(std::string_view("\0", 1));
    h.update(hash_file_memo(path));
    h.update("\n");
  }
  return h.hex_digest();
}

void Cache::save_hash_index() {
  std::lock_guard<std::mutex> lock(index_mu_);
  if (!index_dirty_) return;
  write_file_atomic(dir_ / "file-hashes.json", pretty_json(index_));
  index_dirty_ = false;
}

fs::path Cache::run_record_path(const std::string& experiment, const std::string& stage_id) const {
  return dir_ / "runs" / safe_file_name(experiment) / (safe_file_name(stage_id) + ".json");
}

std::optional<json> Cache::last_run(const std::string& experiment, const std::string& stage_id) const {
  fs::path p = run_record_path(experiment, stage_id);
  std::error_code ec;
  if (!fs::exists(p, ec)) return std::nullopt;
  try {
    return read_json_file(p.string());
  } catch (const PtqError&) {
    return std::nullopt;
  }
}

void Cache::record_run(const std::string& experiment, const std::string& stage_id, const json& record) {
  write_file_atomic(run_record_path(experiment, stage_id), pretty_json(record));
}

std::string Cache::relative(const fs::path& p) const { return p.lexically_relative(dir_).generic_string(); }

json key_material(const StageType& type, const json& params, const std::map<std::string, std::vector<Artifact>>& inputs,
                  const json& files) {
  json in = json::object();
  for (const auto& [port, arts] : inputs) {
    json list = json::array();
    for (const auto& a : arts) list.push_back(a.sha256);
    in[port] = list;
  }
  return {{"qpipe_version", kVersion},
          {"stage_type", type.name},
          {"stage_version", type.version},
          {"params", params},
          {"inputs", in},
          {"files", files.is_null() ? json::object() : files}};
}

std::vector<std::string> explain_material_change(const json& before, const json& after) {
  std::vector<std::string> out;
  auto get = [](const json& j, const char* k) { return j.is_object() && j.contains(k) ? j[k] : json(); };
  if (get(before, "stage_type") != get(after, "stage_type")) {
    out.push_back(fmt::format("stage type {} -> {}", canonical_json(get(before, "stage_type")),
                              canonical_json(get(after, "stage_type"))));
  }
  if (get(before, "stage_version") != get(after, "stage_version")) {
    out.push_back(fmt::format("stage code version {} -> {}", canonical_json(get(before, "stage_version")),
                              canonical_json(get(after, "stage_version"))));
  }
  if (get(before, "qpipe_version") != get(after, "qpipe_version")) {
    out.push_back(fmt::format("qpipe version {} -> {}", canonical_json(get(before, "qpipe_version")),
                              canonical_json(get(after, "qpipe_version"))));
  }
  auto diff_maps = [&](const char* section, auto describe) {
    json b = get(before, section), a = get(after, section);
    if (!b.is_object()) b = json::object();
    if (!a.is_object()) a = json::object();
    std::set<std::string> keys;
    for (const auto& [k, v] : b.items()) keys.insert(k);
    for (const auto& [k, v] : a.items()) keys.insert(k);
    for (const auto& k : keys) {
      bool hb = b.contains(k), ha = a.contains(k);
      if (hb && ha && b[k] == a[k]) continue;
      out.push_back(describe(k, hb ? b[k] : json(), ha ? a[k] : json(), hb, ha));
    }
  };
  diff_maps("params", [](const std::string& k, const json& b, const json& a, bool hb, bool ha) {
    if (!hb) return fmt::format("param '{}' added: {}", k, canonical_json(a));
    if (!ha) return fmt::format("param '{}' removed (was {})", k, canonical_json(b));
    return fmt::format("param '{}': {} -> {}", k, canonical_json(b), canonical_json(a));
  });
  diff_maps("inputs", [](const std::string& k, const json& b, const json& a, bool hb, bool ha) {
    if (!hb) return fmt::format("input '{}' added", k);
    if (!ha) return fmt::format("input '{}' removed", k);
    std::string bs, as;
    for (const auto& x : b) bs += (bs.empty() ? "" : ",") + short_hash(x);
    for (const auto& x : a) as += (as.empty() ? "" : ",") + short_hash(x);
    return fmt::format("input '{}' changed ({} -> {})", k, bs, as);
  });
  diff_maps("files", [](const std::string& k, const json& b, const json& a, bool hb, bool ha) {
    if (!hb) return fmt::format("file param '{}' added", k);
    if (!ha) return fmt::format("file param '{}' removed", k);
    std::string bp = b.value("path", ""), ap = a.value("path", "");
    if (bp != ap) return fmt::format("file '{}' path {} -> {}", k, bp, ap);
    return fmt::format("file '{}' ({}) content changed ({} -> {})", k, ap, short_hash(b.value("sha256", json())),
                       short_hash(a.value("sha256", json())));
  });
  return out;
}

}  // namespace qpipe
