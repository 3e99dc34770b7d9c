#pragma once
// Run-time CPU feature dispatch. The default build targets baseline x86-64
// (SSE2); kernels compiled for AVX2+FMA (function attribute target) are used
// only when the CPU reports both features and the portable path is not forced
// (QPIPE_FORCE_PORTABLE=1 in the environment, or SessionOptions::force_portable).

namespace qpipe::fast {

// True when the CPU supports AVX2 and FMA (cpuid, checked once).
bool cpu_has_avx2_fma();
// True when QPIPE_FORCE_PORTABLE is set to a non-empty value other than "0".
bool env_forces_portable();
// The decision for a kernel: AVX2 when the CPU has it and nothing forces the
// portable path.
inline bool use_avx2(bool force_portable) { return !force_portable && !env_forces_portable() && cpu_has_avx2_fma(); }

}  // namespace qpipe::fast
