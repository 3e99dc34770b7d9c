#include "engine/evaluate.h"

#include <chrono>

#include "engine/error.h"

namespace qpipe {

std::vector<int> argmax_rows(const Tensor& scores) {
  if (scores.rank() != 2) fail(ErrorKind::kRuntime, "expected [N, classes] scores, got {}", shape_str(scores.shape()));
  const int64_t n = scores.dim(0), c = scores.dim(1);
  std::vector<int> out(static_cast<std::size_t>(n));
  auto pick = [&](auto* p) {
    for (int64_t i = 0; i < n; ++i) {
      int best = 0;
      for (int64_t j = 1; j < c; ++j)
        if (p[i * c + j] > p[i * c + best]) best = static_cast<int>(j);
      out[static_cast<std::size_t>(i)] = best;
    }
  };
  if (scores.dtype() == DType::kFloat64) pick(scores.data<double>());
  else if (scores.dtype() == DType::kFloat32) pick(scores.data<float>());
  else fail(ErrorKind::kRuntime, "scores must be float, got {}", dtype_name(scores.dtype()));
  return out;
}

EvalResult evaluate(const Session& session, const Cifar10Dataset& data, const EvalOptions& options) {
  if (options.batch < 1) fail(ErrorKind::kUsage, "batch size must be >= 1, got {}", options.batch);
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult r;
  r.class_names = data.class_names();
  const std::size_t nc = r.class_names.size();
  r.class_correct.assign(nc, 0);
  r.class_total.assign(nc, 0);
  r.confusion.assign(nc, std::vector<int64_t>(nc, 0));
  const auto& outputs = session.model().graph.outputs;
  for (int64_t first = 0; first < data.size(); first += options.batch) {
    const int64_t count = std::min(options.batch, data.size() - first);
    Cifar10Batch batch = data.read_batch(first, count);
    std::vector<Tensor> out = session.run({{session.input_name(), batch.images}}, {outputs.at(0)});
    std::vector<int> pred = argmax_rows(out.at(0));
    for (int64_t i = 0; i < count; ++i) {
      const int y = batch.labels[static_cast<std::size_t>(i)];
      const int p = pred[static_cast<std::size_t>(i)];
      if (p < 0 || static_cast<std::size_t>(p) >= nc)
        fail(ErrorKind::kRuntime, "model predicts class {} but the dataset has {} classes", p, nc);
      r.class_total[static_cast<std::size_t>(y)]++;
      r.confusion[static_cast<std::size_t>(y)][static_cast<std::size_t>(p)]++;
      if (p == y) {
        r.correct++;
        r.class_correct[static_cast<std::size_t>(y)]++;
      }
      if (options.keep_predictions) {
        r.predictions.push_back(p);
        r.labels.push_back(y);
      }
    }
    r.total += count;
    if (options.progress) options.progress(r.total, data.size());
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

nlohmann::json eval_to_json(const EvalResult& r, const std::string& model_path, const std::string& data_dir,
                            const std::string& split, const std::string& exec_mode) {
  nlohmann::json j;
  j["schema_version"] = 1;
  j["backend"] = "qpipe";
  j["exec_mode"] = exec_mode;
  j["model_path"] = model_path;
  j["data_dir"] = data_dir;
  j["split"] = split;
  j["overall"] = {{"correct", r.correct}, {"total", r.total}, {"accuracy", r.accuracy()}};
  nlohmann::json pc = nlohmann::json::array();
  for (std::size_t c = 0; c < r.class_names.size(); ++c)
    pc.push_back({{"class_name", r.class_names[c]},
                  {"correct", r.class_correct[c]},
                  {"total", r.class_total[c]},
                  {"accuracy", r.class_accuracy(c)}});
  j["per_class"] = pc;
  j["confusion"] = r.confusion;
  if (!r.predictions.empty()) j["predictions"] = r.predictions;
  return j;
}

}  // namespace qpipe
