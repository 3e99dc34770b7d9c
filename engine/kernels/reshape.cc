// Reshape, Flatten and Identity: views that reuse the input's storage.

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {
class ViewKernel final : public OpKernel {
 public:
  void eval(std::span<const Tensor* const> in, std::span<Tensor* const> out) const override {
    std::memcpy(out[0]->raw(), in[0]->raw(), in[0]->nbytes());
  }
  bool is_view() const override { return true; }
};

Prepared view(const ValueDesc& x, Shape shape) {
  Prepared p;
  p.outputs = {{x.dtype, std::move(shape), nullptr}};
  p.kernel = std::make_unique<ViewKernel>();
  return p;
}
}  // namespace

Prepared prepare_reshape(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"allowzero"});
  check_arity(node, in, 2, 2);
  if (!in[1].constant) unsupported(node, fmt::format("shape input '{}' must be a constant", node.inputs[1]));
  if (in[1].dtype != DType::kInt64) invalid(node, "shape input must be int64");
  const bool allowzero = node.attr_int("allowzero", 0) != 0;
  const int64_t* s = in[1].constant->data<int64_t>();
  Shape out;
  int infer = -1;
  int64_t known = 1;
  for (int64_t i = 0; i < in[1].constant->numel(); ++i) {
    int64_t d = s[i];
    if (d == 0 && !allowzero) {
      if (static_cast<std::size_t>(i) >= in[0].shape.size())
        invalid(node, fmt::format("shape entry {} is 0 but the input {} has no such axis", i, shape_str(in[0].shape)));
      d = in[0].shape[static_cast<std::size_t>(i)];
    }
    if (d == -1) {
      if (infer >= 0) invalid(node, "more than one -1 in the target shape");
      infer = static_cast<int>(i);
    } else if (d < 0) {
      invalid(node, fmt::format("invalid target dimension {}", d));
    } else {
      known *= d;
    }
    out.push_back(d);
  }
  const int64_t total = shape_numel(in[0].shape);
  if (infer >= 0) {
    if (known == 0 || total % known != 0)
      invalid(node, fmt::format("cannot reshape {} into a shape with -1 ({} elements do not divide)", shape_str(in[0].shape), total));
    out[static_cast<std::size_t>(infer)] = total / known;
  }
  if (shape_numel(out) != total)
    invalid(node, fmt::format("cannot reshape {} ({} elements) into {}", shape_str(in[0].shape), total, shape_str(out)));
  return view(in[0], out);
}

Prepared prepare_flatten(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"axis"});
  check_arity(node, in, 1, 1);
  const auto r = static_cast<int64_t>(in[0].shape.size());
  int64_t axis = node.attr_int("axis", 1);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r) invalid(node, fmt::format("axis {} out of range for rank {}", node.attr_int("axis", 1), r));
  int64_t a = 1, b = 1;
  for (int64_t i = 0; i < r; ++i) (i < axis ? a : b) *= in[0].shape[static_cast<std::size_t>(i)];
  return view(in[0], {a, b});
}

Prepared prepare_identity(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {});
  check_arity(node, in, 1, 1);
  return view(in[0], in[0].shape);
}

}  // namespace qpipe::kernels
