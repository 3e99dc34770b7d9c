#include "engine/io/cifar10.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "engine/error.h"

namespace qpipe {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kRec = Cifar10Dataset::kRecordBytes;
constexpr int64_t kPlane = Cifar10Dataset::kPixelsPerPlane;

// Owns one read-only file descriptor.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.fd_;
      o.fd_ = -1;
    }
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }

 private:
  void reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

// pread until `n` bytes are in, or fail naming the file and offset.
void pread_exact(int fd, const std::string& path, void* dst, int64_t n, int64_t offset) {
  auto* p = static_cast<char*>(dst);
  int64_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd, p + done, static_cast<size_t>(n - done), static_cast<off_t>(offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(ErrorKind::kInput, "CIFAR-10 file '{}': read of {} bytes at byte offset {} failed: {}", path,
           n, offset, std::strerror(errno));
    }
    if (r == 0) {
      fail(ErrorKind::kInput,
           "CIFAR-10 file '{}': unexpected end of file at byte offset {} (wanted {} bytes from offset {}); "
           "the file changed or was truncated after it was opened",
           path, offset + done, n, offset);
    }
    done += r;
  }
}

[[noreturn]] void bad_label(const std::string& path, int64_t record, int64_t offset, int value) {
  fail(ErrorKind::kInput,
       "CIFAR-10 file '{}': record {} (byte offset {}) has label {}; expected a class index 0..9", path,
       record, offset, value);
}

std::vector<std::string> read_class_names(const fs::path& meta) {
  std::ifstream in(meta);
  if (!in) {
    fail(ErrorKind::kInput,
         "CIFAR-10 class-name file '{}' is missing or unreadable (expected batches.meta.txt with the 10 "
         "class names, one a line)",
         meta.string());
  }
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    lines.push_back(line);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].empty()) {
      fail(ErrorKind::kInput, "CIFAR-10 class-name file '{}': line {} is empty; expected 10 non-empty class names",
           meta.string(), i + 1);
    }
  }
  if (lines.size() != static_cast<std::size_t>(Cifar10Dataset::kNumClasses)) {
    fail(ErrorKind::kInput, "CIFAR-10 class-name file '{}' has {} class names; expected 10, one a line",
         meta.string(), lines.size());
  }
  return lines;
}

}  // namespace

struct Cifar10Dataset::State {
  std::string dir;
  std::vector<std::string> files;
  std::vector<int64_t> records;
  std::vector<int64_t> first_index;  // global index of each file's record 0
  std::vector<Fd> fds;
  std::vector<std::string> class_names;
  int64_t total = 0;
};

const char* cifar10_split_name(Cifar10Split split) {
  return split == Cifar10Split::kTrain ? "train" : "test";
}

Cifar10Split parse_cifar10_split(std::string_view name) {
  if (name == "train") return Cifar10Split::kTrain;
  if (name == "test") return Cifar10Split::kTest;
  fail(ErrorKind::kSpec, "unknown CIFAR-10 split '{}'; expected 'train' or 'test'", name);
}

std::vector<std::string> cifar10_split_files(Cifar10Split split) {
  if (split == Cifar10Split::kTest) return {"test_batch.bin"};
  return {"data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"};
}

Cifar10Dataset open_cifar10(const std::string& dir, Cifar10Split split) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fail(ErrorKind::kInput,
         "CIFAR-10 folder '{}' does not exist (expected the binary distribution: data_batch_1..5.bin, "
         "test_batch.bin, batches.meta.txt)",
         dir);
  }
  if (!fs::is_directory(dir, ec)) {
    fail(ErrorKind::kInput, "CIFAR-10 folder '{}' is not a directory", dir);
  }
  auto state = std::make_shared<Cifar10Dataset::State>();
  state->dir = dir;
  state->class_names = read_class_names(fs::path(dir) / "batches.meta.txt");

  for (const std::string& name : cifar10_split_files(split)) {
    std::string path = (fs::path(dir) / name).string();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) {
        fail(ErrorKind::kInput, "CIFAR-10 file '{}' is missing (the {} split needs {})", path,
             cifar10_split_name(split), split == Cifar10Split::kTrain ? "data_batch_1.bin .. data_batch_5.bin"
                                                                      : "test_batch.bin");
      }
      fail(ErrorKind::kInput, "CIFAR-10 file '{}' cannot be opened: {}", path, std::strerror(errno));
    }
    Fd owned(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      fail(ErrorKind::kInput, "CIFAR-10 file '{}' cannot be inspected: {}", path, std::strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) fail(ErrorKind::kInput, "CIFAR-10 file '{}' is not a regular file", path);
    const int64_t bytes = st.st_size;
    if (bytes == 0) {
      fail(ErrorKind::kInput, "CIFAR-10 file '{}' is empty (0 bytes at byte offset 0); expected records of {} bytes",
           path, kRec);
    }
    if (bytes % kRec != 0) {
      const int64_t whole = bytes / kRec;
      fail(ErrorKind::kInput,
           "CIFAR-10 file '{}' has size {} bytes, not a multiple of the {}-byte record: {} whole records "
           "then {} stray bytes at byte offset {}",
           path, bytes, kRec, whole, bytes % kRec, whole * kRec);
    }
    state->first_index.push_back(state->total);
    state->records.push_back(bytes / kRec);
    state->total += bytes / kRec;
    state->files.push_back(path);
    state->fds.push_back(std::move(owned));
  }

  // Labels: one byte per record, read with positioned reads.
  std::vector<int> labels;
  labels.reserve(static_cast<std::size_t>(state->total));
  for (std::size_t f = 0; f < state->files.size(); ++f) {
    for (int64_t r = 0; r < state->records[f]; ++r) {
      unsigned char b = 0;
      pread_exact(state->fds[f].get(), state->files[f], &b, 1, r * kRec);
      if (b >= Cifar10Dataset::kNumClasses) bad_label(state->files[f], r, r * kRec, b);
      labels.push_back(b);
    }
  }

  Cifar10Dataset ds;
  ds.state_ = std::move(state);
  ds.split_ = split;
  ds.size_ = ds.state_->total;
  ds.labels_ = std::move(labels);
  return ds;
}

const std::string& Cifar10Dataset::dir() const {
  static const std::string kEmpty;
  return state_ ? state_->dir : kEmpty;
}

const std::vector<std::string>& Cifar10Dataset::files() const {
  static const std::vector<std::string> kEmpty;
  return state_ ? state_->files : kEmpty;
}

const std::vector<int64_t>& Cifar10Dataset::records_per_file() const {
  static const std::vector<int64_t> kEmpty;
  return state_ ? state_->records : kEmpty;
}

int64_t Cifar10Dataset::full_size() const { return state_ ? state_->total : 0; }

const std::vector<std::string>& Cifar10Dataset::class_names() const {
  static const std::vector<std::string> kEmpty;
  return state_ ? state_->class_names : kEmpty;
}

Cifar10Dataset Cifar10Dataset::limited(int64_t max_samples) const {
  if (max_samples < 0) {
    fail(ErrorKind::kSpec, "CIFAR-10 '{}' {} split: max samples must be >= 0, got {}", dir(),
         cifar10_split_name(split_), max_samples);
  }
  Cifar10Dataset out = *this;
  out.size_ = std::min(size_, max_samples);
  out.labels_.resize(static_cast<std::size_t>(out.size_));
  return out;
}

std::vector<int64_t> Cifar10Dataset::class_counts() const {
  std::vector<int64_t> counts(kNumClasses, 0);
  for (int l : labels_) ++counts[static_cast<std::size_t>(l)];
  return counts;
}

Cifar10Dataset::Location Cifar10Dataset::locate(int64_t global_index) const {
  if (!state_ || global_index < 0 || global_index >= size_) {
    fail(ErrorKind::kInput, "CIFAR-10 '{}' {} split: image index {} is out of range; the split has {} images{}",
         dir(), cifar10_split_name(split_), global_index, size_,
         size_ < full_size() ? fmt::format(" (limited from {})", full_size()) : std::string());
  }
  // first_index is ascending; find the last file whose first index <= global_index.
  auto it = std::upper_bound(state_->first_index.begin(), state_->first_index.end(), global_index);
  const std::size_t f = static_cast<std::size_t>(it - state_->first_index.begin()) - 1;
  const int64_t rec = global_index - state_->first_index[f];
  return Location{&state_->files[f], rec, rec * kRec};
}

void Cifar10Dataset::read_run(int64_t first, int64_t n, Cifar10Batch& out, int64_t slot) const {
  const Location loc = locate(first);
  const std::size_t f = static_cast<std::size_t>(loc.file - state_->files.data());
  std::vector<unsigned char> buf(static_cast<std::size_t>(n * kRec));
  pread_exact(state_->fds[f].get(), *loc.file, buf.data(), n * kRec, loc.offset);
  float* dst = out.images.data<float>() + slot * kPlane * kChannels;
  for (int64_t i = 0; i < n; ++i) {
    const unsigned char* rec = buf.data() + i * kRec;
    if (rec[0] >= kNumClasses) bad_label(*loc.file, loc.record + i, loc.offset + i * kRec, rec[0]);
    out.labels[static_cast<std::size_t>(slot + i)] = rec[0];
    out.indices[static_cast<std::size_t>(slot + i)] = first + i;
    const unsigned char* r = rec + 1;
    const unsigned char* g = r + kPlane;
    const unsigned char* b = g + kPlane;
    // Planar CHW -> interleaved HWC.
    for (int64_t p = 0; p < kPlane; ++p) {
      dst[3 * p + 0] = static_cast<float>(r[p]);
      dst[3 * p + 1] = static_cast<float>(g[p]);
      dst[3 * p + 2] = static_cast<float>(b[p]);
    }
    dst += kPlane * kChannels;
  }
}

Cifar10Batch Cifar10Dataset::read_batch(int64_t first, int64_t count) const {
  if (first < 0 || count < 0 || first > size_ || count > size_ - first) {
    fail(ErrorKind::kInput,
         "CIFAR-10 '{}' {} split: cannot read images [{}, {}+{}); the split has {} images{}", dir(),
         cifar10_split_name(split_), first, first, count, size_,
         size_ < full_size() ? fmt::format(" (limited from {})", full_size()) : std::string());
  }
  Cifar10Batch out;
  out.images = Tensor(DType::kFloat32, {count, kHeight, kWidth, kChannels});
  out.labels.resize(static_cast<std::size_t>(count));
  out.indices.resize(static_cast<std::size_t>(count));
  int64_t done = 0;
  while (done < count) {
    const int64_t g = first + done;
    const Location loc = locate(g);
    const std::size_t f = static_cast<std::size_t>(loc.file - state_->files.data());
    const int64_t run = std::min(count - done, state_->records[f] - loc.record);
    read_run(g, run, out, done);
    done += run;
  }
  return out;
}

Cifar10Batch Cifar10Dataset::read_indices(std::span<const int64_t> global_indices) const {
  const int64_t count = static_cast<int64_t>(global_indices.size());
  for (int64_t g : global_indices) locate(g);  // validates every index before any read
  Cifar10Batch out;
  out.images = Tensor(DType::kFloat32, {count, kHeight, kWidth, kChannels});
  out.labels.resize(static_cast<std::size_t>(count));
  out.indices.resize(static_cast<std::size_t>(count));
  // Coalesce runs of consecutive indices that stay within one file.
  int64_t i = 0;
  while (i < count) {
    const int64_t g = global_indices[static_cast<std::size_t>(i)];
    const Location loc = locate(g);
    const std::size_t f = static_cast<std::size_t>(loc.file - state_->files.data());
    int64_t run = 1;
    while (i + run < count && global_indices[static_cast<std::size_t>(i + run)] == g + run &&
           loc.record + run < state_->records[f]) {
      ++run;
    }
    read_run(g, run, out, i);
    i += run;
  }
  return out;
}

}  // namespace qpipe
