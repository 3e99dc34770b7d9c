#pragma once
// Reference elementwise binary ops with numpy broadcasting, framework-free:
// raw pointers, the output shape and per-input broadcast strides.

#include <cstdint>
#include <vector>

namespace qpipe::reference {

// out[i] = f(a[ia], b[ib]) for every output index, last axis innermost.
// `out_shape` has rank R >= 1; `sa`, `sb` are element strides (0 on broadcast
// axes) of rank R. Only indices with axis-0 value in [lo, hi) are computed, so
// callers can split axis 0 across threads; each element is independent.
template <typename T, typename U, typename F>
void broadcast_binary(const T* a, const T* b, U* out, const std::vector<int64_t>& out_shape,
                      const std::vector<int64_t>& sa, const std::vector<int64_t>& sb, int64_t lo, int64_t hi, F f) {
  const std::size_t r = out_shape.size();
  const int64_t inner = out_shape[r - 1];
  const int64_t sai = sa[r - 1], sbi = sb[r - 1];
  if (r == 1) {
    for (int64_t i = lo; i < hi; ++i) out[i] = f(a[i * sai], b[i * sbi]);
    return;
  }
  int64_t rows = 1;  // rows per axis-0 index: product of axes 1..r-2
  for (std::size_t ax = 1; ax + 1 < r; ++ax) rows *= out_shape[ax];
  for (int64_t o = lo; o < hi; ++o) {
    for (int64_t row = 0; row < rows; ++row) {
      int64_t ia = o * sa[0], ib = o * sb[0], rem = row;
      for (std::size_t ax = r - 2; ax >= 1; --ax) {
        const int64_t v = rem % out_shape[ax];
        rem /= out_shape[ax];
        ia += v * sa[ax];
        ib += v * sb[ax];
      }
      U* dst = out + (o * rows + row) * inner;
      const T* pa = a + ia;
      const T* pb = b + ib;
      if (sai == 1 && sbi == 1) {
        for (int64_t i = 0; i < inner; ++i) dst[i] = f(pa[i], pb[i]);
      } else if (sai == 1 && sbi == 0) {
        const T vb = pb[0];
        for (int64_t i = 0; i < inner; ++i) dst[i] = f(pa[i], vb);
      } else if (sai == 0 && sbi == 1) {
        const T va = pa[0];
        for (int64_t i = 0; i < inner; ++i) dst[i] = f(va, pb[i]);
      } else {
        for (int64_t i = 0; i < inner; ++i) dst[i] = f(pa[i * sai], pb[i * sbi]);
      }
    }
  }
}

}  // namespace qpipe::reference
