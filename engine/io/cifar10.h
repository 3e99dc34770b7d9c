#pragma once
// CIFAR-10 reader for the official binary distribution (cifar-10-batches-bin).
//
// Layout of a dataset folder:
//   data_batch_1.bin .. data_batch_5.bin   training split, in this order
//   test_batch.bin                         test split
//   batches.meta.txt                       the 10 class names, one a line
// Each .bin file is a sequence of 3073-byte records: 1 label byte (0..9), then
// 1024 red, 1024 green and 1024 blue bytes, each plane row-major 32x32. A file
// may hold any number of records (file size / 3073), so small fixtures work.
//
// Images come out as NHWC float32 raw pixel values 0..255 (no normalization),
// shape [count, 32, 32, 3], which is what the study's ResNet8 takes.
//
// Global indices: records of a split are numbered 0..size()-1 across its files
// in order (train: data_batch_1 holds 0..9999, data_batch_2 10000..19999, ...).
//
// Decisions:
// - batches.meta.txt is required; a missing file is a kInput error naming it.
//   It must hold exactly 10 non-empty lines (trailing blank lines and '\r' are
//   ignored).
// - Labels are read and validated at open: one 1-byte pread per record (60k
//   for both splits, ~tens of ms warm), so labels() is free afterwards and a
//   bad label is reported before any stage runs. read_batch/read_indices check
//   the label byte again (the file may have changed since open).
// - Image bytes are read lazily, only for the records asked for, with pread on
//   file descriptors opened once at open. All read_* methods are const and
//   safe to call concurrently from several threads.
// - limited(n) keeps the first min(n, size()) records (`--max-samples N`).
//
// Every error is a PtqError of kind kInput naming the file and the place
// (byte offset / record) and what was expected.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tensor.h"

namespace qpipe {

enum class Cifar10Split { kTrain, kTest };

// "train" / "test".
const char* cifar10_split_name(Cifar10Split split);
// Parses "train" or "test"; anything else is a kSpec error naming the value.
Cifar10Split parse_cifar10_split(std::string_view name);

// The file names (no folder) that make up a split, in global-index order.
std::vector<std::string> cifar10_split_files(Cifar10Split split);

struct Cifar10Batch {
  Tensor images;                 // float32 [count, 32, 32, 3], values 0..255
  std::vector<int> labels;       // count labels, 0..9
  std::vector<int64_t> indices;  // the global index of each image in the split
};

class Cifar10Dataset {
 public:
  static constexpr int kHeight = 32;
  static constexpr int kWidth = 32;
  static constexpr int kChannels = 3;
  static constexpr int kNumClasses = 10;
  static constexpr int64_t kPixelsPerPlane = kHeight * kWidth;                  // 1024
  static constexpr int64_t kRecordBytes = 1 + kChannels * kPixelsPerPlane;     // 3073

  Cifar10Dataset() = default;

  const std::string& dir() const;
  Cifar10Split split() const { return split_; }
  // Full paths of the split's files and their record counts, in order.
  const std::vector<std::string>& files() const;
  const std::vector<int64_t>& records_per_file() const;
  // Records visible through this object (after limited()).
  int64_t size() const { return size_; }
  // Records in the split's files, ignoring any limit.
  int64_t full_size() const;
  const std::vector<std::string>& class_names() const;

  // The first min(max_samples, size()) records. max_samples < 0 is an error.
  Cifar10Dataset limited(int64_t max_samples) const;

  // Labels of all size() records (read at open).
  const std::vector<int>& labels() const { return labels_; }
  // Number of records of each class 0..9 among size() records.
  std::vector<int64_t> class_counts() const;

  // Records [first, first + count). Reads only those records.
  Cifar10Batch read_batch(int64_t first, int64_t count) const;
  // The given records, in the given order (duplicates allowed).
  Cifar10Batch read_indices(std::span<const int64_t> global_indices) const;

  // Where a global index lives: file path, record within the file, byte offset.
  struct Location {
    const std::string* file;
    int64_t record;
    int64_t offset;
  };
  Location locate(int64_t global_index) const;

 private:
  struct State;
  friend Cifar10Dataset open_cifar10(const std::string& dir, Cifar10Split split);

  // Reads `n` consecutive records starting at global index `first` (all in one
  // file) into images/labels at output slot `slot`.
  void read_run(int64_t first, int64_t n, Cifar10Batch& out, int64_t slot) const;

  std::shared_ptr<const State> state_;
  Cifar10Split split_ = Cifar10Split::kTest;
  int64_t size_ = 0;
  std::vector<int> labels_;
};

// Opens a split: checks the folder, the files (present, non-empty, size a
// multiple of 3073), batches.meta.txt, and reads and validates every label.
Cifar10Dataset open_cifar10(const std::string& dir, Cifar10Split split);

}  // namespace qpipe
