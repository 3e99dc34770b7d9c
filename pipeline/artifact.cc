#include "pipeline/artifact.h"

namespace qpipe {

std::vector<ArtifactType> builtin_artifact_types() {
  return {
      {"model", Storage::kFile, ".onnx", "an ONNX model file", {}, {}},
      {"dataset", Storage::kJson, ".json",
       "a dataset descriptor: folder, split, sample count and the sha256 of every data file",
       {}, {}},
      {"json", Storage::kJson, ".json", "any JSON document", {}, {}},
      {"calibration", Storage::kJson, ".json", "activation ranges / histograms per tensor", {}, {}},
      {"qparams", Storage::kJson, ".json", "quantization parameters per tensor", {}, {}},
      {"eval", Storage::kJson, ".json",
       "an evaluation result (accuracy, per class, confusion matrix)",
       {"schema_version", "overall", "per_class"},
       {"schema_version", "backend", "model_path", "data_dir", "split", "label", "framework",
        "dtype", "exec_mode", "model_size_bytes", "overall", "per_class", "confusion", "report",
        "metrics"},
       eval_metrics},
      {"sqnr", Storage::kJson, ".json", "signal-to-quantization-noise ratio per tensor", {}, {}},
      {"residual", Storage::kJson, ".json", "residual Add analysis", {}, {}},
      {"sensitivity", Storage::kJson, ".json", "per-layer quantization sensitivity", {}, {}},
      {"report-fragment", Storage::kJson, ".json",
       "a report section: {\"report\": {title, markdown, figures, metrics}}", {"report"}, {}},
      {"figure", Storage::kFile, ".svg", "an SVG figure", {}, {}},
      {"directory", Storage::kDirectory, "", "a folder of files", {}, {}},
  };
}

nlohmann::json eval_metrics(const nlohmann::json& eval) {
  nlohmann::json m = nlohmann::json::object();
  if (!eval.is_object()) return m;
  if (auto o = eval.find("overall"); o != eval.end() && o->is_object()) {
    if (auto a = o->find("accuracy"); a != o->end() && a->is_number()) m["accuracy"] = *a;
  }
  if (auto pc = eval.find("per_class"); pc != eval.end() && pc->is_array()) {
    for (std::size_t i = 0; i < pc->size(); ++i) {
      const auto& c = (*pc)[i];
      if (!c.is_object()) continue;
      auto a = c.find("accuracy");
      if (a == c.end() || !a->is_number()) continue;
      std::string name = c.contains("class_name") && c["class_name"].is_string()
                             ? c["class_name"].get<std::string>()
                             : std::to_string(i);
      m["class/" + name + "/accuracy"] = *a;
    }
  }
  if (auto s = eval.find("model_size_bytes"); s != eval.end() && s->is_number()) {
    m["model_size_bytes"] = *s;
  }
  return m;
}

bool port_accepts(const ArtifactType& consumer, const ArtifactType& producer) {
  if (consumer.name == "any" || consumer.name == producer.name) return true;
  return consumer.name == "json" && producer.storage == Storage::kJson;
}

}  // namespace qpipe
