#pragma once
// Top-1 evaluation of a classifier Session on a CIFAR-10 split: overall and
// per-class accuracy, confusion matrix, optional per-image predictions.
// Batches are streamed from disk; only one batch of images is in memory.

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

#include "engine/io/cifar10.h"
#include "engine/session.h"

namespace qpipe {

struct EvalOptions {
  int64_t batch = 256;
  bool keep_predictions = false;
  // Called after every batch with (images done, total).
  std::function<void(int64_t, int64_t)> progress;
};

struct EvalResult {
  int64_t correct = 0;
  int64_t total = 0;
  std::vector<std::string> class_names;
  std::vector<int64_t> class_correct, class_total;
  std::vector<std::vector<int64_t>> confusion;  // [true][predicted]
  std::vector<int> predictions;                 // when keep_predictions
  std::vector<int> labels;                      // when keep_predictions
  double seconds = 0;

  double accuracy() const { return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0; }
  double class_accuracy(std::size_t c) const {
    return class_total[c] ? static_cast<double>(class_correct[c]) / static_cast<double>(class_total[c]) : 0.0;
  }
};

// Index of the largest value of each row of a [N, C] float tensor (first wins on ties, as numpy.argmax).
std::vector<int> argmax_rows(const Tensor& scores);

EvalResult evaluate(const Session& session, const Cifar10Dataset& data, const EvalOptions& options = {});

// The evaluation JSON (schema_version 1): the study's fields (schema_version,
// backend, model_path, data_dir, overall{correct,total,accuracy},
// per_class[]{class_name,correct,total,accuracy}) plus split, confusion and,
// when kept, predictions. Timings are not included (they live elsewhere so
// results stay byte-identical across runs and thread counts).
nlohmann::json eval_to_json(const EvalResult& r, const std::string& model_path, const std::string& data_dir,
                            const std::string& split, const std::string& exec_mode);

}  // namespace qpipe
