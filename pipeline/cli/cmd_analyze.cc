// qpipe analyze: where does a QDQ model's error come from? Per-tensor SQNR
// (accumulated and local), residual-Add scale ratios, layer sensitivity,
// value distributions against the grid, and u8 x s8 kernel-overflow risk.
// Writes one JSON per analysis, SVG charts and a Markdown summary.

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>

#include "engine/error.h"
#include "engine/io/cifar10.h"
#include "pipeline/atomic_file.h"
#include "pipeline/cli/commands.h"
#include "pipeline/cli/options.h"
#include "pipeline/text_util.h"
#include "quant/analysis/distributions.h"
#include "quant/analysis/overflow.h"
#include "quant/analysis/qdq_graph.h"
#include "quant/analysis/residual.h"
#include "quant/analysis/sensitivity.h"
#include "quant/analysis/sqnr.h"

namespace qpipe::cli {
namespace {

namespace fs = std::filesystem;
using namespace qpipe::analysis;

const std::vector<std::string> kAnalyses = {"sqnr", "residual", "sensitivity", "distributions", "overflow"};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string file_safe(std::string s) {
  for (char& c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) c = '_';
  return s;
}

double parse_double(const std::string& flag, const std::string& v) {
  try {
    std::size_t pos = 0;
    const double d = std::stod(v, &pos);
    if (pos == v.size()) return d;
  } catch (const std::exception&) {
  }
  fail(ErrorKind::kUsage, "--{} expects a number, got '{}'", flag, v);
}

}  // namespace

int cmd_analyze(const Args& args) {
  Options opts("analyze", "--fp32 M --qdq Q --data DIR [options]",
               "Compare an FP32 ONNX model with its QDQ model on CIFAR-10 and explain the quantization error:\n"
               "  sqnr           per-tensor SQNR, accumulated (whole quantized model) and local (that op alone)\n"
               "  residual       residual Adds: input scale ratios, flagged above --ratio-threshold\n"
               "  sensitivity    per layer: only it quantized / only it FP32; accuracy, per class, output SQNR\n"
               "  distributions  FP32 values against each quantization grid (histograms, clipping, codes used)\n"
               "  overflow       int16 pair saturation of u8 x s8 AVX2 kernels (ONNX Runtime on x86 without VNNI)\n"
               "Writes <name>.json (schema <name>, schema_version 1), SVG charts and summary.md to --out.");
  opts.value("fp32", "M", "FP32 ONNX model")
      .value("qdq", "Q", "its QDQ (QuantizeLinear/DequantizeLinear) model")
      .value("data", "DIR", "folder with the CIFAR-10 binary batches")
      .value("split", "test|train", "which split to analyze", "test")
      .value("what", "LIST", "comma-separated analyses", "sqnr,residual,sensitivity,distributions,overflow")
      .value("max-samples", "N", "use only the first N images of the split")
      .value("out", "DIR", "output folder", "analysis")
      .value("batch", "B", "images per batch (SQNR/distributions use min(B, 32) to bound memory)", "256")
      .value("threads", "T", "worker threads (0 = all cores)", "0")
      .value("ratio-threshold", "R", "flag residual Adds whose input scale ratio exceeds R", "2.0")
      .value("layers", "LIST", "sensitivity: only these layers (comma-separated node names)")
      .value("hist", "LIST", "histograms for these tensors (default: output, input, most clipped, fewest codes)")
      .value("focus-class", "NAME", "class whose per-class delta the summary follows", "dog");
  if (!opts.parse(args)) return 0;
  const std::string fp32_path = opts.get("fp32"), qdq_path = opts.get("qdq"), data_dir = opts.get("data");
  const fs::path out = opts.get("out");
  const int64_t batch = opts.get_int("batch");
  if (batch < 1) fail(ErrorKind::kUsage, "--batch must be >= 1, got {}", batch);
  const int threads = thread_budget(opts);
  const double ratio = parse_double("ratio-threshold", opts.get("ratio-threshold"));
  std::set<std::string> what;
  for (const auto& w : split_list(opts.get("what"))) {
    if (std::find(kAnalyses.begin(), kAnalyses.end(), w) == kAnalyses.end())
      fail(ErrorKind::kUsage, "--what: unknown analysis '{}'{}; expected some of {}", w, did_you_mean(w, kAnalyses),
           quoted_list(kAnalyses));
    what.insert(w);
  }
  if (what.empty()) fail(ErrorKind::kUsage, "--what names no analysis; expected some of {}", quoted_list(kAnalyses));

  Cifar10Dataset ds = open_cifar10(data_dir, parse_cifar10_split(opts.get("split")));
  if (opts.has("max-samples")) ds = ds.limited(opts.get_int("max-samples"));
  const AnalysisData data = AnalysisData::from_cifar10(ds);
  Model fp32 = load_onnx(fp32_path);
  QdqGraph qdq(load_onnx(qdq_path));
  fs::create_directories(out);

  std::string md = fmt::format("# Quantization analysis\n\nFP32 model `{}`, QDQ model `{}`, {} {} images of `{}`.\n",
                               fp32_path, qdq_path, data.size, opts.get("split"), data_dir);
  auto write_json = [&](const std::string& name, const nlohmann::json& j) {
    write_file_atomic(out / (name + ".json"), pretty_json(j));
  };
  auto write_svg = [&](const fs::path& rel, const std::string& svg) { write_file_atomic(out / rel, svg); };
  auto timed = [&](const char* name, auto&& fn) {
    const auto t0 = std::chrono::steady_clock::now();
    fmt::print(stderr, "analyze: {} ...\n", name);
    tbb::task_arena arena(threads);
    arena.execute(fn);
    fmt::print(stderr, "analyze: {} done in {:.1f} s\n", name,
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  };

  std::optional<SqnrResult> sq;
  if (what.count("sqnr")) {
    SqnrOptions so;
    so.batch = std::min<int64_t>(batch, 32);
    timed("sqnr", [&] { sq = analyze_sqnr(fp32, qdq, data, so); });
    write_json("sqnr", sqnr_to_json(*sq));
    write_svg("sqnr.svg", sqnr_chart_svg(*sq));
    md += "\n## SQNR per tensor\n\n![SQNR per layer](sqnr.svg)\n\n" + sqnr_markdown(*sq);
  }
  if (what.count("residual")) {
    ResidualOptions ro;
    ro.ratio_threshold = ratio;
    ResidualResult rr = analyze_residual(qdq, sq ? &*sq : nullptr, ro);
    write_json("residual", residual_to_json(rr));
    write_svg("residual.svg", residual_chart_svg(rr));
    md += "\n## Residual Adds\n\n![residual scale ratios](residual.svg)\n\n" + residual_markdown(rr);
  }
  if (what.count("overflow")) {
    OverflowOptions oo;
    oo.batch = batch;
    OverflowResult orr;
    timed("overflow", [&] { orr = analyze_overflow(qdq, data, oo); });
    write_json("overflow", overflow_to_json(orr));
    md += "\n## Kernel overflow (u8 x s8, AVX2 int16 pairs)\n\n" + overflow_markdown(orr);
  }
  if (what.count("distributions")) {
    DistributionOptions dop;
    dop.batch = std::min<int64_t>(batch, 32);
    DistributionResult dr;
    timed("distributions", [&] { dr = analyze_distributions(fp32, qdq, data, dop); });
    write_json("distributions", distributions_to_json(dr));
    std::vector<std::string> hist = opts.has("hist") ? split_list(opts.get("hist")) : std::vector<std::string>{};
    if (hist.empty()) {
      // Defaults: the model output, the most clipped and the fewest-codes activation, the first weight.
      std::vector<const TensorDistribution*> acts;
      for (const auto& t : dr.tensors)
        if (t.kind == "activation") acts.push_back(&t);
      if (!acts.empty()) {
        hist.push_back(acts.back()->name);
        auto clipped = *std::max_element(acts.begin(), acts.end(), [](auto* a, auto* b) {
          return a->clipped_fraction() < b->clipped_fraction();
        });
        auto fewest = *std::min_element(acts.begin(), acts.end(), [](auto* a, auto* b) {
          return a->codes_used() < b->codes_used();
        });
        for (auto* t : {clipped, fewest, acts.front()})
          if (std::find(hist.begin(), hist.end(), t->name) == hist.end()) hist.push_back(t->name);
      }
      for (const auto& t : dr.tensors)
        if (t.kind == "constant") {
          hist.push_back(t.name);
          break;
        }
    }
    md += "\n## Distributions\n\n";
    for (const auto& h : hist) {
      const TensorDistribution* t = dr.find(h);
      if (!t) {
        std::vector<std::string> names;
        for (const auto& x : dr.tensors) names.push_back(x.name);
        fail(ErrorKind::kUsage, "--hist: no quantized tensor '{}'{}", h, did_you_mean(h, names));
      }
      const fs::path rel = fs::path("hist") / (file_safe(h) + ".svg");
      write_svg(rel, histogram_chart_svg(*t));
      md += fmt::format("![{}]({})\n", h, rel.string());
    }
    md += "\n" + distributions_markdown(dr);
  }
  if (what.count("sensitivity")) {
    SensitivityOptions se;
    se.batch = batch;
    if (opts.has("layers")) se.layers = split_list(opts.get("layers"));
    SensitivityResult sr;
    timed("sensitivity", [&] { sr = analyze_sensitivity(fp32, qdq, data, se); });
    write_json("sensitivity", sensitivity_to_json(sr));
    write_svg("sensitivity_only_quantized.svg", sensitivity_chart_svg(sr, "only_quantized"));
    write_svg("sensitivity_keep_float.svg", sensitivity_chart_svg(sr, "keep_float"));
    md += "\n## Sensitivity\n\n![only one layer quantized](sensitivity_only_quantized.svg)\n"
          "![one layer kept FP32](sensitivity_keep_float.svg)\n\n" +
          sensitivity_markdown(sr, opts.get("focus-class"));
  }
  write_file_atomic(out / "summary.md", md);
  fmt::print("wrote {} (summary.md, {}.json and charts)\n", out.string(), fmt::join(what, ".json, "));
  return 0;
}

}  // namespace qpipe::cli
