// Acceptance (a): given the study's parameters as overrides
// (../shared/reference/ort_int8_quant_params.json, names mapped by
// ort_tensor_name_map.json), the QDQ rewrite of resnet8.onnx reproduces
// ../shared/models/resnet8_int8_ort_reference.onnx node for node and
// initializer for initializer (every scale, zero point, quantized weight and
// bias bit-equal), scores 8612 ± 2 / 10000 under reference semantics (ORT:
// 8613), passes onnx::checker, and reloads with identical predictions.

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include "engine/evaluate.h"
#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "quant/overrides.h"
#include "quant/ptq.h"
#include "quant/qdq_rewrite.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

std::string node_text(const Node& n) {
  std::string s = fmt::format("{} {} [{}] -> [{}]", n.op_type, n.name, fmt::join(n.inputs, ", "),
                              fmt::join(n.outputs, ", "));
  for (const auto& [k, a] : n.attrs) {
    s += " " + k + "=";
    switch (a.kind) {
      case Attribute::Kind::kInt: s += std::to_string(a.i); break;
      case Attribute::Kind::kFloat: s += fmt::format("{}", a.f); break;
      case Attribute::Kind::kString: s += a.s; break;
      case Attribute::Kind::kInts: s += fmt::format("[{}]", fmt::join(a.ints, ",")); break;
      case Attribute::Kind::kFloats: s += fmt::format("[{}]", fmt::join(a.floats, ",")); break;
      case Attribute::Kind::kTensor: s += "<tensor>"; break;
    }
  }
  return s;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

struct Fixture {
  std::string shared;
  Model fp32, reference;
  TensorOverrides overrides;
  QdqResult q;
};

Fixture build(const std::string& shared) {
  Fixture f;
  f.shared = shared;
  f.fp32 = load_onnx(shared + "/models/resnet8.onnx");
  f.reference = load_onnx(shared + "/models/resnet8_int8_ort_reference.onnx");
  f.overrides = load_overrides(shared + "/reference/ort_int8_quant_params.json",
                               shared + "/reference/ort_tensor_name_map.json");
  // Every calibrated tensor is overridden, so no calibration images are needed.
  PtqOptions o;
  o.overrides = &f.overrides;
  f.q = run_ptq(f.fp32, Tensor(), o).qdq;
  return f;
}

TEST(PtqReference, RewriteReproducesTheStudysOrtModelExactly) {
  QPIPE_REQUIRE_SHARED(shared);
  Fixture f = build(shared);
  const Graph& ours = f.q.model.graph;
  const Graph& ref = f.reference.graph;

  EXPECT_EQ(f.q.quantize_nodes, 32);
  EXPECT_EQ(f.q.dequantize_nodes, 66);
  EXPECT_EQ(ours.nodes.size(), 130u);
  EXPECT_EQ(f.q.model.opset, f.reference.opset);
  EXPECT_EQ(ours.inputs, ref.inputs);
  EXPECT_EQ(ours.outputs, ref.outputs);

  // Node for node, in order.
  ASSERT_EQ(ours.nodes.size(), ref.nodes.size());
  for (std::size_t i = 0; i < ref.nodes.size(); ++i)
    EXPECT_EQ(node_text(ours.nodes[i]), node_text(ref.nodes[i])) << "node #" << i;

  // Initializer for initializer, bit for bit.
  std::vector<std::string> missing, extra;
  for (const auto& [name, t] : ref.initializers)
    if (!ours.initializers.count(name)) missing.push_back(name);
  for (const auto& [name, t] : ours.initializers)
    if (!ref.initializers.count(name)) extra.push_back(name);
  EXPECT_TRUE(missing.empty()) << "missing: " << fmt::format("{}", fmt::join(missing, ", "));
  EXPECT_TRUE(extra.empty()) << "extra: " << fmt::format("{}", fmt::join(extra, ", "));
  int compared = 0;
  for (const auto& [name, t] : ref.initializers) {
    auto it = ours.initializers.find(name);
    if (it == ours.initializers.end()) continue;
    ++compared;
    EXPECT_TRUE(same_bytes(it->second, t))
        << name << ": ours " << dtype_name(it->second.dtype()) << " " << shape_str(it->second.shape()) << " vs "
        << dtype_name(t.dtype()) << " " << shape_str(t.shape());
  }
  EXPECT_EQ(compared, 167);
}

TEST(PtqReference, AccuracyExportCheckerAndReload) {
  QPIPE_REQUIRE_SHARED(shared);
  Fixture f = build(shared);
  Cifar10Dataset test = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  EvalOptions eo;
  eo.keep_predictions = true;
  EvalResult r = evaluate(Session(f.q.model), test, eo);
  EXPECT_EQ(r.total, 10000);
  EXPECT_NEAR(static_cast<double>(r.correct), 8612.0, 2.0);

  // A real ONNX QDQ model: checker passes, opset >= 13, reloads with identical predictions.
  EXPECT_NO_THROW(check_onnx_model(f.q.model));
  EXPECT_GE(f.q.model.opset, 13);
  const auto path = std::filesystem::temp_directory_path() / fmt::format("ptq_reference_{}.onnx", ::getpid());
  save_onnx(f.q.model, path.string());
  Model reloaded = load_onnx(path.string());
  std::filesystem::remove(path);
  EvalResult r2 = evaluate(Session(reloaded), test.limited(2000), eo);
  ASSERT_EQ(r2.predictions.size(), 2000u);
  EXPECT_TRUE(std::equal(r2.predictions.begin(), r2.predictions.end(), r.predictions.begin()));
}

}  // namespace
}  // namespace qpipe
