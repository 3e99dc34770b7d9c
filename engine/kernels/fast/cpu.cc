#include "engine/kernels/fast/cpu.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/error.h"

namespace qpipe::fast {

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's feature detection checks XCR0 (OS-enabled ZMM/opmask state)
  // before it reports avx512f.
  static const bool has = [] {
    __builtin_cpu_init();
    return cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f");
  }();
  return has;
#else
  return false;
#endif
}

bool env_forces_portable() {
  static const bool forced = [] {
    const char* v = std::getenv("QPIPE_FORCE_PORTABLE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return forced;
}

Isa env_isa_ceiling() {
  static const Isa ceiling = [] {
    if (env_forces_portable()) return Isa::kPortable;
    const char* v = std::getenv("QPIPE_FORCE_ISA");
    if (!v || !*v) return Isa::kAvx512;
    const std::string s(v);
    if (s == "portable") return Isa::kPortable;
    if (s == "avx2") return Isa::kAvx2;
    if (s == "avx512") return Isa::kAvx512;
    fail(ErrorKind::kUsage, "environment variable QPIPE_FORCE_ISA='{}': expected portable, avx2 or avx512", s);
  }();
  return ceiling;
}

Isa select_isa(bool force_portable) {
  if (force_portable) return Isa::kPortable;
  Isa best = cpu_has_avx512f() ? Isa::kAvx512 : (cpu_has_avx2_fma() ? Isa::kAvx2 : Isa::kPortable);
  const Isa cap = env_isa_ceiling();
  return best < cap ? best : cap;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    case Isa::kPortable: break;
  }
  return "portable";
}

}  // namespace qpipe::fast
