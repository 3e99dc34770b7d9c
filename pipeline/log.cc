#include "pipeline/log.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "pipeline/text_util.h"

namespace qpipe {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

LogOptions detect_log_options(bool quiet, bool json_mode, std::FILE* out) {
  LogOptions o;
  o.out = out;
  o.quiet = quiet;
  const char* ci = std::getenv("CI");
  bool in_ci = ci && std::string(ci) == "true";
  if (json_mode) o.mode = LogMode::kJson;
  else if (!in_ci && ::isatty(::fileno(out))) o.mode = LogMode::kTty;
  else o.mode = LogMode::kPlain;
  return o;
}

Logger::Logger(LogOptions options) : opt_(options), t0_(Clock::now()), last_draw_(Clock::now()) {}

Logger::~Logger() { finish(); }

double Logger::now_s() const { return std::chrono::duration<double>(Clock::now() - t0_).count(); }

namespace {
const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarn: return "warn";
    case LogLevel::kError: return "error";
  }
  return "info";
}

std::string fmt_duration(double s) {
  if (s < 0 || s > 1e7) return "?";
  if (s < 60) return fmt::format("{:.0f}s", s);
  if (s < 3600) return fmt::format("{}m{:02}s", int(s) / 60, int(s) % 60);
  return fmt::format("{}h{:02}m", int(s) / 3600, (int(s) % 3600) / 60);
}
}  // namespace

void Logger::clear_block_locked() {
  if (opt_.mode != LogMode::kTty || drawn_ == 0) return;
  std::fprintf(opt_.out, "\x1b[%dA\r\x1b[J", drawn_);
  drawn_ = 0;
}

std::string Logger::progress_text(const std::string& stage, const Active& a) const {
  double el = std::chrono::duration<double>(Clock::now() - a.start).count();
  if (!a.has_progress) return fmt::format("  > {}  running {}", stage, fmt_duration(el));
  double rate = el > 0 ? a.done / el : 0;
  std::string s = fmt::format("  > {}  {}/{} {}", stage, a.done, a.total, a.unit);
  if (rate > 0) s += fmt::format("  {:.0f} {}/s", rate, a.unit);
  if (rate > 0 && a.total > a.done) s += "  ETA " + fmt_duration((a.total - a.done) / rate);
  s += "  " + fmt_duration(el);
  return s;
}

void Logger::redraw_locked(bool force) {
  if (opt_.mode != LogMode::kTty || opt_.quiet) return;
  auto now = Clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
  last_draw_ = now;
  clear_block_locked();
  for (const auto& id : order_) {
    std::string line = progress_text(id, active_.at(id));
    if (line.size() > 160) line.resize(160);
    std::fprintf(opt_.out, "%s\n", line.c_str());
    ++drawn_;
  }
  std::fflush(opt_.out);
}

void Logger::emit_locked(LogLevel level, const std::string& stage, const std::string& text, json ev) {
  bool shown = !opt_.quiet || level >= LogLevel::kWarn;
  if (level == LogLevel::kDebug) shown = false;
  std::string line;
  if (opt_.mode == LogMode::kJson) {
    ev["t"] = std::round(now_s() * 1000) / 1000;
    if (!ev.contains("level")) ev["level"] = level_name(level);
    if (!stage.empty() && !ev.contains("stage")) ev["stage"] = stage;
    if (!ev.contains("msg")) ev["msg"] = text;
    line = canonical_json(ev);
  } else {
    const char* tag = level == LogLevel::kWarn ? "warning: " : level == LogLevel::kError ? "error: " : "";
    line = fmt::format("[{:7.1f}s] {}{}{}", now_s(), stage.empty() ? "" : stage + ": ", tag, text);
  }
  if (opt_.capture) captured_.push_back(line);
  if (!shown) return;
  clear_block_locked();
  std::fprintf(opt_.out, "%s\n", line.c_str());
  redraw_locked(true);
  std::fflush(opt_.out);
}

void Logger::log(LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  emit_locked(level, "", message, json::object());
}

void Logger::event(json ev, const std::string& text, LogLevel level) {
  std::lock_guard<std::mutex> lock(mu_);
  emit_locked(level, "", text, std::move(ev));
}

void Logger::stage_log(const std::string& stage_id, LogLevel level, const std::string& message) {
  std::lock_guard<std::mutex> lock(mu_);
  emit_locked(level, stage_id, message, json{{"event", "log"}});
}

void Logger::stage_progress(const std::string& stage_id, uint64_t done, uint64_t total, const std::string& unit) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = active_.find(stage_id);
  if (it == active_.end()) return;
  Active& a = it->second;
  a.done = done;
  a.total = total;
  a.unit = unit;
  a.has_progress = true;
  if (opt_.mode == LogMode::kTty) {
    redraw_locked(done >= total);
    return;
  }
  auto now = Clock::now();
  if (now - a.last_plain < std::chrono::seconds(5) && done < total) return;
  a.last_plain = now;
  double el = std::chrono::duration<double>(now - a.start).count();
  double rate = el > 0 ? done / el : 0;
  json ev = {{"event", "progress"}, {"done", done}, {"total", total}, {"unit", unit}, {"rate", std::round(rate * 10) / 10}};
  if (rate > 0 && total > done) ev["eta_s"] = std::round((total - done) / rate);
  emit_locked(LogLevel::kInfo, stage_id, progress_text(stage_id, a).substr(4 + stage_id.size() + 2), ev);
}

void Logger::on_stage_start(const StageSpec& s, StageRecord&) {
  std::lock_guard<std::mutex> lock(mu_);
  Active a;
  a.start = a.last_plain = Clock::now();
  active_[s.id] = a;
  order_.push_back(s.id);
}

void Logger::on_stage_decided(const StageSpec& s, StageRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  json ev = {{"event", r.cache_hit ? "reuse" : "run"}, {"reason", r.reason}, {"type", s.type}};
  emit_locked(LogLevel::kInfo, s.id, (r.cache_hit ? "reuse: " : "run: ") + r.reason, ev);
}

void Logger::on_stage_finish(const StageSpec& s, StageRecord& r) {
  std::lock_guard<std::mutex> lock(mu_);
  active_.erase(s.id);
  order_.erase(std::remove(order_.begin(), order_.end(), s.id), order_.end());
  json ev = {{"event", "finish"}, {"status", status_name(r.status)}, {"wall_s", std::round(r.wall_seconds * 1000) / 1000}};
  switch (r.status) {
    case StageStatus::kOk:
      if (!r.cache_hit) emit_locked(LogLevel::kInfo, s.id, fmt::format("done in {:.2f}s", r.wall_seconds), ev);
      else redraw_locked(true);
      break;
    case StageStatus::kFailed:
      ev["message"] = r.message;
      ev["error_kind"] = error_kind_name(r.error_kind);
      emit_locked(LogLevel::kError, s.id, "FAILED: " + r.message, ev);
      break;
    case StageStatus::kSkipped:
      emit_locked(LogLevel::kWarn, s.id, "skipped: " + r.message, ev);
      break;
    case StageStatus::kCancelled:
      emit_locked(LogLevel::kWarn, s.id, "cancelled: " + r.message, ev);
      break;
    case StageStatus::kPending:
      break;
  }
}

void Logger::finish() {
  std::lock_guard<std::mutex> lock(mu_);
  clear_block_locked();
  std::fflush(opt_.out);
}

std::vector<std::string> Logger::captured() const {
  std::lock_guard<std::mutex> lock(mu_);
  return captured_;
}

}  // namespace qpipe
