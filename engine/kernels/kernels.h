#pragma once
// Prepare functions of every supported op; listed once in engine/op_registry.cc.

#include "engine/kernel.h"

namespace qpipe::kernels {

#define QPIPE_DECLARE_PREPARE(fn) \
  Prepared fn(const Node& node, std::span<const ValueDesc> in, const PrepareContext& ctx)

QPIPE_DECLARE_PREPARE(prepare_add);
QPIPE_DECLARE_PREPARE(prepare_sub);
QPIPE_DECLARE_PREPARE(prepare_mul);
QPIPE_DECLARE_PREPARE(prepare_div);
QPIPE_DECLARE_PREPARE(prepare_average_pool);
QPIPE_DECLARE_PREPARE(prepare_clip);
QPIPE_DECLARE_PREPARE(prepare_constant);
QPIPE_DECLARE_PREPARE(prepare_conv);
QPIPE_DECLARE_PREPARE(prepare_dequantize_linear);
QPIPE_DECLARE_PREPARE(prepare_flatten);
QPIPE_DECLARE_PREPARE(prepare_gemm);
QPIPE_DECLARE_PREPARE(prepare_global_average_pool);
QPIPE_DECLARE_PREPARE(prepare_identity);
QPIPE_DECLARE_PREPARE(prepare_matmul);
QPIPE_DECLARE_PREPARE(prepare_max_pool);
QPIPE_DECLARE_PREPARE(prepare_quantize_linear);
QPIPE_DECLARE_PREPARE(prepare_relu);
QPIPE_DECLARE_PREPARE(prepare_reshape);
QPIPE_DECLARE_PREPARE(prepare_softmax);
QPIPE_DECLARE_PREPARE(prepare_transpose);

#undef QPIPE_DECLARE_PREPARE

}  // namespace qpipe::kernels
