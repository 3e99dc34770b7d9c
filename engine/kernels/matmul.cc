// MatMul (A [..., M, K] x B [K, N]) and Gemm (alpha*A'*B' + beta*C).
// Each output row is computed on its own, accumulating over k in order, so
// rows can be split across threads and batches without changing a bit.

#include "engine/kernels/common.h"
#include "engine/kernels/kernels.h"

namespace qpipe::kernels {
namespace {

// y[i, :] = sum_k a[i*ars + k*acs] * b[k*brs + j*bcs]  (+ bias handled by caller)
template <typename T>
void gemm_rows(const T* a, int64_t ars, int64_t acs, const T* b, int64_t brs, int64_t bcs, T* y, int64_t M, int64_t K,
               int64_t N, T alpha) {
  parallel_for_each(M, [&](int64_t i) {
    T* yr = y + i * N;
    for (int64_t j = 0; j < N; ++j) yr[j] = T(0);
    for (int64_t k = 0; k < K; ++k) {
      const T av = a[i * ars + k * acs];
      const T* br = b + k * brs;
      if (bcs == 1)
        for (int64_t j = 0; j < N; ++j) yr[j] += av * br[j];
      else
        for (int64_t j = 0; j < N; ++j) yr[j] += av * br[j * bcs];
    }
    if (alpha != T(1))
      for (int64_t j = 0; j < N; ++j) yr[j] *= alpha;
  }, 16);
}

template <typename T>
std::unique_ptr<OpKernel> matmul_kernel(int64_t M, int64_t K, int64_t N) {
  return make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
    gemm_rows<T>(in[0]->data<T>(), K, 1, in[1]->data<T>(), N, 1, out[0]->data<T>(), M, K, N, T(1));
  });
}

}  // namespace

Prepared prepare_matmul(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {});
  check_arity(node, in, 2, 2);
  check_float(node, in[0], "input A");
  if (in[1].dtype != in[0].dtype) unsupported(node, "A and B must have the same type");
  const Shape& a = in[0].shape;
  const Shape& b = in[1].shape;
  if (a.size() < 2 || b.size() != 2)
    unsupported(node, fmt::format("only A of rank >= 2 times a 2-D B is supported (A {}, B {})", shape_str(a), shape_str(b)));
  const int64_t K = a.back(), N = b[1];
  if (b[0] != K) invalid(node, fmt::format("inner dimensions differ: A {} x B {}", shape_str(a), shape_str(b)));
  const int64_t M = shape_numel(a) / K;
  Shape out(a.begin(), a.end() - 1);
  out.push_back(N);
  Prepared p;
  p.outputs = {{in[0].dtype, out, nullptr}};
  p.kernel = in[0].dtype == DType::kFloat32 ? matmul_kernel<float>(M, K, N) : matmul_kernel<double>(M, K, N);
  return p;
}

Prepared prepare_gemm(const Node& node, std::span<const ValueDesc> in, const PrepareContext&) {
  check_attrs(node, {"alpha", "beta", "transA", "transB"});
  check_arity(node, in, 2, 3);
  check_float(node, in[0], "input A");
  for (std::size_t i = 1; i < in.size(); ++i)
    if (!node.inputs[i].empty() && in[i].dtype != in[0].dtype) unsupported(node, "A, B and C must have the same type");
  const Shape& a = in[0].shape;
  const Shape& b = in[1].shape;
  if (a.size() != 2 || b.size() != 2) invalid(node, fmt::format("A {} and B {} must be 2-D", shape_str(a), shape_str(b)));
  const bool ta = node.attr_int("transA", 0) != 0, tb = node.attr_int("transB", 0) != 0;
  const int64_t M = ta ? a[1] : a[0], K = ta ? a[0] : a[1];
  const int64_t Kb = tb ? b[1] : b[0], N = tb ? b[0] : b[1];
  if (K != Kb) invalid(node, fmt::format("inner dimensions differ: A {} (transA={}) x B {} (transB={})", shape_str(a), ta, shape_str(b), tb));
  const double alpha = node.attr_float("alpha", 1.f), beta = node.attr_float("beta", 1.f);
  const bool has_c = in.size() > 2 && !node.inputs[2].empty();
  std::vector<int64_t> cst;
  Shape cshape;
  if (has_c) {
    cshape = in[2].shape;
    Shape bc = broadcast_shapes(node, cshape, {M, N});
    if (bc != Shape{M, N}) invalid(node, fmt::format("C {} does not broadcast to [{},{}]", shape_str(cshape), M, N));
    cst = broadcast_strides(cshape, {M, N});
  }
  Prepared p;
  p.outputs = {{in[0].dtype, {M, N}, nullptr}};
  auto make = [&](auto tag) {
    using T = decltype(tag);
    return make_kernel([=](std::span<const Tensor* const> in, std::span<Tensor* const> out) {
      T* y = out[0]->data<T>();
      gemm_rows<T>(in[0]->data<T>(), ta ? 1 : K, ta ? M : 1, in[1]->data<T>(), tb ? 1 : N, tb ? K : 1, y, M, K, N,
                   static_cast<T>(alpha));
      if (has_c) {
        const T* c = in[2]->data<T>();
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) y[i * N + j] += static_cast<T>(beta) * c[i * cst[0] + j * cst[1]];
      }
    });
  };
  p.kernel = in[0].dtype == DType::kFloat32 ? make(float{}) : make(double{});
  return p;
}

}  // namespace qpipe::kernels
