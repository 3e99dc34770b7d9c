// Calibration over activation taps; see calibrate.h.

#include "quant/calibrate.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "engine/error.h"
#include "engine/io/cifar10.h"

namespace qpipe {

namespace {

using json = nlohmann::json;

// One pass: every batch feeds clones of `protos` (one per tensor); the clones
// are merged into `into` in batch order, wave by wave.
void run_pass(const Session& s, const Tensor& images, const std::vector<std::string>& tensors,
              std::vector<std::unique_ptr<Calibrator>>& into, const CalibrationOptions& o) {
  const int64_t n = images.dim(0);
  const int64_t nb = (n + o.batch - 1) / o.batch;
  const int wave = std::max(1, o.wave);
  const std::string& input = s.input_name();
  for (int64_t w0 = 0; w0 < nb; w0 += wave) {
    const int64_t w1 = std::min(nb, w0 + wave);
    std::vector<std::vector<std::unique_ptr<Calibrator>>> parts(static_cast<std::size_t>(w1 - w0));
    for (auto& p : parts)
      for (const auto& c : into) p.push_back(c->clone_empty());
    tbb::parallel_for(w0, w1, [&](int64_t b) {
      const int64_t first = b * o.batch;
      const int64_t count = std::min(o.batch, n - first);
      std::map<std::string, Tensor> feeds;
      feeds.emplace(input, slice_batch(images, first, count));
      std::vector<Tensor> outs = s.run(feeds, tensors);
      auto& part = parts[static_cast<std::size_t>(b - w0)];
      for (std::size_t t = 0; t < tensors.size(); ++t) {
        if (outs[t].dtype() != DType::kFloat32)
          fail(ErrorKind::kRuntime, "calibration: tensor '{}' is {}, expected float32", tensors[t],
               dtype_name(outs[t].dtype()));
        part[t]->observe(std::as_const(outs[t]).span<float>());
      }
    });
    for (auto& part : parts)
      for (std::size_t t = 0; t < tensors.size(); ++t) into[t]->merge(*part[t]);
  }
}

}  // namespace

Tensor slice_batch(const Tensor& batch, int64_t first, int64_t count) {
  if (batch.rank() < 1 || first < 0 || count < 0 || first + count > batch.dim(0))
    fail(ErrorKind::kRuntime, "slice_batch: rows [{}, {}) are outside a batch of shape {}", first, first + count,
         shape_str(batch.shape()));
  Shape s = batch.shape();
  s[0] = count;
  Tensor out(batch.dtype(), s);
  const std::size_t row = batch.dim(0) ? batch.nbytes() / static_cast<std::size_t>(batch.dim(0)) : 0;
  std::memcpy(out.raw(), static_cast<const std::byte*>(batch.raw()) + static_cast<std::size_t>(first) * row,
              static_cast<std::size_t>(count) * row);
  return out;
}

std::map<std::string, Range> CalibrationResult::ranges() const {
  std::map<std::string, Range> out;
  for (const auto& [name, c] : calibrators) out[name] = c->range();
  return out;
}

nlohmann::json CalibrationResult::to_json() const {
  json rows = json::array();
  for (const auto& t : tensors) {
    json d = calibrators.at(t)->describe();
    d["tensor"] = t;
    rows.push_back(d);
  }
  json j;
  j["images"] = images;
  j["passes"] = passes;
  if (!tensors.empty()) j["config"] = calibrators.at(tensors[0])->config().to_json();
  j["tensors"] = rows;
  return j;
}

CalibrationResult calibrate(const Session& fp32, const Tensor& images, const std::vector<std::string>& tensors,
                            const CalibrationOptions& options) {
  options.calibrator.validate();
  if (options.batch < 1) fail(ErrorKind::kSpec, "calibration: batch must be >= 1, got {}", options.batch);
  if (images.rank() < 1 || images.dim(0) == 0)
    fail(ErrorKind::kInput, "calibration: no calibration images (batch of shape {})", shape_str(images.shape()));
  if (images.dtype() != DType::kFloat32)
    fail(ErrorKind::kInput, "calibration: images are {}, expected float32", dtype_name(images.dtype()));
  CalibrationResult r;
  r.tensors = tensors;
  r.images = images.dim(0);
  std::vector<std::unique_ptr<Calibrator>> main;
  for (std::size_t i = 0; i < tensors.size(); ++i) main.push_back(make_calibrator(options.calibrator));
  if (tensors.empty()) return r;
  if (main[0]->needs_range_pass()) {
    std::vector<std::unique_ptr<Calibrator>> mm;
    for (std::size_t i = 0; i < tensors.size(); ++i)
      mm.push_back(make_calibrator(options.calibrator.range_pass_config()));
    run_pass(fp32, images, tensors, mm, options);
    r.passes++;
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const Range rr = mm[i]->range();
      main[i]->set_range(rr.min, rr.max);
    }
  }
  run_pass(fp32, images, tensors, main, options);
  r.passes++;
  for (std::size_t i = 0; i < tensors.size(); ++i) r.calibrators[tensors[i]] = std::move(main[i]);
  return r;
}

CalibrationImages load_calibration_images(const std::string& data_dir, const CalibrationSetSpec& spec) {
  Cifar10Dataset train = open_cifar10(data_dir, Cifar10Split::kTrain);
  CalibrationImages out;
  out.indices = select_calibration_set(train.labels(), spec);
  Cifar10Batch b = train.read_indices(out.indices);
  out.images = std::move(b.images);
  out.labels = std::move(b.labels);
  return out;
}

}  // namespace qpipe
