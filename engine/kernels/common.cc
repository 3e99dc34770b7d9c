#include "engine/kernels/common.h"

#include <algorithm>

namespace qpipe::kernels {

void unsupported(const Node& node, const std::string& why) {
  fail(ErrorKind::kUnsupported, "node '{}' ({}): {}", node.name, node.op_type, why);
}

void invalid(const Node& node, const std::string& why) {
  fail(ErrorKind::kInput, "node '{}' ({}): {}", node.name, node.op_type, why);
}

void check_attrs(const Node& node, std::initializer_list<const char*> allowed) {
  std::vector<std::string> bad;
  for (const auto& [k, _] : node.attrs) {
    bool ok = false;
    for (const char* a : allowed) ok = ok || k == a;
    if (!ok) bad.push_back(k);
  }
  if (!bad.empty()) {
    std::string list;
    for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    unsupported(node, fmt::format("attribute(s) {} not supported (supported: {})", fmt::join(bad, ", "),
                                  list.empty() ? "none" : list));
  }
}

void check_arity(const Node& node, std::span<const ValueDesc> in, std::size_t min, std::size_t max) {
  std::size_t present = 0;
  for (std::size_t i = 0; i < node.inputs.size(); ++i)
    if (!node.inputs[i].empty()) present = i + 1;
  if (present < min || node.inputs.size() > max)
    invalid(node, fmt::format("expects {} to {} inputs, has {}", min, max, node.inputs.size()));
  for (std::size_t i = 0; i < min; ++i)
    if (node.inputs[i].empty()) invalid(node, fmt::format("required input #{} is empty", i));
}

bool is_float(DType t) { return t == DType::kFloat32 || t == DType::kFloat64; }

void check_float(const Node& node, const ValueDesc& v, const char* what) {
  if (!is_float(v.dtype))
    unsupported(node, fmt::format("{} has type {}; this op runs on float32 only", what, dtype_name(v.dtype)));
}

Geometry2D conv_geometry(const Node& node, const Shape& x, int64_t kh, int64_t kw, bool ceil_mode) {
  if (x.size() != 4)
    unsupported(node, fmt::format("input has shape {}; only 2-D spatial (NCHW, rank 4) inputs are supported", shape_str(x)));
  Geometry2D g;
  g.kh = kh;
  g.kw = kw;
  g.in_h = x[2];
  g.in_w = x[3];
  auto strides = node.attr_ints("strides", {1, 1});
  auto dil = node.attr_ints("dilations", {1, 1});
  auto pads = node.attr_ints("pads", {0, 0, 0, 0});
  if (strides.size() != 2 || dil.size() != 2 || pads.size() != 4)
    invalid(node, "strides/dilations need 2 values and pads 4 for a 2-D op");
  g.sh = strides[0];
  g.sw = strides[1];
  g.dh = dil[0];
  g.dw = dil[1];
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1) invalid(node, "strides and dilations must be >= 1");
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  const int64_t ekh = (kh - 1) * g.dh + 1, ekw = (kw - 1) * g.dw + 1;
  auto same = [](int64_t in, int64_t s, int64_t ek, bool upper, int64_t* b, int64_t* e) {
    int64_t out = (in + s - 1) / s;
    int64_t total = std::max<int64_t>(0, (out - 1) * s + ek - in);
    *b = upper ? total / 2 : total - total / 2;
    *e = total - *b;
  };
  if (auto_pad == "NOTSET") {
    g.pad_top = pads[0];
    g.pad_left = pads[1];
    g.pad_bottom = pads[2];
    g.pad_right = pads[3];
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    bool upper = auto_pad == "SAME_UPPER";
    same(g.in_h, g.sh, ekh, upper, &g.pad_top, &g.pad_bottom);
    same(g.in_w, g.sw, ekw, upper, &g.pad_left, &g.pad_right);
  } else if (auto_pad == "VALID") {
  } else {
    invalid(node, fmt::format("auto_pad '{}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID", auto_pad));
  }
  if (g.pad_top < 0 || g.pad_left < 0 || g.pad_bottom < 0 || g.pad_right < 0) invalid(node, "negative pads");
  auto out_dim = [&](int64_t in, int64_t pb, int64_t pe, int64_t ek, int64_t s) {
    int64_t span = in + pb + pe - ek;
    if (span < 0) invalid(node, fmt::format("kernel larger than the padded input {}", shape_str(x)));
    int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    // ceil_mode: a last window that would start in the trailing padding is
    // dropped ("sliding windows that would start in the right padded region
    // are ignored"), as ONNX Runtime and PyTorch do; otherwise it would cover
    // no input at all (MaxPool would emit -inf).
    if (ceil_mode && (out - 1) * s >= in + pb) --out;
    return out;
  };
  g.out_h = out_dim(g.in_h, g.pad_top, g.pad_bottom, ekh, g.sh);
  g.out_w = out_dim(g.in_w, g.pad_left, g.pad_right, ekw, g.sw);
  return g;
}

Shape broadcast_shapes(const Node& node, const Shape& a, const Shape& b) {
  std::size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (std::size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da != db && da != 1 && db != 1)
      invalid(node, fmt::format("shapes {} and {} cannot be broadcast together", shape_str(a), shape_str(b)));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  int64_t acc = 1;
  for (std::size_t k = 0; k < s.size(); ++k) {
    std::size_t i = s.size() - 1 - k;
    std::size_t o = out.size() - 1 - k;
    st[o] = s[i] == 1 ? 0 : acc;
    acc *= s[i];
  }
  return st;
}

}  // namespace qpipe::kernels
