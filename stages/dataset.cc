// Stage `dataset`: opens a CIFAR-10 split (binary format), validates it
// (file sizes, labels, class names) and writes a descriptor that downstream
// stages open again: folder, split, sample limit, image count, class counts
// and the sha256 of every data file (so a changed file changes the artifact).

#include <fmt/format.h>

#include "engine/io/cifar10.h"
#include "pipeline/atomic_file.h"
#include "pipeline/sha256.h"
#include "pipeline/stage_context.h"
#include "stages/stages.h"

namespace qpipe::stages {
namespace {

void run(StageContext& ctx) {
  const std::string dir = ctx.param<std::string>("path");
  const std::string split = ctx.param<std::string>("split");
  Cifar10Dataset data = open_cifar10(dir, parse_cifar10_split(split));
  if (ctx.has_param("max_samples")) data = data.limited(ctx.param<int64_t>("max_samples"));
  nlohmann::json files = nlohmann::json::array();
  for (std::size_t i = 0; i < data.files().size(); ++i) {
    const std::string& f = data.files()[i];
    files.push_back({{"name", std::filesystem::path(f).filename().string()},
                     {"records", data.records_per_file()[i]},
                     {"sha256", sha256_file(f)}});
  }
  nlohmann::json doc = {{"schema", "dataset"},
                        {"schema_version", 1},
                        {"format", "cifar10-binary"},
                        {"dir", dir},
                        {"split", split},
                        {"size", data.size()},
                        {"class_names", data.class_names()},
                        {"class_counts", data.class_counts()},
                        {"files", files}};
  if (ctx.has_param("max_samples")) doc["max_samples"] = ctx.param<int64_t>("max_samples");
  ctx.info(fmt::format("{} split of {}: {} images", split, dir, data.size()));
  ctx.write_json("dataset", doc);
}

}  // namespace

// Opens the dataset a `dataset` artifact describes (used by every stage that
// reads images).
Cifar10Dataset open_dataset_artifact(const nlohmann::json& doc) {
  Cifar10Dataset data = open_cifar10(doc.at("dir").get<std::string>(), parse_cifar10_split(doc.at("split").get<std::string>()));
  if (doc.contains("max_samples")) data = data.limited(doc.at("max_samples").get<int64_t>());
  return data;
}

StageType make_dataset_stage() {
  StageType t;
  t.name = "dataset";
  t.version = "1";
  t.description = "a CIFAR-10 split in the official binary format, validated and described";
  t.params = {
      {"path", ParamKind::kPath, true, nullptr, "folder with data_batch_1..5.bin, test_batch.bin, batches.meta.txt"},
      {"split", ParamKind::kString, false, "test", "test or train", {"test", "train"}},
      {"max_samples", ParamKind::kInt, false, nullptr, "use only the first N images of the split"},
  };
  t.outputs = {{"dataset", "dataset", false, false, "the dataset descriptor"}};
  t.run = run;
  return t;
}

}  // namespace qpipe::stages
