// qpipe quantize: FP32 ONNX model + CIFAR-10 calibration images → QDQ ONNX
// model (ONNX Runtime's quantize_static placement), with overrides and bias
// correction. See quant/ptq.h.

#include <fmt/format.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>

#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "pipeline/atomic_file.h"
#include "pipeline/cli/commands.h"
#include "pipeline/cli/options.h"
#include "pipeline/text_util.h"
#include "quant/ptq.h"

namespace qpipe::cli {

namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

bool parse_bool(const std::string& v, const char* opt) {
  if (v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  fail(ErrorKind::kUsage, "--{} expects true or false, got '{}'", opt, v);
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail(ErrorKind::kInput, "{}: cannot open the config file", path);
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    fail(ErrorKind::kInput, "{}: not valid JSON: {}", path, e.what());
  }
}

}  // namespace

int cmd_quantize(const Args& args) {
  Options opts("quantize", "--model M --data DIR --out Q.onnx [options]",
               "Post-training quantization to an ONNX QDQ model with ONNX Runtime's placement (quantize_static):\n"
               "calibrate the activations on CIFAR-10 training images (the study's recipe by default: numpy\n"
               "sampler, seed 42, 100 per class, draw 1), rewrite to QuantizeLinear/DequantizeLinear, optionally\n"
               "override parameters and correct biases, check with onnx::checker, save.");
  opts.value("model", "M", "FP32 ONNX model")
      .value("data", "DIR", "CIFAR-10 binary folder (calibration images come from the training split)")
      .value("out", "Q.onnx", "where to write the QDQ model (atomically)")
      .value("config", "CFG.json", "quantization config as JSON (quant/quant_config.h); flags below override it")
      .value("act-type", "int8|uint8", "activation type")
      .value("weight-type", "int8|uint8", "weight type")
      .value("weight-symmetric", "true|false", "symmetric weights (default: int8 true, uint8 false, as ORT)")
      .flag("symmetric-activations", "symmetric activation ranges (disables Relu folding, as ORT)")
      .flag("per-channel", "per-channel weights (Conv axis 0, MatMul axis 1)")
      .flag("reduce-range", "7-bit weight ranges")
      .value("method", "minmax|percentile|entropy|mse", "calibration method")
      .value("percentile", "P", "percentile for --method percentile (default 99.999)")
      .value("num-bins", "N", "histogram bins (default: method's ORT default)")
      .value("num-quantized-bins", "N", "entropy: quantized bins (default 128)")
      .value("calib-symmetric", "true|false", "calibrator's symmetric flag (default: ORT's per method)")
      .value("calib-order", "ort|qpipe", "summation order of the FP32 calibration pass: ort (ONNX Runtime 1.30's, ranges bit-identical to ORT) or qpipe (faster fused kernels)")
      .value("calib-ort-threads", "T", "ORT intra-op threads modelled by --calib-order ort (ORT's default: physical cores)")
      .value("calib-per-class", "N", "calibration images per class", "100")
      .value("calib-seed", "S", "calibration sampler seed", "42")
      .value("calib-draw", "D", "round of the seeded sampler (study: 1 for int8, 2 for uint8)", "1")
      .value("sampler", "numpy|qpipe|first", "calibration-set sampler", "numpy")
      .value("overrides", "F", "parameter overrides (qpipe format, or the study's params file with --name-map)")
      .value("name-map", "F", "name map for a study-format --overrides file")
      .flag("bias-correction", "empirical per-channel bias correction over the calibration images")
      .value("exclude", "NODE,...", "node names kept in FP32")
      .value("exclude-op-types", "OP,...", "op types kept in FP32")
      .flag("no-fold", "keep Relu/Clip as separate quantized ops")
      .value("batch", "B", "images per session run", "50")
      .value("threads", "T", "worker threads (0 = all cores)", "0")
      .value("json", "OUT", "write config, calibration rows and every chosen scale/zero point as JSON")
      .flag("eval", "evaluate the quantized model on the test split afterwards")
      .flag("no-check", "skip onnx::checker");
  if (!opts.parse(args)) return 0;

  QuantConfig cfg;
  if (opts.has("config")) cfg = QuantConfig::from_json(read_json(opts.get("config")), opts.get("config"));
  if (opts.has("act-type")) cfg.activation_type = parse_qtype(opts.get("act-type"));
  if (opts.has("weight-type")) cfg.weight_type = parse_qtype(opts.get("weight-type"));
  if (opts.has("weight-symmetric")) cfg.weight_symmetric = parse_bool(opts.get("weight-symmetric"), "weight-symmetric");
  if (opts.is_set("symmetric-activations")) cfg.activation_symmetric = true;
  if (opts.is_set("per-channel")) cfg.per_channel = true;
  if (opts.is_set("reduce-range")) cfg.reduce_range = true;
  if (opts.has("method")) cfg.calibration.method = parse_calibration_method(opts.get("method"));
  if (opts.has("percentile")) {
    try {
      cfg.calibration.percentile = std::stod(opts.get("percentile"));
    } catch (const std::exception&) {
      fail(ErrorKind::kUsage, "--percentile expects a number, got '{}'", opts.get("percentile"));
    }
  }
  if (opts.has("num-bins")) cfg.calibration.num_bins = static_cast<int>(opts.get_int("num-bins"));
  if (opts.has("num-quantized-bins"))
    cfg.calibration.num_quantized_bins = static_cast<int>(opts.get_int("num-quantized-bins"));
  if (opts.has("calib-symmetric")) cfg.calibration.symmetric = parse_bool(opts.get("calib-symmetric"), "calib-symmetric");
  if (opts.has("calib-order")) {
    cfg.calibration_conv_order = opts.get("calib-order");
    if (cfg.calibration_conv_order != "ort" && cfg.calibration_conv_order != "qpipe")
      fail(ErrorKind::kUsage, "--calib-order must be ort or qpipe, got '{}'", cfg.calibration_conv_order);
  }
  if (opts.has("calib-ort-threads") && opts.get_int("calib-ort-threads") < 1)
    fail(ErrorKind::kUsage, "--calib-ort-threads must be >= 1, got {}", opts.get_int("calib-ort-threads"));
  if (opts.has("calib-ort-threads")) cfg.calibration_ort_threads = static_cast<int>(opts.get_int("calib-ort-threads"));
  if (opts.is_set("bias-correction")) cfg.bias_correction = true;
  if (opts.has("exclude"))
    for (auto& n : split_list(opts.get("exclude"))) cfg.exclude_nodes.push_back(n);
  if (opts.has("exclude-op-types"))
    for (auto& n : split_list(opts.get("exclude-op-types"))) cfg.exclude_op_types.push_back(n);
  if (opts.is_set("no-fold")) cfg.fold_activations = false;
  cfg.validate();

  const std::string model_path = opts.get("model");
  const std::string out_path = opts.get("out");
  const int64_t batch = opts.get_int("batch");
  if (batch < 1) fail(ErrorKind::kUsage, "--batch must be >= 1, got {}", batch);
  const int64_t t = opts.get_int("threads");
  if (t < 0) fail(ErrorKind::kUsage, "--threads must be >= 0 (0 = all cores), got {}", t);
  const int threads = t == 0 ? tbb::info::default_concurrency() : static_cast<int>(t);

  TensorOverrides overrides;
  const bool have_overrides = opts.has("overrides");
  if (opts.has("name-map") && !have_overrides) fail(ErrorKind::kUsage, "--name-map needs --overrides");
  if (have_overrides) overrides = load_overrides(opts.get("overrides"), opts.get_optional("name-map").value_or(""));

  Model fp32 = load_onnx(model_path);
  CalibrationSetSpec spec;
  spec.sampler = opts.get("sampler");
  spec.seed = static_cast<uint32_t>(opts.get_int("calib-seed"));
  spec.per_class = static_cast<int>(opts.get_int("calib-per-class"));
  spec.draw = static_cast<int>(opts.get_int("calib-draw"));

  PtqOptions po;
  po.config = cfg;
  po.batch = batch;
  po.overrides = have_overrides ? &overrides : nullptr;

  PtqResult r;
  CalibrationImages calib;
  tbb::task_arena arena(threads);
  arena.execute([&] {
    if (opts.has("data")) calib = load_calibration_images(opts.get("data"), spec);
    r = run_ptq(fp32, calib.images, po);
  });
  if (!opts.is_set("no-check")) check_onnx_model(r.qdq.model);
  save_onnx(r.qdq.model, out_path);

  fmt::print("model        {}\n", model_path);
  fmt::print("config       act {} weight {}{} {}{}, {}\n", qtype_name(cfg.activation_type), qtype_name(cfg.weight_type),
             cfg.effective_weight_symmetric() ? " symmetric" : " asymmetric",
             cfg.per_channel ? "per-channel" : "per-tensor", cfg.activation_symmetric ? ", symmetric activations" : "",
             calibration_method_name(cfg.calibration.method));
  if (opts.has("data"))
    fmt::print("calibration  {} images ({} sampler, seed {}, {} per class, draw {}), {} tensors calibrated\n",
               calib.indices.size(), spec.sampler, spec.seed, spec.per_class, spec.draw, r.calibration.tensors.size());
  if (have_overrides) fmt::print("overrides    {} tensors from {}\n", overrides.tensors.size(), overrides.source);
  if (cfg.bias_correction) {
    int corrected = 0;
    for (const auto& row : r.bias_correction.rows) corrected += row.skipped.empty();
    fmt::print("bias corr.   {} nodes corrected\n", corrected);
  }
  fmt::print("wrote        {} ({} QuantizeLinear, {} DequantizeLinear, {} nodes)\n", out_path, r.qdq.quantize_nodes,
             r.qdq.dequantize_nodes, r.qdq.model.graph.nodes.size());

  nlohmann::json j = r.to_json(cfg);
  if (opts.is_set("eval")) {
    if (!opts.has("data")) fail(ErrorKind::kUsage, "--eval needs --data");
    Cifar10Dataset test = open_cifar10(opts.get("data"), Cifar10Split::kTest);
    Session s(load_onnx(out_path));
    EvalResult er;
    EvalOptions eo;
    eo.batch = 256;
    arena.execute([&] { er = evaluate(s, test, eo); });
    fmt::print("accuracy     {}/{} = {:.2f}% (test split, reference semantics)\n", er.correct, er.total,
               100.0 * er.accuracy());
    j["eval"] = {{"correct", er.correct}, {"total", er.total}, {"accuracy", er.accuracy()}};
  }
  if (opts.has("json")) write_file_atomic(opts.get("json"), pretty_json(j));
  return 0;
}

}  // namespace qpipe::cli
