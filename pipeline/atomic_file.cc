#include "pipeline/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "engine/error.h"

namespace qpipe {
namespace fs = std::filesystem;

std::string unique_suffix() {
  static std::atomic<uint64_t> counter{0};
  static const uint64_t salt = [] {
    std::random_device rd;
    return (uint64_t(rd()) << 32) ^ rd() ^
           uint64_t(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  uint64_t n = counter.fetch_add(1);
  return fmt::format("{}.{}{:06x}", ::getpid(), n, (salt + n * 0x9e3779b97f4a7c15ULL) & 0xffffff);
}

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  fs::path dir = path.parent_path();
  std::error_code ec;
  if (!dir.empty()) {
    fs::create_directories(dir, ec);
    if (ec) fail(ErrorKind::kRuntime, "{}: cannot create folder: {}", dir.string(), ec.message());
  }
  fs::path tmp = path;
  tmp += ".tmp." + unique_suffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail(ErrorKind::kRuntime, "{}: cannot create temporary file: {}", tmp.string(), std::strerror(errno));
  const char* p = bytes.data();
  std::size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      fail(ErrorKind::kRuntime, "{}: write failed: {}", path.string(), std::strerror(err));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorKind::kRuntime, "{}: cannot flush to disk: {}", path.string(), std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    fail(ErrorKind::kRuntime, "{}: cannot rename temporary into place: {}", path.string(), std::strerror(err));
  }
  fsync_directory(dir);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(ErrorKind::kInput, "{}: cannot open: {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(ErrorKind::kInput, "{}: read error", path.string());
  return ss.str();
}

bool replace_symlink_atomic(const fs::path& link, const fs::path& target) {
  fs::path tmp = link;
  tmp += ".tmp." + unique_suffix();
  if (::symlink(target.c_str(), tmp.c_str()) != 0) return false;
  if (::rename(tmp.c_str(), link.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return false;
  }
  fsync_directory(link.parent_path());
  return true;
}

}  // namespace qpipe
