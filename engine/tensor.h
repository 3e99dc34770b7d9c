#pragma once
// Dense tensors: a dtype, a shape and 64-byte aligned row-major storage.
// Shared by the engine, the quantization code and the stages.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace qpipe {

enum class DType : int { kFloat32, kFloat64, kUInt8, kInt8, kInt32, kInt64 };

const char* dtype_name(DType t);
std::size_t dtype_size(DType t);

template <typename T> constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::kFloat32; }
template <> constexpr DType dtype_of<double>() { return DType::kFloat64; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::kUInt8; }
template <> constexpr DType dtype_of<int8_t>() { return DType::kInt8; }
template <> constexpr DType dtype_of<int32_t>() { return DType::kInt32; }
template <> constexpr DType dtype_of<int64_t>() { return DType::kInt64; }

using Shape = std::vector<int64_t>;
int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled

  template <typename T>
  static Tensor from(Shape shape, std::span<const T> values) {
    Tensor t(dtype_of<T>(), std::move(shape));
    std::memcpy(t.raw(), values.data(), values.size_bytes());
    return t;
  }
  template <typename T>
  static Tensor scalar(T v) { return from<T>({}, std::span<const T>(&v, 1)); }

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(std::size_t i) const { return shape_.at(i); }
  std::size_t rank() const { return shape_.size(); }
  int64_t numel() const { return numel_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel_) * dtype_size(dtype_); }
  bool empty() const { return !buf_; }

  void* raw() { return buf_.get(); }
  const void* raw() const { return buf_.get(); }

  template <typename T> T* data() { check<T>(); return static_cast<T*>(raw()); }
  template <typename T> const T* data() const { check<T>(); return static_cast<const T*>(raw()); }
  template <typename T> std::span<T> span() { return {data<T>(), static_cast<std::size_t>(numel_)}; }
  template <typename T> std::span<const T> span() const { return {data<T>(), static_cast<std::size_t>(numel_)}; }

  // Same storage, new shape (numel must match). Storage is shared.
  Tensor reshaped(Shape shape) const;
  // Deep copy.
  Tensor clone() const;
  // Reuse storage when the dtype/shape already match; otherwise reallocate.
  void resize(DType dtype, const Shape& shape);

 private:
  template <typename T> void check() const {
    if (dtype_of<T>() != dtype_) type_mismatch(dtype_of<T>());
  }
  [[noreturn]] void type_mismatch(DType wanted) const;

  DType dtype_ = DType::kFloat32;
  Shape shape_;
  int64_t numel_ = 0;
  std::size_t capacity_ = 0;
  std::shared_ptr<std::byte[]> buf_;
};

// Value convertion helpers used by tests and analysis code.
std::vector<double> to_double(const Tensor& t);
Tensor to_float32(const Tensor& t);

}  // namespace qpipe
