#include "quant/analysis/sensitivity.h"

#include <fmt/format.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "engine/error.h"
#include "engine/evaluate.h"
#include "engine/session.h"
#include "pipeline/charts/svg.h"

namespace qpipe::analysis {
namespace {

// Evaluates one model; `reference` (if non-empty) holds the FP32 outputs of
// all images, row-major [size, classes], for the output SQNR.
AccuracyStats run_model(const Model& m, const AnalysisData& data, int64_t batch, const std::vector<float>* reference,
                        std::vector<float>* keep_outputs) {
  Session s(m);
  const std::size_t nc = data.class_names.size();
  AccuracyStats st;
  st.class_correct.assign(nc, 0);
  st.class_total.assign(nc, 0);
  const std::string out = m.graph.outputs.at(0);
  for (int64_t first = 0; first < data.size; first += batch) {
    const int64_t count = std::min(batch, data.size - first);
    Cifar10Batch b = data.read(first, count);
    Tensor y = s.run({{s.input_name(), b.images}}, {out}).at(0);
    if (y.rank() != 2 || y.dim(0) != count)
      fail(ErrorKind::kInput, "{}: output '{}' has shape {}, expected [{}, classes]", m.path, out,
           shape_str(y.shape()), count);
    Tensor yf = to_float32(y);
    const std::vector<int> pred = argmax_rows(yf);
    for (int64_t i = 0; i < count; ++i) {
      const int lab = b.labels[static_cast<std::size_t>(i)];
      if (lab < 0 || static_cast<std::size_t>(lab) >= nc)
        fail(ErrorKind::kInput, "sensitivity: label {} of image {} is outside the {} classes", lab, first + i, nc);
      st.class_total[static_cast<std::size_t>(lab)]++;
      if (pred[static_cast<std::size_t>(i)] == lab) {
        st.correct++;
        st.class_correct[static_cast<std::size_t>(lab)]++;
      }
    }
    st.total += count;
    const auto ys = yf.span<float>();
    if (reference) {
      const std::size_t off = static_cast<std::size_t>(first) * static_cast<std::size_t>(y.dim(1));
      ErrorStats part;
      part.add(std::span<const float>(reference->data() + off, ys.size()), ys);
      st.output.merge(part);
    }
    if (keep_outputs) keep_outputs->insert(keep_outputs->end(), ys.begin(), ys.end());
  }
  return st;
}

void fill_deltas(VariantResult& v, const AccuracyStats& base) {
  v.delta_pp = 100.0 * (v.stats.accuracy() - base.accuracy());
  v.class_delta_pp.clear();
  for (std::size_t c = 0; c < base.class_total.size(); ++c)
    v.class_delta_pp.push_back(100.0 * (v.stats.class_accuracy(c) - base.class_accuracy(c)));
}

nlohmann::json stats_json(const AccuracyStats& s, const std::vector<std::string>& names) {
  nlohmann::json pc = nlohmann::json::array();
  for (std::size_t c = 0; c < names.size(); ++c)
    pc.push_back({{"class_name", names[c]},
                  {"correct", s.class_correct[c]},
                  {"total", s.class_total[c]},
                  {"accuracy", s.class_accuracy(c)}});
  return {{"correct", s.correct},
          {"total", s.total},
          {"accuracy", s.accuracy()},
          {"per_class", pc},
          {"output_sqnr_db", json_number(s.output.sqnr_db())}};
}

}  // namespace

SensitivityResult analyze_sensitivity(const Model& fp32, const QdqGraph& qdq, const AnalysisData& data,
                                      const SensitivityOptions& options) {
  if (options.batch < 1) fail(ErrorKind::kUsage, "sensitivity: batch must be >= 1, got {}", options.batch);
  SensitivityResult r;
  r.class_names = data.class_names;
  r.images = data.size;
  std::vector<int> layers;
  if (options.layers.empty()) {
    for (int i = 0; i < static_cast<int>(qdq.layers().size()); ++i) layers.push_back(i);
  } else {
    std::vector<std::string> names;
    for (const auto& l : qdq.layers()) names.push_back(l.name);
    for (const auto& n : options.layers) {
      const int i = qdq.layer_index(n);
      if (i < 0)
        fail(ErrorKind::kSpec, "sensitivity: '{}' is not a quantized layer of {}; layers are: {}", n,
             qdq.model().path, fmt::join(names, ", "));
      layers.push_back(i);
    }
  }
  // Baselines first: the FP32 outputs are the reference for every output SQNR.
  std::vector<float> ref;
  r.fp32 = run_model(fp32, data, options.batch, nullptr, &ref);
  r.fp32.output = ErrorStats{};
  r.fp32.output.add(ref, ref);

  struct Job {
    int layer;
    bool keep;
  };
  std::vector<Job> jobs;
  jobs.push_back({-1, false});  // the full QDQ model
  for (int l : layers) {
    if (options.only_quantized) jobs.push_back({l, false});
    if (options.keep_float) jobs.push_back({l, true});
  }
  std::vector<AccuracyStats> results(jobs.size());
  tbb::parallel_for(std::size_t(0), jobs.size(), [&](std::size_t j) {
    const Job& job = jobs[j];
    Model m = job.layer < 0 ? qdq.model()
              : job.keep    ? keep_float(qdq, fp32, {job.layer})
                            : only_quantized(qdq, fp32, job.layer);
    results[j] = run_model(m, data, options.batch, &ref, nullptr);
  });
  r.qdq = results[0];
  for (std::size_t j = 1; j < jobs.size(); ++j) {
    const Layer& l = qdq.layers()[static_cast<std::size_t>(jobs[j].layer)];
    VariantResult v;
    v.layer = l.name;
    v.op_type = l.op_type;
    v.variant = jobs[j].keep ? "keep_float" : "only_quantized";
    v.stats = results[j];
    fill_deltas(v, jobs[j].keep ? r.qdq : r.fp32);
    (jobs[j].keep ? r.keep_float : r.only_quantized).push_back(std::move(v));
  }
  auto sq = [](const VariantResult& v) {
    const double s = v.stats.output.sqnr_db();
    return std::isnan(s) ? -1e300 : s;
  };
  std::stable_sort(r.only_quantized.begin(), r.only_quantized.end(), [&](const auto& a, const auto& b) {
    if (a.stats.correct != b.stats.correct) return a.stats.correct < b.stats.correct;
    return sq(a) < sq(b);
  });
  std::stable_sort(r.keep_float.begin(), r.keep_float.end(), [&](const auto& a, const auto& b) {
    if (a.stats.correct != b.stats.correct) return a.stats.correct > b.stats.correct;
    return sq(a) > sq(b);
  });
  for (std::size_t i = 0; i < r.only_quantized.size(); ++i) r.only_quantized[i].rank = static_cast<int>(i) + 1;
  for (std::size_t i = 0; i < r.keep_float.size(); ++i) r.keep_float[i].rank = static_cast<int>(i) + 1;
  return r;
}

nlohmann::json sensitivity_to_json(const SensitivityResult& r) {
  nlohmann::json j;
  j["schema"] = "sensitivity";
  j["schema_version"] = 1;
  j["images"] = r.images;
  j["class_names"] = r.class_names;
  j["definition"] = {
      {"layer", "a quantizable compute node of the QDQ model; its quantization = Q/DQ of the activations it reads + its "
                "quantized constants"},
      {"only_quantized", "only this layer quantized, the rest FP32; delta vs the FP32 model"},
      {"keep_float", "everything quantized except this layer; delta vs the fully quantized model"},
      {"output_sqnr_db", "SQNR of the model output against the FP32 model's output on the same images"}};
  j["fp32"] = stats_json(r.fp32, r.class_names);
  j["qdq"] = stats_json(r.qdq, r.class_names);
  auto list = [&](const std::vector<VariantResult>& vs) {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& v : vs) {
      nlohmann::json e = stats_json(v.stats, r.class_names);
      e["rank"] = v.rank;
      e["layer"] = v.layer;
      e["op_type"] = v.op_type;
      e["delta_pp"] = v.delta_pp;
      e["class_delta_pp"] = v.class_delta_pp;
      a.push_back(e);
    }
    return a;
  };
  j["only_quantized"] = list(r.only_quantized);
  j["keep_float"] = list(r.keep_float);
  return j;
}

std::string sensitivity_markdown(const SensitivityResult& r, const std::string& focus_class) {
  std::size_t fc = r.class_names.size();
  for (std::size_t c = 0; c < r.class_names.size(); ++c)
    if (r.class_names[c] == focus_class) fc = c;
  const bool has_fc = fc < r.class_names.size();
  std::string o = fmt::format("Baselines over {} images: FP32 {:.2f}%, fully quantized {:.2f}% (output SQNR {} dB)", r.images,
                              100.0 * r.fp32.accuracy(), 100.0 * r.qdq.accuracy(), fmt_db(r.qdq.output.sqnr_db()));
  if (has_fc)
    o += fmt::format("; {}: FP32 {:.1f}%, quantized {:.1f}%", focus_class, 100.0 * r.fp32.class_accuracy(fc),
                     100.0 * r.qdq.class_accuracy(fc));
  o += ".\n";
  auto table = [&](const std::vector<VariantResult>& vs, const std::string& title, const std::string& base) {
    if (vs.empty()) return;
    o += fmt::format("\n{} (delta vs {}):\n\n| rank | layer | op | accuracy | delta pp | output SQNR dB |{}\n", title,
                     base, has_fc ? fmt::format(" {} pp | largest class delta |", focus_class) : " largest class delta |");
    o += has_fc ? "|---:|---|---|---:|---:|---:|---:|---|\n" : "|---:|---|---|---:|---:|---:|---|\n";
    for (const auto& v : vs) {
      std::size_t worst = 0;
      for (std::size_t c = 1; c < v.class_delta_pp.size(); ++c)
        if (std::fabs(v.class_delta_pp[c]) > std::fabs(v.class_delta_pp[worst])) worst = c;
      o += fmt::format("| {} | {} | {} | {:.2f}% | {:+.2f} | {} |", v.rank, v.layer, v.op_type,
                       100.0 * v.stats.accuracy(), v.delta_pp, fmt_db(v.stats.output.sqnr_db()));
      if (has_fc) o += fmt::format(" {:+.1f} |", v.class_delta_pp[fc]);
      o += v.class_delta_pp.empty() ? " |\n"
                                    : fmt::format(" {} {:+.1f} |\n", r.class_names[worst], v.class_delta_pp[worst]);
    }
  };
  table(r.only_quantized, "Only this layer quantized", "FP32");
  table(r.keep_float, "Everything quantized except this layer", "fully quantized");
  return o;
}

std::string sensitivity_chart_svg(const SensitivityResult& r, const std::string& variant) {
  const bool keep = variant == "keep_float";
  const auto& vs = keep ? r.keep_float : r.only_quantized;
  charts::BarChart c;
  c.title = keep ? "Sensitivity: accuracy recovered by keeping one layer FP32"
                 : "Sensitivity: accuracy lost by quantizing only one layer";
  c.subtitle = keep ? fmt::format("delta vs fully quantized model ({:.2f}%), {} images, ranked",
                                  100.0 * r.qdq.accuracy(), r.images)
                    : fmt::format("delta vs FP32 model ({:.2f}%), {} images, ranked", 100.0 * r.fp32.accuracy(),
                                  r.images);
  c.value_label = "accuracy delta (percentage points)";
  c.value_decimals = 2;
  charts::Series s{"delta pp", {}, keep ? "#59a14f" : "#e15759"};
  for (const auto& v : vs) {
    c.categories.push_back(fmt::format("{}. {} ({})", v.rank, v.layer, v.op_type));
    s.values.push_back(v.delta_pp);
  }
  c.series = {s};
  return charts::bar_chart_svg(c);
}

}  // namespace qpipe::analysis
