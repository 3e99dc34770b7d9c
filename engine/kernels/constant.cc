// Constant: the `value` tensor attribute (other value_* forms unsupported).

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {

Prepared prepare_constant(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"value"});
  if (!node.has_attr("value")) unsupported(node, "only the 'value' attribute form of Constant is supported");
  Tensor value = node.attrs.at("value").t;
  Prepared p;
  p.outputs = {{value.dtype(), value.shape(), nullptr}};
  p.kernel = make_kernel([value](std::span<const Tensor* const>, std::span<Tensor* const> out) {
    std::memcpy(out[0]->raw(), value.raw(), value.nbytes());
  });
  return p;
}

}  // namespace qpipe::kernels
