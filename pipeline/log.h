#pragma once
// Terminal output of a run. Four modes:
//  - tty: log lines plus one progress line per running stage (done/total,
//    rate, ETA), redrawn in place; chosen when stderr is a terminal and CI is
//    not "true";
//  - plain: log lines only; progress as an occasional line (every 5 s or so);
//  - json (--log-json): one JSON object per line: {"t", "level", "stage"?,
//    "event", "msg", ...};
//  - quiet (--quiet): warnings and errors only.
// Thread-safe: stages log from any thread.

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "pipeline/scheduler.h"
#include "pipeline/stage_context.h"

namespace qpipe {

enum class LogMode { kTty, kPlain, kJson };

struct LogOptions {
  LogMode mode = LogMode::kPlain;
  bool quiet = false;
  std::FILE* out = stderr;
  bool capture = false;  // also keep every line (tests)
};

// tty when `out` is a terminal and CI != "true"; json when asked.
LogOptions detect_log_options(bool quiet, bool json, std::FILE* out = stderr);

class Logger : public StageEvents, public RunObserver {
 public:
  explicit Logger(LogOptions options);
  ~Logger() override;

  void log(LogLevel level, const std::string& message);
  void info(const std::string& m) { log(LogLevel::kInfo, m); }
  void warn(const std::string& m) { log(LogLevel::kWarn, m); }
  void error(const std::string& m) { log(LogLevel::kError, m); }
  // A structured event (json mode: emitted as is plus "t"; others: `text`).
  void event(nlohmann::json ev, const std::string& text, LogLevel level = LogLevel::kInfo);

  // StageEvents
  void stage_log(const std::string& stage_id, LogLevel level, const std::string& message) override;
  void stage_progress(const std::string& stage_id, uint64_t done, uint64_t total, const std::string& unit) override;
  // RunObserver
  void on_stage_start(const StageSpec& s, StageRecord& r) override;
  void on_stage_decided(const StageSpec& s, StageRecord& r) override;
  void on_stage_finish(const StageSpec& s, StageRecord& r) override;

  // Clears the progress block (before printing a final summary).
  void finish();
  std::vector<std::string> captured() const;
  const LogOptions& options() const { return opt_; }

 private:
  struct Active {
    std::chrono::steady_clock::time_point start, last_plain;
    uint64_t done = 0, total = 0;
    std::string unit;
    bool has_progress = false;
  };
  void emit_locked(LogLevel level, const std::string& stage, const std::string& text, nlohmann::json ev);
  void redraw_locked(bool force);
  void clear_block_locked();
  std::string progress_text(const std::string& stage, const Active& a) const;
  double now_s() const;

  LogOptions opt_;
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point t0_;
  std::chrono::steady_clock::time_point last_draw_;
  std::map<std::string, Active> active_;
  std::vector<std::string> order_;  // active stages in start order
  int drawn_ = 0;
  std::vector<std::string> captured_;
};

}  // namespace qpipe
