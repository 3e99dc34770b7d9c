#pragma once
// Calibration: runs the FP32 model on the calibration images and feeds every
// activation that will be quantized (QdqPlan::tensors_to_calibrate()) to a
// Calibrator of its own (quant/calibrators), through the Session's
// activation taps.
//
// Determinism: images are cut into batches [b·B, (b+1)·B); batches run in
// parallel (oneTBB, in the caller's task arena) in waves, each batch feeding
// fresh calibrators (clone_empty), which are merged into the result in batch
// order. Every calibrator state is order-free (min/max, integer bin counts),
// so the ranges are bit-identical for any thread count and batch size.
// Histogram methods take two passes over the images: a MinMax pass fixes the
// histogram range (set_range), the second pass fills the histogram.
//
// The study fed ORT one image at a time; MinMax over all images is the same
// whatever the batching.

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/session.h"
#include "engine/tensor.h"
#include "quant/calibration_set.h"
#include "quant/calibrators/calibrator.h"

namespace qpipe {

struct CalibrationOptions {
  CalibratorConfig calibrator;
  int64_t batch = 50;  // images per session run
  int wave = 16;       // batches in flight before their results are merged
};

struct CalibrationResult {
  std::vector<std::string> tensors;  // in the order asked for
  std::map<std::string, std::unique_ptr<Calibrator>> calibrators;
  int64_t images = 0;
  int passes = 0;

  // The clipping range of every tensor (Calibrator::range()).
  std::map<std::string, Range> ranges() const;
  // {"method": ..., "config": {...}, "images": n, "passes": p,
  //  "tensors": [{"tensor": name, ...Calibrator::describe()}, ...]}
  nlohmann::json to_json() const;
};

// `images` is a float32 batch [N, ...] fed to the session's first input.
// Unknown tensor names → PtqError from the session; N == 0 → PtqError(kInput).
CalibrationResult calibrate(const Session& fp32, const Tensor& images, const std::vector<std::string>& tensors,
                            const CalibrationOptions& options);

// The calibration images of a CIFAR-10 folder: the training split, indices
// chosen by select_calibration_set(labels, spec), read in that order.
struct CalibrationImages {
  Tensor images;                 // float32 [n, 32, 32, 3], raw pixels 0..255
  std::vector<int64_t> indices;  // global training-split indices
  std::vector<int> labels;
};
CalibrationImages load_calibration_images(const std::string& data_dir, const CalibrationSetSpec& spec);

// Rows [first, first + count) of a batch tensor (a copy).
Tensor slice_batch(const Tensor& batch, int64_t first, int64_t count);

}  // namespace qpipe
