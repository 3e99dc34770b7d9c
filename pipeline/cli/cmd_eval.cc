// qpipe eval: evaluate one ONNX model on a CIFAR-10 split.

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <cstdio>

#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "pipeline/atomic_file.h"
#include "pipeline/cli/commands.h"
#include "pipeline/cli/options.h"
#include "pipeline/text_util.h"

namespace qpipe::cli {

int cmd_eval(const Args& args) {
  Options opts("eval", "--model M --data DIR [options]",
               "Evaluate an ONNX classifier on CIFAR-10 (binary format): top-1 accuracy, per-class accuracy,\n"
               "confusion matrix. Images are fed NHWC float32 raw pixels 0..255, as the study did.");
  opts.value("model", "M", "ONNX model file")
      .value("data", "DIR", "folder with data_batch_1..5.bin, test_batch.bin, batches.meta.txt")
      .value("split", "test|train", "which split to evaluate", "test")
      .value("max-samples", "N", "evaluate only the first N images of the split")
      .value("batch", "B", "images per batch", "256")
      .value("threads", "T", "worker threads (0 = all cores)", "0")
      .value("exec-mode", "MODE", "how QDQ models run: reference (ONNX spec semantics), ort-avx2 (ONNX Runtime 1.30 fused AVX2 integer arithmetic) or exact (int8 codes between ops, exact int32 accumulation, float32 requantization; quant/integer_arithmetic.md)", "reference")
      .value("conv-order", "ORDER", "float32 Conv/MatMul summation order: qpipe (fast kernels) or ort (ONNX Runtime 1.30's MLAS order, bit-identical to ORT with graph optimizations off; slower)", "qpipe")
      .value("ort-threads", "T", "ORT intra-op threads modelled by --conv-order ort", "2")
      .value("json", "OUT", "write the result as JSON (written atomically)")
      .flag("predictions", "include per-image predictions in the JSON")
      .flag("quiet", "print only the accuracy line");
  if (!opts.parse(args)) return 0;
  const std::string model_path = opts.get("model");
  const std::string data_dir = opts.get("data");
  const std::string split = opts.get("split");
  const int64_t batch = opts.get_int("batch");
  if (batch < 1) fail(ErrorKind::kUsage, "--batch must be >= 1, got {}", batch);
  const int threads = thread_budget(opts);
  const int64_t max_samples = opts.has("max-samples") ? opts.get_int("max-samples") : -1;
  if (opts.has("max-samples") && max_samples < 0)
    fail(ErrorKind::kUsage, "--max-samples must be >= 0, got {}", max_samples);
  if (split != "test" && split != "train")
    fail(ErrorKind::kUsage, "--split must be test or train, got '{}'", split);

  Cifar10Dataset data = open_cifar10(data_dir, parse_cifar10_split(split));
  if (max_samples >= 0) data = data.limited(max_samples);
  SessionOptions so;
  so.exec_mode = opts.get("exec-mode");
  so.conv_order = opts.get("conv-order");
  so.ort_intra_op_threads = static_cast<int>(opts.get_int("ort-threads"));
  Session session(load_onnx(model_path), so);

  EvalOptions eo;
  eo.batch = batch;
  eo.keep_predictions = opts.is_set("predictions");
  EvalResult r;
  tbb::task_arena arena(threads);
  arena.execute([&] { r = evaluate(session, data, eo); });

  if (opts.is_set("quiet")) {
    fmt::print("{}/{} = {:.2f}%\n", r.correct, r.total, 100.0 * r.accuracy());
  } else {
    fmt::print("model    {}\ndata     {} ({} split, {} images)\n", model_path, data_dir, split, r.total);
    fmt::print("accuracy {}/{} = {:.2f}%\n\n", r.correct, r.total, 100.0 * r.accuracy());
    fmt::print("{:<12} {:>8} {:>6} {:>9}\n", "class", "correct", "total", "accuracy");
    for (std::size_t c = 0; c < r.class_names.size(); ++c)
      fmt::print("{:<12} {:>8} {:>6} {:>8.1f}%\n", r.class_names[c], r.class_correct[c], r.class_total[c],
                 100.0 * r.class_accuracy(c));
    fmt::print("\n{:.2f} s, {:.0f} images/s, {} threads, batch {}\n", r.seconds, r.total / std::max(r.seconds, 1e-9),
               threads, batch);
  }
  if (opts.has("json")) {
    auto j = eval_to_json(r, model_path, data_dir, split, so.exec_mode);
    j["conv_order"] = so.conv_order;
    write_file_atomic(opts.get("json"), pretty_json(j));
  }
  return 0;
}

}  // namespace qpipe::cli
