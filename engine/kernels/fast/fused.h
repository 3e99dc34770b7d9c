#pragma once
// Factories for fused kernels, used by Session's fusion pass
// (engine/session.cc). See epilogue.h for the fused arithmetic.

#include <span>

#include "engine/kernel.h"
#include "engine/kernels/fast/epilogue.h"

namespace qpipe::kernels {

// Conv followed by `epilogue`. Inputs at eval: x, w, bias (null when absent),
// then the epilogue's extra tensors (each of the conv output's shape). The
// output description is the conv's. force_portable selects the SSE2/Eigen
// path even on AVX2 machines.
Prepared prepare_conv_fused(const Node& node, std::span<const ValueDesc> in, const PrepareContext& ctx,
                            fast::Epilogue epilogue, bool force_portable);

// y = epilogue(x) for a float32 tensor x of shape `shape`, channels along
// axis 1 (inner = product of the axes after 1). Inputs at eval: x, then the
// extra tensors.
std::unique_ptr<OpKernel> make_epilogue_kernel(fast::Epilogue epilogue, const Shape& shape, bool force_portable);

}  // namespace qpipe::kernels
