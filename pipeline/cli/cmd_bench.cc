// qpipe bench: whole-model throughput of Session::run for every combination
// of model x execution mode x batch size x thread count, printed as one
// Markdown table (and optionally JSON for the peer script
// bench/peer/ort_bench.mjs).
//
// Per configuration: one warm-up run (plans and buffers for the shape), then
// runs until --seconds have passed (at least 3); ms/batch is the median run.
// GFLOP/s counts 2 x the multiply-adds of every Conv, MatMul and Gemm, taken
// from the model's own shapes (weights looked up through DequantizeLinear),
// so the same number is used for FP32 and QDQ variants of a model.
// Input: the first B CIFAR-10 test images with --data, else synthetic uniform
// integers 0..255 (a fixed generator), which timing does not depend on.

#include <fmt/format.h>
#include <sys/resource.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/graph.h"
#include "engine/integer/exact.h"
#include "engine/io/cifar10.h"
#include "engine/kernels/fast/cpu.h"
#include "engine/session.h"
#include "pipeline/atomic_file.h"
#include "pipeline/cli/commands.h"
#include "pipeline/cli/options.h"
#include "pipeline/spec.h"
#include "pipeline/text_util.h"
#include "qpipe/version.h"

namespace qpipe::cli {
namespace {

namespace fs = std::filesystem;

// Every execution mode the CLI knows; a mode the engine of this build does not
// implement yet is reported as skipped, not as an error.
const std::vector<std::string>& known_modes() {
  static const std::vector<std::string> modes = {"reference", "ort-avx2", "exact"};
  return modes;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (!item.empty()) out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::vector<int64_t> int_list(const std::string& option, const std::string& text, int64_t min, const char* what) {
  std::vector<int64_t> out;
  for (const auto& item : split_list(text)) {
    int64_t v = 0;
    try {
      std::size_t used = 0;
      v = std::stoll(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      fail(ErrorKind::kUsage, "--{} expects a comma-separated list of integers, got '{}' in '{}'", option,
           item, text);
    }
    if (v < min) fail(ErrorKind::kUsage, "--{} values must be >= {} ({}), got {}", option, min, what, v);
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  }
  if (out.empty()) fail(ErrorKind::kUsage, "--{} is empty; expected e.g. '1,256'", option);
  return out;
}

std::vector<std::string> mode_list(const std::string& text) {
  std::vector<std::string> out;
  auto add = [&](const std::string& m) {
    if (std::find(out.begin(), out.end(), m) == out.end()) out.push_back(m);
  };
  for (const auto& item : split_list(text)) {
    if (item == "all") {
      for (const auto& m : known_modes()) add(m);
      continue;
    }
    if (std::find(known_modes().begin(), known_modes().end(), item) == known_modes().end()) {
      std::vector<std::string> cands = known_modes();
      cands.push_back("all");
      fail(ErrorKind::kUsage, "unknown --exec-mode '{}'{}; expected a comma-separated list of {}", item,
           did_you_mean(item, cands), quoted_list(cands));
    }
    add(item);
  }
  if (out.empty()) fail(ErrorKind::kUsage, "--exec-mode is empty; expected e.g. 'reference,ort-avx2' or 'all'");
  return out;
}

bool is_qdq_model(const Model& m) {
  for (const auto& n : m.graph.nodes)
    if (n.op_type == "QuantizeLinear" || n.op_type == "DequantizeLinear") return true;
  return false;
}

// The float32 kernel path cpu.h picks in this process ("avx512", "avx2" or
// "portable"; QPIPE_FORCE_ISA / QPIPE_FORCE_PORTABLE lower it).
std::string fp32_isa() { return fast::isa_name(fast::select_isa(false)); }

// The ISA column: the float32 path, plus the integer kernels' path for the
// integer modes (ort-avx2 emulates ORT's AVX2 kernel in scalar code).
std::string isa_column(const std::string& mode) {
  if (mode == "ort-avx2") return fp32_isa() + ", int: scalar";
  if (mode == "exact") return fp32_isa() + ", int: " + integer::exact_isa_name(integer::exact_best_isa(false));
  return fp32_isa();
}

// Multiply-adds per image of every Conv, MatMul and Gemm: a reference Session
// at batch 1 fetches their outputs; the reduction length comes from the weight
// (an initializer, possibly behind DequantizeLinear).
int64_t count_macs(const Model& model) {
  const Graph& g = model.graph;
  auto weight_shape = [&](const std::string& name) -> Shape {
    std::string n = name;
    for (int hop = 0; hop < 4; ++hop) {
      if (auto it = g.initializers.find(n); it != g.initializers.end()) return it->second.shape();
      auto p = g.producer(n);
      if (!p || g.nodes[*p].inputs.empty()) break;
      n = g.nodes[*p].inputs[0];
    }
    return {};
  };
  std::vector<std::string> outs;
  std::vector<const Node*> nodes;
  for (const auto& n : g.nodes)
    if ((n.op_type == "Conv" || n.op_type == "MatMul" || n.op_type == "Gemm") && n.inputs.size() >= 2 &&
        !n.outputs.empty()) {
      outs.push_back(n.outputs[0]);
      nodes.push_back(&n);
    }
  if (nodes.empty()) return 0;
  Session s(model);
  const auto vi = g.value_info.find(s.input_name());
  if (vi == g.value_info.end() || !vi->second.has_shape)
    fail(ErrorKind::kInput, "{}: input '{}' has no declared shape; qpipe bench needs one", model.path, s.input_name());
  Shape in_shape = vi->second.shape;
  for (auto& d : in_shape)
    if (d <= 0) d = 1;
  auto res = s.run({{s.input_name(), Tensor(vi->second.dtype, in_shape)}}, outs);
  int64_t macs = 0;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const Shape w = weight_shape(nodes[i]->inputs[1]);
    if (w.size() < 2) continue;
    int64_t k = 1;
    if (nodes[i]->op_type == "Conv") {
      for (std::size_t d = 1; d < w.size(); ++d) k *= w[d];
    } else if (nodes[i]->op_type == "Gemm") {
      k = nodes[i]->attr_int("transB", 0) ? w[1] : w[0];
    } else {
      k = w[0];
    }
    macs += res[i].numel() * k;
  }
  return macs;
}

// A deterministic tensor of integers 0..255 (as float32/float64).
Tensor synthetic_input(DType dtype, const Shape& shape, const std::string& where) {
  Tensor t(dtype, shape);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<int>((state >> 33) & 0xff);
  };
  if (dtype == DType::kFloat32) {
    for (float& v : t.span<float>()) v = static_cast<float>(next());
  } else if (dtype == DType::kFloat64) {
    for (double& v : t.span<double>()) v = next();
  } else {
    fail(ErrorKind::kInput, "{}: input has type {}; qpipe bench feeds float32 or float64", where, dtype_name(dtype));
  }
  return t;
}

// The first `batch` test images (repeated when the split is smaller).
Tensor cifar_input(const Cifar10Dataset& data, const Shape& shape, int64_t batch, const std::string& where) {
  if (shape.size() != 4 || shape[1] != 32 || shape[2] != 32 || shape[3] != 3)
    fail(ErrorKind::kInput, "{}: input shape {} is not [N,32,32,3]; CIFAR-10 images cannot be fed (omit --data for synthetic input)",
         where, shape_str(shape));
  const int64_t have = std::min<int64_t>(batch, data.size());
  if (have <= 0) fail(ErrorKind::kInput, "the CIFAR-10 test split is empty");
  Tensor first = data.read_batch(0, have).images;
  if (have == batch) return first;
  Tensor t(DType::kFloat32, {batch, 32, 32, 3});
  const std::size_t img = 32 * 32 * 3 * sizeof(float);
  for (int64_t i = 0; i < batch; ++i)
    std::memcpy(static_cast<char*>(t.raw()) + i * img, static_cast<const char*>(first.raw()) + (i % have) * img, img);
  return t;
}

double current_rss_mib() {
  std::ifstream in("/proc/self/statm");
  long pages = 0, resident = 0;
  if (!(in >> pages >> resident)) return 0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / (1024.0 * 1024.0);
}

double peak_rss_mib() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_maxrss) / 1024.0;  // KiB on Linux
}

struct Row {
  std::string model, model_path, mode, isa;
  int64_t batch = 0;
  int threads = 0;
  int runs = 0;
  double ms_median = 0, ms_min = 0;
  double images_per_s = 0, gflops = 0;
  int64_t macs = 0;
  double rss_mib = 0;
};

struct Skip {
  std::string model, mode, reason;
};

}  // namespace

int cmd_bench(const Args& args) {
  Options opts("bench", "[--model M[,M...]] [options]",
               "Time whole-model inference (Session::run) for each model x exec mode x batch x threads and print\n"
               "a Markdown table: images/s, GFLOP/s (2 x the Conv/MatMul/Gemm multiply-adds of the model),\n"
               "median ms per batch, resident memory. Modes that do not apply to an FP32 model are skipped with a\n"
               "note. Default models: <shared>/models/resnet8.onnx and resnet8_int8_ort_reference.onnx, where\n"
               "<shared> is $QPIPE_SHARED or ../shared beside the repository.");
  opts.value("model", "M[,M...]", "ONNX model file(s), comma-separated (default: the two ResNet8 models in shared)")
      .value("data", "DIR", "CIFAR-10 binary folder: feed the first B test images (default: synthetic 0..255 input)")
      .value("batch", "B[,B...]", "batch sizes", "1,256")
      .value("threads", "T[,T...]", "worker thread counts (0 = all cores)", "1,2")
      .value("exec-mode", "MODE[,MODE...]", "reference, ort-avx2, exact, or all", "all")
      .value("seconds", "S", "time spent per configuration (at least 3 runs each)", "1")
      .value("json", "OUT", "also write the results as JSON (written atomically)");
  if (!opts.parse(args)) return 0;

  const std::vector<int64_t> batches = int_list("batch", opts.get("batch"), 1, "images per batch");
  std::vector<int64_t> thread_counts = int_list("threads", opts.get("threads"), 0, "0 = all cores");
  for (auto& t : thread_counts)
    if (t == 0) t = tbb::info::default_concurrency();
  const std::vector<std::string> modes = mode_list(opts.get("exec-mode"));
  double seconds = 0;
  {
    const std::string s = opts.get("seconds");
    try {
      std::size_t used = 0;
      seconds = std::stod(s, &used);
      if (used != s.size()) throw std::invalid_argument(s);
    } catch (const std::exception&) {
      fail(ErrorKind::kUsage, "--seconds expects a number, got '{}'", s);
    }
    if (!(seconds >= 0) || seconds > 3600) fail(ErrorKind::kUsage, "--seconds must be in 0..3600, got {}", s);
  }

  std::vector<std::string> model_paths;
  if (opts.has("model")) {
    model_paths = split_list(opts.get("model"));
    if (model_paths.empty()) fail(ErrorKind::kUsage, "--model is empty");
  } else {
    const fs::path shared = resolve_spec_paths(fs::current_path() / "qpipe-bench").shared;
    for (const char* f : {"resnet8.onnx", "resnet8_int8_ort_reference.onnx"}) {
      const fs::path p = shared / "models" / f;
      std::error_code ec;
      if (!fs::exists(p, ec))
        fail(ErrorKind::kInput, "{}: default model not found; pass --model M or set QPIPE_SHARED to the shared folder",
             p.string());
      model_paths.push_back(p.string());
    }
  }

  // Load everything before timing anything: a bad model or dataset fails fast.
  std::vector<Model> models;
  for (const auto& p : model_paths) models.push_back(load_onnx(p));
  std::unique_ptr<Cifar10Dataset> data;
  if (opts.has("data")) data = std::make_unique<Cifar10Dataset>(open_cifar10(opts.get("data"), Cifar10Split::kTest));
  const std::string input_desc =
      data ? fmt::format("CIFAR-10 test images from {} (the first B of {})", opts.get("data"), data->size())
           : std::string("synthetic uniform integers 0..255 (pass --data DIR for CIFAR-10 test images)");

  std::vector<Row> rows;
  std::vector<Skip> skips;
  for (std::size_t mi = 0; mi < models.size(); ++mi) {
    const Model& model = models[mi];
    const std::string name = fs::path(model_paths[mi]).stem().string();
    const bool qdq = is_qdq_model(model);
    const int64_t macs = count_macs(model);
    for (const auto& mode : modes) {
      if (mode != "reference" && !qdq) {
        skips.push_back({name, mode, "FP32 model (no QuantizeLinear/DequantizeLinear): the mode only changes QDQ groups"});
        continue;
      }
      SessionOptions so;
      so.exec_mode = mode;
      std::unique_ptr<Session> session;
      try {
        session = std::make_unique<Session>(model, so);
      } catch (const PtqError& e) {
        // A mode this build's engine does not implement is a note, not a failure.
        if (e.kind() != ErrorKind::kUsage || mode == "reference") throw;
        skips.push_back({name, mode, fmt::format("not available in this build: {}", e.what())});
        continue;
      }
      const auto vi = model.graph.value_info.find(session->input_name());
      if (vi == model.graph.value_info.end() || !vi->second.has_shape || vi->second.shape.empty())
        fail(ErrorKind::kInput, "{}: input '{}' has no declared shape; qpipe bench needs [N, ...]", model_paths[mi],
             session->input_name());
      for (const int64_t batch : batches) {
        Shape shape = vi->second.shape;
        shape[0] = batch;
        for (auto& d : shape)
          if (d <= 0)
            fail(ErrorKind::kInput, "{}: input '{}' has a symbolic dimension besides the batch ({}); qpipe bench needs fixed sizes",
                 model_paths[mi], session->input_name(), shape_str(vi->second.shape));
        const Tensor input = data ? cifar_input(*data, shape, batch, model_paths[mi])
                                  : synthetic_input(vi->second.dtype, shape, model_paths[mi]);
        for (const int64_t threads : thread_counts) {
          tbb::task_arena arena(static_cast<int>(threads));
          std::vector<double> ms;
          arena.execute([&] {
            session->run(input);  // warm-up: plan and buffers for this shape
            const auto start = std::chrono::steady_clock::now();
            while (true) {
              const auto t0 = std::chrono::steady_clock::now();
              auto out = session->run(input);
              const auto t1 = std::chrono::steady_clock::now();
              ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
              const double elapsed = std::chrono::duration<double>(t1 - start).count();
              if (ms.size() >= 3 && elapsed >= seconds) break;
            }
          });
          Row r;
          r.model = name;
          r.model_path = model_paths[mi];
          r.mode = mode;
          r.isa = isa_column(mode);
          r.batch = batch;
          r.threads = static_cast<int>(threads);
          r.runs = static_cast<int>(ms.size());
          std::vector<double> sorted = ms;
          std::sort(sorted.begin(), sorted.end());
          const std::size_t n = sorted.size();
          r.ms_median = n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
          r.ms_min = sorted.front();
          const double sec = std::max(r.ms_median, 1e-9) * 1e-3;
          r.images_per_s = static_cast<double>(batch) / sec;
          r.macs = macs;
          r.gflops = 2.0 * static_cast<double>(macs) * static_cast<double>(batch) / sec * 1e-9;
          r.rss_mib = current_rss_mib();
          rows.push_back(r);
        }
      }
    }
  }

  fmt::print("input: {}\n", input_desc);
  fmt::print("timing: median of >= 3 runs per row after one warm-up, >= {} s per row; GFLOP/s = 2 x Conv/MatMul/Gemm MACs\n\n",
             seconds);
  fmt::print("| model | mode | ISA path | batch | threads | images/s | GFLOP/s | ms/batch | RSS MiB |\n");
  fmt::print("|---|---|---|---:|---:|---:|---:|---:|---:|\n");
  for (const auto& r : rows)
    fmt::print("| {} | {} | {} | {} | {} | {:.1f} | {:.2f} | {:.3f} | {:.0f} |\n", r.model, r.mode, r.isa, r.batch,
               r.threads, r.images_per_s, r.gflops, r.ms_median, r.rss_mib);
  if (!skips.empty()) fmt::print("\n");
  for (const auto& s : skips) fmt::print("skipped: {} {}: {}\n", s.model, s.mode, s.reason);
  const double peak = peak_rss_mib();
  fmt::print("\nISA path: the float32 kernels engine/kernels/fast/cpu.h selects; for integer modes also their integer kernels\n");
  fmt::print("peak RSS of this process: {:.0f} MiB\n", peak);

  if (opts.has("json")) {
    nlohmann::json j;
    j["tool"] = fmt::format("qpipe {} ({})", kVersion, kGitCommit);
    j["input"] = data ? "cifar10" : "synthetic";
    j["input_description"] = input_desc;
    j["seconds_per_row"] = seconds;
    j["peak_rss_mib"] = peak;
    j["rows"] = nlohmann::json::array();
    for (const auto& r : rows)
      j["rows"].push_back({{"model", r.model},
                           {"model_path", r.model_path},
                           {"mode", r.mode},
                           {"isa", r.isa},
                           {"batch", r.batch},
                           {"threads", r.threads},
                           {"runs", r.runs},
                           {"ms_per_batch", r.ms_median},
                           {"ms_min", r.ms_min},
                           {"images_per_s", r.images_per_s},
                           {"gflops", r.gflops},
                           {"macs_per_image", r.macs},
                           {"rss_mib", r.rss_mib}});
    j["skipped"] = nlohmann::json::array();
    for (const auto& s : skips) j["skipped"].push_back({{"model", s.model}, {"mode", s.mode}, {"reason", s.reason}});
    write_file_atomic(opts.get("json"), pretty_json(j));
  }
  return 0;
}

}  // namespace qpipe::cli
