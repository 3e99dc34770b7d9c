#pragma once
// Executes a Model on batches. Construction checks that every op, attribute
// and dtype is supported (one error listing everything that is not) and
// builds an execution plan; run() is const and thread-safe, so one Session
// can serve many concurrent batches (calibration, sensitivity variants).
//
// Parallelism: kernels use oneTBB inside the caller's task arena; the caller
// decides the thread budget (tbb::task_arena / tbb::global_control). Results
// are bit-identical for any thread count and any batch size: work is split
// per image, never across a reduction.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/graph.h"
#include "engine/tensor.h"

namespace qpipe {

struct SessionOptions {
  // How QuantizeLinear/DequantizeLinear-wrapped ops are executed.
  //  reference: every Q and DQ as the ONNX spec defines, float32 between them.
  //  ort-avx2:  ONNX Runtime 1.30's fused integer kernels on AVX2 without VNNI
  //             (engine/integer/ort_avx2.h), MLAS float order elsewhere.
  //  exact:     int8/uint8 codes between ops, exact int32 accumulation, float32
  //             requantization (engine/integer/exact.h).
  // Every mode's arithmetic is written out in quant/integer_arithmetic.md.
  std::string exec_mode = "reference";
  // Evaluate in float64: float32 initializers and feeds are widened, every
  // float op runs in double with the reference kernels. For tests and for
  // measuring the FP32 engine's own rounding error.
  bool float64 = false;
  // Use the portable kernels (SSE2/Eigen, scalar epilogues) even when the CPU
  // has AVX2+FMA. The environment variable QPIPE_FORCE_PORTABLE=1 does the
  // same for every Session. Results of the two paths agree within the bound
  // documented in engine/kernels/fast/sgemm.h (FMA vs separate multiply-add).
  bool force_portable = false;
  // Fuse chains that follow a Conv (bias, per-channel Mul/Add, Relu, residual
  // Add, QuantizeLinear->DequantizeLinear round trips) into the conv's
  // epilogue, and other elementwise chains into one pass. Results are
  // bit-identical to the unfused plan; tensors fetched as taps are never
  // fused away. Off only for tests and benchmarks of the unfused plan.
  bool fuse = true;
  // Summation order of float32 Conv and MatMul.
  //  qpipe: the engine's kernels (one FMA chain over K per output element).
  //  ort:   ONNX Runtime 1.30's CPU (MLAS) order for one image per run and
  //         `ort_intra_op_threads` intra-op threads, as its quantize_static
  //         calibration computes activations and as ORT evaluates a model
  //         with graph optimizations off (engine/kernels/ort_order_conv.h).
  //         Slower (no fusion). For reproducing ORT's numbers to the bit.
  //         exec_mode "ort-avx2" always uses it for the float32 ops it keeps.
  std::string conv_order = "qpipe";
  int ort_intra_op_threads = 2;
};

class Session {
 public:
  explicit Session(Model model, SessionOptions options = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Model& model() const;
  const std::string& input_name() const;  // the first graph input

  // Runs one batch. `feeds` maps graph input names to tensors whose first
  // dimension is the batch. `fetch` names any tensors of the graph (outputs or
  // intermediates: the activation taps); the results come in that order.
  std::vector<Tensor> run(const std::map<std::string, Tensor>& feeds,
                          const std::vector<std::string>& fetch) const;
  // Single-input convenience; fetches the graph outputs.
  std::vector<Tensor> run(const Tensor& input) const;

  // Names of every tensor the graph computes, in execution order.
  std::vector<std::string> computed_tensors() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qpipe
