#include "engine/kernels/fast/cpu.h"

#include <cstdlib>
#include <cstring>

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

bool env_forces_portable() {
  static const bool forced = [] {
    const char* v = std::getenv("QPIPE_FORCE_PORTABLE");
    return v && *v && std::strcmp(v, "0") != 0;
  }();
  return forced;
}

}  // namespace qpipe::fast
