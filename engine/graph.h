#pragma once
// The graph IR: an ONNX model as plain C++ values. Tensor and node names are
// kept exactly as in the file; initializers are constants. Only what qpipe
// needs of ONNX is represented; engine/onnx_io.cc converts both ways.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/tensor.h"

namespace qpipe {

struct Attribute {
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kTensor };
  Kind kind = Kind::kInt;
  int64_t i = 0;
  float f = 0;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  Tensor t;

  static Attribute Int(int64_t v) { Attribute a; a.kind = Kind::kInt; a.i = v; return a; }
  static Attribute Float(float v) { Attribute a; a.kind = Kind::kFloat; a.f = v; return a; }
  static Attribute String(std::string v) { Attribute a; a.kind = Kind::kString; a.s = std::move(v); return a; }
  static Attribute Ints(std::vector<int64_t> v) { Attribute a; a.kind = Kind::kInts; a.ints = std::move(v); return a; }
  static Attribute Floats(std::vector<float> v) { Attribute a; a.kind = Kind::kFloats; a.floats = std::move(v); return a; }
  static Attribute TensorValue(Tensor v) { Attribute a; a.kind = Kind::kTensor; a.t = std::move(v); return a; }
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" = ai.onnx
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::map<std::string, Attribute> attrs;

  bool has_attr(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t attr_int(const std::string& k, int64_t dflt) const;
  float attr_float(const std::string& k, float dflt) const;
  std::string attr_string(const std::string& k, const std::string& dflt) const;
  std::vector<int64_t> attr_ints(const std::string& k, std::vector<int64_t> dflt = {}) const;
  // Human-readable position for messages: "node 'conv2d' (Conv, #3)".
  std::string where(std::size_t index) const;
};

// Declared type of a graph input/output or intermediate. A dimension < 0 is
// symbolic (the batch dimension of ResNet8's input is "N").
struct ValueInfo {
  DType dtype = DType::kFloat32;
  Shape shape;
  bool has_shape = false;
};

struct Graph {
  std::string name;
  std::vector<Node> nodes;  // in file order (a valid ONNX graph is topologically sorted)
  std::vector<std::string> inputs;   // runtime inputs only (initializers excluded)
  std::vector<std::string> outputs;
  std::map<std::string, Tensor> initializers;
  std::map<std::string, ValueInfo> value_info;  // inputs, outputs and any declared intermediates

  bool is_constant(const std::string& name) const { return initializers.count(name) != 0; }
  // Index of the node producing `tensor`, or nullopt for inputs/initializers.
  std::optional<std::size_t> producer(const std::string& tensor) const;
  // Indices of nodes consuming `tensor`, in node order.
  std::vector<std::size_t> consumers(const std::string& tensor) const;
  // Node indices in a topological order; throws PtqError naming the cycle or
  // the missing tensor if the graph is not executable.
  std::vector<std::size_t> topological_order() const;
};

struct Model {
  Graph graph;
  int64_t ir_version = 8;
  int64_t opset = 13;  // ai.onnx opset
  std::string producer_name;
  std::string producer_version;
  std::string path;  // where it was loaded from ("" when built in memory)
  std::map<std::string, std::string> metadata;
};

// Loads an ONNX file; a missing, truncated or garbage file is a PtqError
// (kInput) naming the path and what was wrong. Types/ops are not checked here:
// Session::Session checks support and lists everything unsupported at once.
Model load_onnx(const std::string& path);
// Serialises to ONNX (atomically: temp file + rename).
void save_onnx(const Model& model, const std::string& path);
// Serialised ONNX bytes (for hashing and size reporting).
std::string serialize_onnx(const Model& model);

}  // namespace qpipe
