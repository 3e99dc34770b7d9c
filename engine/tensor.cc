#include "engine/tensor.h"

#include <fmt/format.h>

#include <new>

#include "engine/error.h"

namespace qpipe {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kUInt8: return "uint8";
    case DType::kInt8: return "int8";
    case DType::kInt32: return "int32";
    case DType::kInt64: return "int64";
  }
  return "?";
}

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::kFloat32: return 4;
    case DType::kFloat64: return 8;
    case DType::kUInt8: return 1;
    case DType::kInt8: return 1;
    case DType::kInt32: return 4;
    case DType::kInt64: return 8;
  }
  return 0;
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    out += s[i] < 0 ? std::string("N") : std::to_string(s[i]);
  }
  return out + "]";
}

namespace {
constexpr std::size_t kAlign = 64;
std::shared_ptr<std::byte[]> allocate(std::size_t bytes) {
  std::size_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
  if (rounded == 0) rounded = kAlign;
  auto* p = static_cast<std::byte*>(::operator new[](rounded, std::align_val_t(kAlign)));
  std::memset(p, 0, rounded);
  return std::shared_ptr<std::byte[]>(p, [](std::byte* q) { ::operator delete[](q, std::align_val_t(kAlign)); });
}
}  // namespace

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0) fail(ErrorKind::kRuntime, "tensor shape {} has a negative dimension", shape_str(shape_));
  numel_ = shape_numel(shape_);
  capacity_ = nbytes();
  buf_ = allocate(capacity_);
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel_)
    fail(ErrorKind::kRuntime, "cannot reshape {} to {}", shape_str(shape_), shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

void Tensor::resize(DType dtype, const Shape& shape) {
  std::size_t need = static_cast<std::size_t>(shape_numel(shape)) * dtype_size(dtype);
  if (!buf_ || buf_.use_count() > 1 || need > capacity_) {
    *this = Tensor(dtype, shape);
    return;
  }
  dtype_ = dtype;
  shape_ = shape;
  numel_ = shape_numel(shape);
}

void Tensor::type_mismatch(DType wanted) const {
  fail(ErrorKind::kRuntime, "tensor of type {} accessed as {}", dtype_name(dtype_), dtype_name(wanted));
}

std::vector<double> to_double(const Tensor& t) {
  std::vector<double> out(static_cast<std::size_t>(t.numel()));
  auto copy = [&](auto* p) { for (std::size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]); };
  switch (t.dtype()) {
    case DType::kFloat32: copy(t.data<float>()); break;
    case DType::kFloat64: copy(t.data<double>()); break;
    case DType::kUInt8: copy(t.data<uint8_t>()); break;
    case DType::kInt8: copy(t.data<int8_t>()); break;
    case DType::kInt32: copy(t.data<int32_t>()); break;
    case DType::kInt64: copy(t.data<int64_t>()); break;
  }
  return out;
}

Tensor to_float32(const Tensor& t) {
  if (t.dtype() == DType::kFloat32) return t;
  Tensor out(DType::kFloat32, t.shape());
  auto d = to_double(t);
  float* o = out.data<float>();
  for (std::size_t i = 0; i < d.size(); ++i) o[i] = static_cast<float>(d[i]);
  return out;
}

}  // namespace qpipe
