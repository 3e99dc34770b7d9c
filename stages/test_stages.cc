// Stage types that exist only to test the pipeline framework (spec parsing,
// DAG checks, caching, failure isolation, cancellation, reports, gates). No
// engine involved. They are registered by register_test_stages(), which the
// tests call directly and the CLI calls only when QPIPE_ENABLE_TEST_STAGES=1.
//
//   test_emit   writes {"value", "text", "inputs": [...], "inputs_sum"} from
//               params and inputs; can sleep (cooperatively cancellable, with
//               progress), fail with a chosen error kind, or write half its
//               output and then fail (a crash mid-write).
//   test_eval   writes an `eval` document computed from params (accuracy,
//               per-class accuracies, sizes) for report, gate and compare tests.
//   test_model  writes a `model` artifact (bytes from a param).
//   test_file   hashes the file named by a path param (input-file hashing).

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <thread>

#include "pipeline/atomic_file.h"
#include "pipeline/sha256.h"
#include "pipeline/stage_context.h"
#include "pipeline/text_util.h"

namespace qpipe {
namespace {

using nlohmann::json;

void run_emit(StageContext& ctx) {
  json inputs = json::array();
  double sum = 0;
  for (const auto& a : ctx.inputs("in")) {
    json d = read_json_file(a.path.string());
    double v = d.value("value", 0.0);
    inputs.push_back(v);
    sum += v;
  }
  int64_t sleep_ms = ctx.param<int64_t>("sleep_ms");
  const int64_t slice = 10;
  for (int64_t t = 0; t < sleep_ms; t += slice) {
    ctx.check_cancelled();
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(slice, sleep_ms - t)));
    ctx.progress(static_cast<uint64_t>(std::min(t + slice, sleep_ms)), static_cast<uint64_t>(sleep_ms), "ms");
  }
  json doc = {{"value", ctx.param<double>("value")}, {"text", ctx.param<std::string>("text")}, {"inputs", inputs},
              {"inputs_sum", sum}};
  if (ctx.has_param("metrics")) doc["metrics"] = ctx.param<json>("metrics");
  if (ctx.has_param("report_markdown")) {
    doc["report"] = {{"title", fmt::format("Notes from {}", ctx.stage_id())}, {"markdown", ctx.param<std::string>("report_markdown")}};
  }
  if (ctx.param<bool>("partial_write")) {
    std::string text = pretty_json(doc);
    std::ofstream(ctx.output_path("out"), std::ios::binary) << text.substr(0, text.size() / 2);
    fail(ErrorKind::kRuntime, "test_emit: simulated crash after writing half of the output");
  }
  if (ctx.param<bool>("fail")) {
    std::string kind = ctx.param<std::string>("fail_kind");
    ErrorKind k = kind == "input" ? ErrorKind::kInput : kind == "unsupported" ? ErrorKind::kUnsupported : ErrorKind::kRuntime;
    fail(k, "test_emit: failing on purpose (value {})", ctx.param<double>("value"));
  }
  ctx.write_json("out", doc);
}

StageType make_test_emit_stage() {
  StageType t;
  t.name = "test_emit";
  t.version = "1";
  t.description = "test stage: writes a JSON value from params; can sleep, fail, or crash mid-write";
  t.params = {
      {"value", ParamKind::kFloat, false, 0.0, "the value to write"},
      {"text", ParamKind::kString, false, "", "a string to write"},
      {"sleep_ms", ParamKind::kInt, false, 0, "sleep this long first (cancellable, reports progress in ms)"},
      {"fail", ParamKind::kBool, false, false, "throw instead of writing"},
      {"fail_kind", ParamKind::kString, false, "runtime", "error kind of the failure", {"runtime", "input", "unsupported"}},
      {"partial_write", ParamKind::kBool, false, false, "write half of the output, then throw"},
      {"metrics", ParamKind::kMap, false, nullptr, "copied to the output's 'metrics'"},
      {"report_markdown", ParamKind::kString, false, nullptr, "adds a 'report' fragment with this Markdown"},
      {"tags", ParamKind::kList, false, nullptr, "free list (tests list params)"},
  };
  t.inputs = {{"in", "json", true, true, "values to sum"}, {"model", "model", true, false, "an optional model"}};
  t.outputs = {{"out", "json", false, false, "the value"}};
  t.run = run_emit;
  return t;
}

const char* kCifarClasses[] = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

void run_eval(StageContext& ctx) {
  int64_t total = ctx.param<int64_t>("total");
  int64_t per = total / 10;
  double acc = ctx.param<double>("accuracy");
  std::vector<double> pcs(10, acc);
  if (ctx.has_param("per_class")) {
    json pc = ctx.param<json>("per_class");
    if (!pc.is_array() || pc.size() != 10) fail(ErrorKind::kSpec, "test_eval: per_class needs 10 numbers");
    for (int i = 0; i < 10; ++i) pcs[i] = pc[i].get<double>();
  }
  json per_class = json::array();
  // Overall from `accuracy`; per class from `per_class` (the two need not agree in a test).
  int64_t correct = std::llround(acc * static_cast<double>(per * 10));
  json confusion = json::array();
  for (int i = 0; i < 10; ++i) {
    int64_t c = std::llround(pcs[i] * per);
    per_class.push_back({{"class_name", kCifarClasses[i]}, {"correct", c}, {"total", per},
                         {"accuracy", static_cast<double>(c) / static_cast<double>(per)}});
    json row = json::array();
    for (int j = 0; j < 10; ++j) row.push_back(j == i ? c : (j == (i + 1) % 10 ? per - c : 0));
    confusion.push_back(row);
  }
  json doc = {{"schema_version", kEvalSchemaVersion},
              {"backend", "test"},
              {"model_path", "test.onnx"},
              {"data_dir", "test"},
              {"split", "test"},
              {"label", ctx.param_or<std::string>("label", ctx.stage_id())},
              {"framework", ctx.param<std::string>("framework")},
              {"dtype", ctx.param<std::string>("dtype")},
              {"exec_mode", "reference"},
              {"model_size_bytes", ctx.param<int64_t>("model_size_bytes")},
              {"overall", {{"correct", correct}, {"total", per * 10}, {"accuracy", static_cast<double>(correct) / (per * 10)}}},
              {"per_class", per_class},
              {"confusion", confusion}};
  ctx.progress(static_cast<uint64_t>(per * 10), static_cast<uint64_t>(per * 10), "images");
  ctx.write_json("eval", doc);
}

StageType make_test_eval_stage() {
  StageType t;
  t.name = "test_eval";
  t.version = "1";
  t.description = "test stage: an eval document computed from params";
  t.params = {
      {"accuracy", ParamKind::kFloat, true, nullptr, "overall accuracy (per class if per_class is not given)"},
      {"per_class", ParamKind::kList, false, nullptr, "10 per-class accuracies"},
      {"framework", ParamKind::kString, false, "test", "framework column"},
      {"dtype", ParamKind::kString, false, "float32", "data type column"},
      {"label", ParamKind::kString, false, nullptr, "row label"},
      {"model_size_bytes", ParamKind::kInt, false, 320000, "model size"},
      {"total", ParamKind::kInt, false, 10000, "number of images (multiple of 10)"},
  };
  t.inputs = {{"after", "any", true, true, "ignored; orders the stage"}};
  t.outputs = {{"eval", "eval", false, false, "the evaluation"}};
  t.run = run_eval;
  return t;
}

StageType make_test_model_stage() {
  StageType t;
  t.name = "test_model";
  t.version = "1";
  t.description = "test stage: writes a `model` artifact with the given bytes";
  t.params = {{"content", ParamKind::kString, false, "model", "file content"}};
  t.outputs = {{"model", "model", false, false, "the fake model"}};
  t.run = [](StageContext& ctx) { ctx.write_text("model", "fake-onnx:" + ctx.param<std::string>("content")); };
  return t;
}

StageType make_test_file_stage() {
  StageType t;
  t.name = "test_file";
  t.version = "1";
  t.description = "test stage: reports the size and hash of the file a path param names";
  t.params = {{"file", ParamKind::kPath, true, nullptr, "any file"}};
  t.outputs = {{"out", "json", false, false, "{bytes, sha256}"}};
  t.run = [](StageContext& ctx) {
    std::string p = ctx.param<std::string>("file");
    std::string bytes = read_file(p);
    ctx.write_json("out", {{"value", static_cast<double>(bytes.size())}, {"sha256", sha256_hex(bytes)}});
  };
  return t;
}

}  // namespace

void register_test_stages(StageRegistry& registry) {
  registry.add(make_test_emit_stage());
  registry.add(make_test_eval_stage());
  registry.add(make_test_model_stage());
  registry.add(make_test_file_stage());
}

}  // namespace qpipe
