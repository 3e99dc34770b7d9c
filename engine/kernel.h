#pragma once
// The two-phase kernel interface (STYLE.md 2, tflite Prepare/Eval, ncnn's
// const forward).
//
// prepare(node, inputs) runs once per node and batch size. It validates
// everything the model supplies (attributes, dtypes, shapes, quantization
// parameters), precomputes whatever the arithmetic needs, and returns the
// output descriptions plus an immutable OpKernel. A node qpipe cannot run makes
// prepare throw PtqError(kUnsupported) naming the node and the reason.
//
// OpKernel::eval(inputs, outputs) is const and only does arithmetic: outputs
// arrive already sized to the prepared shapes; it makes no validation
// decisions. Work may be split across threads per image or per independent
// output element, never across a reduction, so results do not depend on the
// thread count.

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/tensor.h"

namespace qpipe {

// What prepare knows about a value: dtype, concrete shape (batch included)
// and, for initializers and values folded at prepare time, the constant.
struct ValueDesc {
  DType dtype = DType::kFloat32;
  Shape shape;
  const Tensor* constant = nullptr;
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual void eval(std::span<const Tensor* const> inputs, std::span<Tensor* const> outputs) const = 0;
  // True when output 0 may alias input 0 (pure reshapes); the executor then
  // passes the input storage through instead of calling eval.
  virtual bool is_view() const { return false; }
};

struct Prepared {
  std::unique_ptr<OpKernel> kernel;
  std::vector<ValueDesc> outputs;  // dtype and shape of each output
};

struct PrepareContext {
  std::string model_path;
  std::string exec_mode = "reference";
  int64_t opset = 13;  // the model's ai.onnx opset (some defaults depend on it)
};

using PrepareFn = Prepared (*)(const Node& node, std::span<const ValueDesc> inputs, const PrepareContext& ctx);

}  // namespace qpipe
