#pragma once
// Run-time CPU feature dispatch. The default build targets baseline x86-64
// (SSE2); kernels compiled for AVX2+FMA or AVX-512F (function attribute
// target, see avx2.cc and avx512.cc) are used only when the CPU (and the OS,
// for the AVX-512 register state) supports them.
//
// Selection, highest first: AVX-512F (with AVX2+FMA), AVX2+FMA, portable.
// Environment overrides, read once per process:
//   QPIPE_FORCE_PORTABLE=1           portable kernels only
//   QPIPE_FORCE_ISA=portable|avx2|avx512
//                                    at most this ISA (a level the CPU lacks
//                                    falls back to the best one it has)
// SessionOptions::force_portable forces the portable path for one session.
//
// Every path computes each output element in the same summation order where
// the contract of the kernel says so (conv_direct.h): AVX-512 and AVX2 give
// bit-identical results, the portable path differs by FMA rounding only.

namespace qpipe::fast {

enum class Isa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };

// True when the CPU supports AVX2 and FMA (cpuid, checked once).
bool cpu_has_avx2_fma();
// True when the CPU and OS support AVX-512F, AVX2 and FMA (checked once).
bool cpu_has_avx512f();
// True when QPIPE_FORCE_PORTABLE is set to a non-empty value other than "0".
bool env_forces_portable();
// The ceiling QPIPE_FORCE_ISA sets (kAvx512 when unset; QPIPE_FORCE_PORTABLE
// lowers it to kPortable). An unknown value is a usage error (PtqError).
Isa env_isa_ceiling();
// The best ISA the CPU has, capped by the environment; kPortable when
// `force_portable`.
Isa select_isa(bool force_portable);
// "avx512", "avx2" or "portable".
const char* isa_name(Isa isa);
// The decision for an AVX2-or-portable kernel: true when AVX2 (or better) is
// selected.
inline bool use_avx2(bool force_portable) { return select_isa(force_portable) >= Isa::kAvx2; }

}  // namespace qpipe::fast
