#pragma once
// Helpers shared by tests: where ../shared is, and how a test that needs it
// behaves when it is missing (fails under CI=true, skips elsewhere).

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

namespace qpipe::testing {

// The shared data folder: $QPIPE_SHARED if set, else ../shared beside the
// repository root. Returns "" when it does not exist.
inline std::string shared_dir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("QPIPE_SHARED"); env && *env) {
    return fs::is_directory(env) ? fs::path(env).lexically_normal().string() : std::string();
  }
  fs::path p = fs::path(QPIPE_SOURCE_DIR) / ".." / "shared";
  return fs::is_directory(p) ? fs::weakly_canonical(p).string() : std::string();
}

inline bool running_in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

inline std::string source_dir() { return QPIPE_SOURCE_DIR; }

// Path of the qpipe CLI binary built alongside the tests.
inline std::string qpipe_bin() {
  if (const char* env = std::getenv("QPIPE_BIN"); env && *env) return env;
  return std::string(QPIPE_BINARY_DIR) + "/qpipe";
}

}  // namespace qpipe::testing

// Use at the top of a test that needs ../shared. `var` receives the folder.
#define QPIPE_REQUIRE_SHARED(var)                                                   \
  std::string var = ::qpipe::testing::shared_dir();                                 \
  if (var.empty()) {                                                                \
    if (::qpipe::testing::running_in_ci()) {                                        \
      FAIL() << "../shared (or $QPIPE_SHARED) is missing, and CI=true requires it"; \
    }                                                                               \
    GTEST_SKIP() << "needs the shared data: place the shared/ folder (CIFAR-10 "    \
                    "binary batches, models, reference) beside the repository, "    \
                    "or set QPIPE_SHARED to its path";                              \
  }
