#pragma once
// FP32 graph + calibrated ranges + QuantConfig → QDQ graph, with ONNX
// Runtime's placement (quantize_static, QuantFormat.QDQ) for qpipe's op set.
//
// Two steps, so calibration knows what to observe before any rewriting:
//
//   QdqPlan plan = plan_qdq(model.graph, config);        // where Q/DQ go
//   ... calibrate plan.tensors_to_calibrate() on the FP32 model ...
//   QdqResult r = build_qdq(model, plan, ranges, config, &overrides);
//
// ---------------------------------------------------------------------------
// Placement (nodes visited in topological order; excluded nodes and op types
// outside quantizable_op_types() are skipped, i.e. stay FP32)
// ---------------------------------------------------------------------------
//  Conv        input 0 activation; W weight (per channel: axis 0); B int32 bias
//              at s_in·s_w (zp 0); output activation.
//  Gemm        as Conv; B per channel on axis 1 (axis 0 when transB=1).
//  MatMul      each initializer input is a weight (per channel: axis 1), other
//              inputs activations; output activation.
//  Add, Mul    every float input: activations, or — for initializers —
//              "constants" quantized like activations (activation type,
//              activation symmetric flag, per tensor, range = data min/max
//              widened to 0); output activation.
//  Relu, Clip  only if the input is already quantized. Folded (ORT's
//              QDQRemovableActivation + try_replacing_upstream_output) when
//              activations are asymmetric, fold_activations is on, and the
//              input has this node as its only consumer and is not a graph
//              input/output: the node is removed, the producer writes the
//              activation's output tensor directly and its QuantizeLinear uses
//              that tensor's calibrated range (which starts at 0), so
//              saturation does the clipping. Otherwise input and output are
//              both quantized.
//  Transpose, Reshape, Flatten, Squeeze, Unsqueeze, AveragePool, MaxPool,
//  GlobalAveragePool
//              only if input 0 is quantized: output quantized with the same
//              scale and zero point (ORT's QDQDirect8BitOp). When input 0 is
//              not quantized (e.g. the graph input feeding ResNet8's first
//              Transpose) the node stays float and its consumers quantize its
//              output with a range of its own.
//  Softmax     input activation; output fixed from the range [0, 1]:
//              int8 1/255 zp −128, uint8 1/255 zp 0, int8 symmetric 1/127 zp 0.
//
// Naming (matches ../shared/models/resnet8_int8_ort_reference.onnx):
//  activation X: initializers X_scale, X_zero_point; nodes X_QuantizeLinear
//    (→ X_q) and X_DequantizeLinear (→ X_dq); every consumer reads X_dq. A
//    quantized graph output X is replaced by X_dq.
//  constant C (weight, bias, Mul/Add constant): C_quantized, C_scale,
//    C_zero_point and node C_DequantizeLinear (→ C_dq). Per-channel scales and
//    zero points are 1-D with the DQ's `axis` attribute set. Float
//    initializers nobody reads any more are dropped.
// Node order: for each original node, the DQs of its constant inputs, the
// node, then the Q/DQ pair of each quantized output (graph inputs' pairs
// first). The model keeps its opset (raised to 13 if lower) and IR version.
//
// Parameters: activations via choose_qparams(range, activation_type,
// activation_symmetric) — never reduce_range, as ORT; weights via
// quantize_weights(weight_type, effective_weight_symmetric, axis,
// reduce_range); biases via quantize_bias with the input's final scale. An
// override (quant/overrides.h) replaces the computed scale/zero point of any
// tensor, then its scale_factor / zero_point_shift apply; shared tensors
// follow their source's final parameters unless overridden themselves.

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "quant/calibrators/calibrator.h"
#include "quant/qparams.h"
#include "quant/quant_config.h"

namespace qpipe {

struct TensorOverrides;  // quant/overrides.h

enum class QdqRole { kActivation, kWeight, kBias, kConstant };
const char* qdq_role_name(QdqRole r);  // "activation", "weight", "bias", "constant"

// How an activation's parameters are obtained.
enum class QdqSource { kCalibrated, kShared, kFixed };

struct QdqTensor {
  std::string name;      // tensor name in the rewritten graph (the Relu output for folded pairs)
  QdqRole role = QdqRole::kActivation;
  QdqSource source = QdqSource::kCalibrated;  // activations only
  std::string share_from;                     // kShared: the tensor whose parameters are reused
  Range fixed_range;                          // kFixed
  int axis = -1;                              // weights: per-channel axis, -1 per tensor
  std::string bias_input, bias_weight;        // kBias: the consumer's input 0 and weight
  std::string node;                           // name of the node that asked for it (for messages)
};

struct QdqPlan {
  // In placement order (topological). Names are unique.
  std::vector<QdqTensor> tensors;
  // Folded Relu/Clip: producer output name → activation output name.
  std::map<std::string, std::string> renamed;
  // Names of removed nodes (folded activations).
  std::set<std::string> removed_nodes;
  // Names of nodes that were quantized (processed by a quantizer).
  std::set<std::string> quantized_nodes;

  const QdqTensor* find(const std::string& name) const;
  // Activations whose parameters come from calibration, in plan order. These
  // are tensor names of the FP32 graph (a folded pair uses the Relu output).
  std::vector<std::string> tensors_to_calibrate() const;
  int count(QdqRole role) const;
};

QdqPlan plan_qdq(const Graph& graph, const QuantConfig& config);

// One row per quantized tensor: what the rewrite chose and why.
struct QdqParamRecord {
  std::string tensor;
  QdqRole role = QdqRole::kActivation;
  std::string source;  // "calibrated", "shared:<tensor>", "fixed", "weights", "bias", "override", ...
  std::vector<float> scale;
  std::vector<int32_t> zero_point;
  QType type = QType::kInt8;
  int axis = -1;
  bool has_range = false;
  Range range;             // the calibrated/fixed range fed to choose_qparams
  int64_t saturated = 0;   // bias codes clamped to int32
};

struct QdqResult {
  Model model;
  std::vector<QdqParamRecord> params;  // plan order
  int quantize_nodes = 0;
  int dequantize_nodes = 0;

  const QdqParamRecord* find(const std::string& tensor) const;
  // {"tensors": [{tensor, role, source, type, scale, zero_point, axis, range?}, ...],
  //  "quantize_linear": n, "dequantize_linear": n}
  nlohmann::json to_json() const;
};

// `ranges` must hold every name of plan.tensors_to_calibrate() that has no
// override (else PtqError(kRuntime) naming the tensor). Overrides naming a
// tensor the plan does not quantize are an error (kInput) listing them.
QdqResult build_qdq(const Model& fp32, const QdqPlan& plan, const std::map<std::string, Range>& ranges,
                    const QuantConfig& config, const TensorOverrides* overrides = nullptr);

// Convenience: plan + build.
QdqResult quantize_qdq(const Model& fp32, const std::map<std::string, Range>& ranges, const QuantConfig& config,
                       const TensorOverrides* overrides = nullptr);

// Replaces the int32 codes of the bias feeding Conv/Gemm node `node_name` in
// a QDQ model built by build_qdq, re-quantizing `new_bias` (float, one value
// per output channel) at the bias's existing scale. A float (unquantized)
// bias is replaced directly. Returns the number of saturated codes.
// PtqError(kRuntime) if the node has no bias.
int64_t replace_conv_bias(Model& qdq, const std::string& node_name, const Tensor& new_bias);
// Runs onnx::checker::check_model (libonnx) on the serialized model.
// PtqError(kRuntime) carrying the checker's message if it fails.
void check_onnx_model(const Model& model);

// The bias feeding `node_name` in float (dequantized if quantized); empty
// Tensor if the node has no bias input.
Tensor conv_bias_value(const Model& qdq, const std::string& node_name);

}  // namespace qpipe
