#include "engine/op_registry.h"

#include "engine/error.h"
#include "engine/kernels/kernels.h"

namespace qpipe {

OpRegistry::OpRegistry() {
  using namespace kernels;
  add("Add", prepare_add);
  add("AveragePool", prepare_average_pool);
  add("Clip", prepare_clip);
  add("Constant", prepare_constant);
  add("Conv", prepare_conv);
  add("DequantizeLinear", prepare_dequantize_linear);
  add("Div", prepare_div);
  add("Flatten", prepare_flatten);
  add("Gemm", prepare_gemm);
  add("GlobalAveragePool", prepare_global_average_pool);
  add("Identity", prepare_identity);
  add("MatMul", prepare_matmul);
  add("MaxPool", prepare_max_pool);
  add("Mul", prepare_mul);
  add("QuantizeLinear", prepare_quantize_linear);
  add("Relu", prepare_relu);
  add("Reshape", prepare_reshape);
  add("Softmax", prepare_softmax);
  add("Sub", prepare_sub);
  add("Transpose", prepare_transpose);
}

const OpRegistry& OpRegistry::instance() {
  static const OpRegistry registry;
  return registry;
}

void OpRegistry::add(const std::string& op_type, PrepareFn fn) {
  if (!table_.emplace(op_type, fn).second) fail(ErrorKind::kRuntime, "op '{}' registered twice", op_type);
}

PrepareFn OpRegistry::find(const std::string& op_type) const {
  auto it = table_.find(op_type);
  return it == table_.end() ? nullptr : it->second;
}

std::vector<std::string> OpRegistry::supported_ops() const {
  std::vector<std::string> out;
  for (const auto& [k, _] : table_) out.push_back(k);
  return out;
}

}  // namespace qpipe
