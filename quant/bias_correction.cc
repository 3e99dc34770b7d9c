// Empirical per-channel bias correction; see bias_correction.h.

#include "quant/bias_correction.h"

#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "engine/session.h"
#include "quant/calibrate.h"
#include "quant/qdq_rewrite.h"

namespace qpipe {

namespace {

const Node* find_node(const Graph& g, const std::string& name) {
  for (const auto& n : g.nodes)
    if (n.name == name) return &n;
  return nullptr;
}

}  // namespace

nlohmann::json BiasCorrectionReport::to_json() const {
  nlohmann::json rows_j = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json e{{"node", r.node}};
    if (!r.skipped.empty()) {
      e["skipped"] = r.skipped;
    } else {
      e["channels"] = r.channels;
      e["mean_abs_delta"] = r.mean_abs_delta;
      e["max_abs_delta"] = r.max_abs_delta;
      e["saturated"] = r.saturated;
    }
    rows_j.push_back(e);
  }
  return nlohmann::json{{"nodes", rows_j}};
}

std::vector<std::vector<double>> channel_means(const Model& model, const Tensor& images,
                                               const std::vector<std::string>& tensors, int64_t batch) {
  if (batch < 1) fail(ErrorKind::kSpec, "bias correction: batch must be >= 1, got {}", batch);
  Session s(model);
  const int64_t n = images.dim(0);
  if (n == 0) fail(ErrorKind::kInput, "bias correction: no calibration images");
  const int64_t nb = (n + batch - 1) / batch;
  // Per batch, per tensor, per channel sums and per-tensor value counts.
  std::vector<std::vector<std::vector<double>>> sums(static_cast<std::size_t>(nb));
  std::vector<std::vector<int64_t>> counts(static_cast<std::size_t>(nb));
  tbb::parallel_for(int64_t{0}, nb, [&](int64_t b) {
    const int64_t first = b * batch, count = std::min(batch, n - first);
    std::map<std::string, Tensor> feeds;
    feeds.emplace(s.input_name(), slice_batch(images, first, count));
    std::vector<Tensor> outs = s.run(feeds, tensors);
    auto& bs = sums[static_cast<std::size_t>(b)];
    auto& bc = counts[static_cast<std::size_t>(b)];
    for (std::size_t t = 0; t < tensors.size(); ++t) {
      const Tensor& y = outs[t];
      if (y.dtype() != DType::kFloat32 || y.rank() < 2)
        fail(ErrorKind::kRuntime, "bias correction: tensor '{}' is {} {}, expected float32 of rank >= 2", tensors[t],
             dtype_name(y.dtype()), shape_str(y.shape()));
      const int64_t c = y.dim(1);
      int64_t inner = 1;
      for (std::size_t d = 2; d < y.rank(); ++d) inner *= y.dim(d);
      std::vector<double> acc(static_cast<std::size_t>(c), 0.0);
      const float* p = y.data<float>();
      for (int64_t i = 0; i < y.dim(0); ++i)
        for (int64_t ch = 0; ch < c; ++ch) {
          double sacc = 0.0;
          const float* q = p + (i * c + ch) * inner;
          for (int64_t k = 0; k < inner; ++k) sacc += q[k];
          acc[static_cast<std::size_t>(ch)] += sacc;
        }
      bs.push_back(std::move(acc));
      bc.push_back(y.dim(0) * inner);
    }
  });
  std::vector<std::vector<double>> means(tensors.size());
  for (std::size_t t = 0; t < tensors.size(); ++t) {
    int64_t total = 0;
    for (int64_t b = 0; b < nb; ++b) {
      const auto& acc = sums[static_cast<std::size_t>(b)][t];
      if (means[t].empty()) means[t].assign(acc.size(), 0.0);
      if (acc.size() != means[t].size())
        fail(ErrorKind::kRuntime, "bias correction: tensor '{}' changes its channel count between batches", tensors[t]);
      for (std::size_t c = 0; c < acc.size(); ++c) means[t][c] += acc[c];
      total += counts[static_cast<std::size_t>(b)][t];
    }
    for (auto& v : means[t]) v /= static_cast<double>(total);
  }
  return means;
}

BiasCorrectionReport apply_bias_correction(Model& qdq, const Model& fp32, const Tensor& images,
                                           const BiasCorrectionOptions& options) {
  BiasCorrectionReport report;
  // Nodes to correct, in the QDQ model's topological order.
  struct Target {
    std::string node, fp_out, q_out;
    std::size_t row;
  };
  std::vector<Target> targets;
  for (std::size_t idx : qdq.graph.topological_order()) {
    const Node& n = qdq.graph.nodes[idx];
    if (std::find(options.op_types.begin(), options.op_types.end(), n.op_type) == options.op_types.end()) continue;
    const Node* f = find_node(fp32.graph, n.name);
    if (!f || f->op_type != n.op_type) {
      report.rows.push_back({.node = n.name, .skipped = "not in the FP32 model"});
      continue;
    }
    if (conv_bias_value(qdq, n.name).empty()) {
      report.rows.push_back({.node = n.name, .skipped = "no bias input"});
      continue;
    }
    targets.push_back({n.name, f->outputs.at(0), n.outputs.at(0), report.rows.size()});
    report.rows.push_back({.node = n.name});
  }
  if (targets.empty()) return report;

  std::vector<std::string> fp_names;
  for (const auto& t : targets) fp_names.push_back(t.fp_out);
  const auto fp_means = channel_means(fp32, images, fp_names, options.batch);

  std::vector<std::vector<double>> q_means;
  if (!options.sequential) {
    std::vector<std::string> q_names;
    for (const auto& t : targets) q_names.push_back(t.q_out);
    q_means = channel_means(qdq, images, q_names, options.batch);
  }
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const Target& t = targets[i];
    std::vector<double> qm =
        options.sequential ? channel_means(qdq, images, {t.q_out}, options.batch).at(0) : q_means[i];
    Tensor bias = conv_bias_value(qdq, t.node);
    if (static_cast<std::size_t>(bias.numel()) != qm.size() || qm.size() != fp_means[i].size())
      fail(ErrorKind::kRuntime, "bias correction: node '{}': bias has {} values but the output has {} channels "
           "(FP32 {})", t.node, bias.numel(), qm.size(), fp_means[i].size());
    BiasCorrectionRow& row = report.rows[t.row];
    row.channels = bias.numel();
    float* b = bias.data<float>();
    for (std::size_t c = 0; c < qm.size(); ++c) {
      const double delta = qm[c] - fp_means[i][c];
      row.mean_abs_delta += std::fabs(delta);
      row.max_abs_delta = std::max(row.max_abs_delta, std::fabs(delta));
      b[c] = static_cast<float>(static_cast<double>(b[c]) - delta);
    }
    row.mean_abs_delta /= static_cast<double>(std::max<std::size_t>(qm.size(), 1));
    row.saturated = replace_conv_bias(qdq, t.node, bias);
  }
  return report;
}

}  // namespace qpipe
