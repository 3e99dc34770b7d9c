#pragma once
// One error type for the whole project (STYLE.md 11). Every error carries a
// category that decides the process exit code, and a message that names the
// file, the place and what was expected.

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace qpipe {

// Exit codes of the `qpipe` CLI. Distinct per category so scripts can tell a
// failed gate from a broken spec from a crash.
enum class ErrorKind : int {
  kUsage = 2,         // bad command line
  kSpec = 3,          // malformed or invalid experiment spec / config file
  kInput = 4,         // missing or malformed model, dataset or params file
  kUnsupported = 5,   // model uses ops/attributes/types qpipe does not support
  kGateFailed = 6,    // a gate in the spec did not hold
  kRegression = 7,    // `qpipe compare` found a regression beyond tolerance
  kRuntime = 8,       // a stage failed while running
  kInterrupted = 130, // SIGINT
};

inline int exit_code(ErrorKind k) { return static_cast<int>(k); }
const char* error_kind_name(ErrorKind k);

class PtqError : public std::runtime_error {
 public:
  PtqError(ErrorKind kind, std::string message)
      : std::runtime_error(std::move(message)), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

template <typename... Args>
[[noreturn]] void fail(ErrorKind kind, fmt::format_string<Args...> f, Args&&... args) {
  throw PtqError(kind, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace qpipe
