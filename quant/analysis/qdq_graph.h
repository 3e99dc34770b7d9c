#pragma once
// The QDQ model as the single source of truth for every analysis: what is
// quantized where, and graph surgery on it.
//
// A QDQ model (ONNX QuantizeLinear/DequantizeLinear format, as ONNX Runtime's
// quantizer and qpipe's own quantizer write it) has two kinds of quantization
// points:
//   activation:  X --QuantizeLinear--> X_q --DequantizeLinear--> X_dq
//                (X is computed by a node or is a graph input; per tensor)
//   constant:    W_quantized (initializer) --DequantizeLinear--> W_dq
//                (weights, biases, BatchNorm Mul/Add constants; per tensor
//                or per axis)
// Every other node is a compute node. A compute node is a *layer* (the unit
// of the sensitivity analysis) when it reads at least one DQ output or its
// output feeds a QuantizeLinear: Conv, MatMul, Gemm, Add, Mul, AveragePool,
// Reshape, Softmax, Transpose, ... as the model has them.
//
// Attribution of quantization to layers (used by the surgery below). A layer
// owns the quantization of what it *reads*: the Q/DQ pair producing each
// activation DQ output it consumes, and each constant it reads through a DQ.
// An activation quantization point read by no compute node (only by graph
// outputs, e.g. the softmax output) is owned by the layer that produces it.
// This is ONNX Runtime's nodes_to_exclude semantics: a layer kept in float
// reads float inputs and float weights; its output is still quantized where a
// quantized consumer reads it.
//
// FP32 names: an activation X is compared with the FP32 model's tensor of
// the same name; a constant W_dq with the FP32 initializer named W_dq minus
// its "_dq" suffix (or the quantized initializer's name minus "_quantized").
// The reference model folds Relu into the preceding QuantizeLinear (zero
// point = qmin): its tensor `activation` is the BatchNorm Add output, whose
// Q/DQ equals the Q/DQ of the FP32 model's Relu output `activation`.

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "quant/qparams.h"

namespace qpipe::analysis {

struct ActivationQuant {
  std::string tensor;                   // X
  std::string q_tensor;                 // X_q
  std::vector<std::string> dq_tensors;  // X_dq (one per DQ node reading X_q; usually one)
  std::size_t q_node = 0;
  std::vector<std::size_t> dq_nodes;
  QuantParams params;                   // per tensor
  std::optional<std::size_t> producer;  // compute node producing X; nullopt for a graph input
  std::vector<std::size_t> consumers;   // compute nodes reading any X_dq, in node order
  bool feeds_graph_output = false;      // some X_dq is a graph output
  // Q's zero point is qmin: the Q clamps at 0 (a folded Relu, or a tensor that is >= 0).
  bool clamps_at_zero() const { return params.zero_point == params.qmin; }
};

struct ConstantQuant {
  std::string dq_tensor;       // W_dq
  std::string quantized_init;  // the initializer holding the codes
  std::string fp32_name;       // W: the float initializer's name in the FP32 model
  std::size_t dq_node = 0;
  std::vector<QuantParams> params;  // one (per tensor) or one per index along axis
  int axis = -1;                    // -1 per tensor
  Shape shape;
  std::vector<std::size_t> consumers;
};

struct Layer {
  std::size_t node = 0;
  std::string name;     // the node's name ("" replaced by its first output)
  std::string op_type;
  // Per node input: index into activations()/constants() or -1.
  std::vector<int> act_inputs, const_inputs;
  // Activation points whose Q reads one of this node's outputs.
  std::vector<int> output_quants;
};

class QdqGraph {
 public:
  // Finds the quantization points and layers. Malformed QDQ structure
  // (Q/DQ scale or zero point not an initializer, a Q without a DQ, a DQ of a
  // non-initializer that no Q produces) is a PtqError(kInput) naming the
  // model file and the node.
  explicit QdqGraph(Model qdq);

  const Model& model() const { return model_; }
  const std::vector<ActivationQuant>& activations() const { return acts_; }
  const std::vector<ConstantQuant>& constants() const { return consts_; }
  const std::vector<Layer>& layers() const { return layers_; }

  // Index of the activation point quantizing tensor X (or -1).
  int activation_index(const std::string& tensor) const;
  // Index of the activation point whose DQ output is `dq_tensor` (or -1).
  int activation_of_dq(const std::string& dq_tensor) const;
  int constant_of_dq(const std::string& dq_tensor) const;
  // Layer index by node name (or -1).
  int layer_index(const std::string& name) const;
  // The layer that owns an activation point (see the header comment); -1 if none.
  int owner_of_activation(int act) const;

 private:
  Model model_;
  std::vector<ActivationQuant> acts_;
  std::vector<ConstantQuant> consts_;
  std::vector<Layer> layers_;
  std::map<std::string, int> act_by_tensor_, act_by_dq_, const_by_dq_, layer_by_name_;
  std::vector<int> layer_of_node_;
};

// ---- Surgery ------------------------------------------------------------------

// The QDQ model with the given layers kept in float: every activation Q/DQ
// they own is bypassed for them (the layer reads X instead of X_dq; when the
// bypassed Q clamps at zero — a folded Relu — it reads Relu(X), added once per
// X), and every constant they read is replaced by the FP32 model's
// initializer (added as "<W>__fp32"). An owned activation point that only
// feeds graph outputs is bypassed by pointing the graph output at X. Other
// layers are untouched. A constant whose FP32 initializer is missing or has
// another shape is a PtqError(kInput) naming both models.
Model keep_float(const QdqGraph& g, const Model& fp32, const std::set<int>& layers);

// Sensitivity variant (a): only `layer` quantized, everything else float.
Model only_quantized(const QdqGraph& g, const Model& fp32, int layer);

// The "local" model: for every activation point X whose FP32 counterpart
// exists, X's producing op alone, fed the FP32 model's values, followed by
// X's own Q/DQ. Precisely:
//   local(X) = DQ_X(Q_X(op(in_1, ..., in_k)))
// where op is X's producer node in the QDQ graph with its constants as the
// QDQ model has them (quantized weights), and each activation input in_i is
//   DQ_Y(Q_Y(fp32(Y)))  when the QDQ op reads Y_dq of activation point Y,
//   fp32(T)             when it reads a float tensor T directly.
// For a quantized graph input X: local(X) = DQ_X(Q_X(fp32(X))).
// The model's graph inputs are "fp32::<name>" (fed with the FP32 model's
// tensors, see `feeds`); its outputs are "local::<X>_dq".
struct LocalModel {
  Model model;
  std::vector<std::string> feeds;            // FP32 tensor names to feed, as graph inputs "fp32::<name>"
  std::map<std::string, std::string> output;  // X -> output tensor name in `model`
  std::map<std::string, std::string> skipped; // X -> why no local variant (an FP32 input is missing)
};
// `fp32_shapes` gives every FP32 tensor that can be fed (name -> shape with a
// symbolic batch dimension -1).
LocalModel build_local_model(const QdqGraph& g, const std::map<std::string, Shape>& fp32_shapes);

// A copy of `m` keeping only the nodes needed to compute `tensors` (and the
// initializers they read), with `tensors` as its graph outputs. Used to run
// just the front of a model (e.g. the input codes of one layer).
Model prune_to(const Model& m, const std::vector<std::string>& tensors);

// The FP32 initializer name a DQ output stands for: "a/b_dq" -> "a/b"; else
// the quantized initializer minus "_quantized"; else "".
std::string fp32_constant_name(const std::string& dq_tensor, const std::string& quantized_init);

}  // namespace qpipe::analysis
