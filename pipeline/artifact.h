#pragma once
// Artifacts: what stages exchange. Every stage output is one file (or one
// folder) in the cache, with a declared artifact type. The type decides how
// it is stored (an .onnx file, a JSON document, an SVG figure, a folder) and,
// for JSON kinds, which top-level keys its schema has (so gates on unknown
// metrics are caught when the spec is loaded, and a stage that writes a
// malformed result fails instead of poisoning the cache).
//
// An artifact's hash is the SHA-256 of its bytes (a folder: see sha256.h).
// Artifacts must be deterministic functions of their stage's cache key: no
// timestamps, throughput figures or thread counts inside (the runner measures
// those; see report.h).

#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace qpipe {

enum class Storage { kFile, kJson, kDirectory };

struct ArtifactType {
  std::string name;         // "model", "eval", ...
  Storage storage = Storage::kJson;
  std::string extension;    // file name suffix in the cache: ".onnx", ".json", ".svg", ""
  std::string description;
  std::vector<std::string> required_keys;  // JSON kinds: keys a valid document must have
  std::vector<std::string> known_keys;     // JSON kinds: all documented top-level keys
                                           // (empty = free-form, not checked)
  // Optional: the numbers worth tracking in a document of this type, as a
  // flat {name: number} object (see report_section.h for the names `qpipe
  // compare` understands). A top-level "metrics" object in any JSON artifact
  // is merged in as well.
  std::function<nlohmann::json(const nlohmann::json& doc)> metrics;
};

struct Artifact {
  std::string type;
  std::filesystem::path path;
  std::string sha256;
};

// The artifact types the framework knows from the start: model, dataset,
// json (any JSON), calibration, qparams, eval, sqnr, residual, sensitivity,
// report-fragment, figure (SVG), directory.
std::vector<ArtifactType> builtin_artifact_types();

// Whether a consumer port of type `consumer` accepts an artifact of type
// `producer`: same type; or the consumer takes "json" and the producer is a
// JSON kind; or the consumer takes "any".
bool port_accepts(const ArtifactType& consumer, const ArtifactType& producer);

// The eval schema (written by the evaluate stage, read by reports, gates and
// compare); see docs/report-schema.md.
inline constexpr const char* kEvalSchemaVersion = "1";

// Metrics of an eval document: "accuracy", "class/<class_name>/accuracy",
// "model_size_bytes" (those present).
nlohmann::json eval_metrics(const nlohmann::json& eval);

}  // namespace qpipe
