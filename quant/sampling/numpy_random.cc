#include "quant/sampling/numpy_random.h"

#include <numeric>
#include <utility>

#include "engine/error.h"

namespace qpipe::sampling {

namespace {
constexpr int kN = NumpyRandomState::kStateWords;
constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfU;
constexpr uint32_t kUpperMask = 0x80000000U;
constexpr uint32_t kLowerMask = 0x7fffffffU;
}  // namespace

void NumpyRandomState::seed(uint32_t seed) {
  // mt19937_seed / init_genrand (arithmetic modulo 2^32 by uint32_t wrap).
  uint32_t s = seed;
  for (int i = 0; i < kN; ++i) {
    key_[static_cast<std::size_t>(i)] = s;
    s = 1812433253U * (s ^ (s >> 30)) + static_cast<uint32_t>(i + 1);
  }
  pos_ = kN;
}

void NumpyRandomState::regenerate() {
  int i = 0;
  for (; i < kN - kM; ++i) {
    const uint32_t y = (key_[i] & kUpperMask) | (key_[i + 1] & kLowerMask);
    key_[i] = key_[i + kM] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
  }
  for (; i < kN - 1; ++i) {
    const uint32_t y = (key_[i] & kUpperMask) | (key_[i + 1] & kLowerMask);
    key_[i] = key_[i + (kM - kN)] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
  }
  const uint32_t y = (key_[kN - 1] & kUpperMask) | (key_[0] & kLowerMask);
  key_[kN - 1] = key_[kM - 1] ^ (y >> 1) ^ ((y & 1U) ? kMatrixA : 0U);
  pos_ = 0;
}

uint32_t NumpyRandomState::next_uint32() {
  if (pos_ >= kN) regenerate();
  uint32_t y = key_[static_cast<std::size_t>(pos_++)];
  y ^= (y >> 11);
  y ^= (y << 7) & 0x9d2c5680U;
  y ^= (y << 15) & 0xefc60000U;
  y ^= (y >> 18);
  return y;
}

uint64_t NumpyRandomState::next_uint64() {
  const uint64_t hi = next_uint32();
  const uint64_t lo = next_uint32();
  return (hi << 32) | lo;
}

uint64_t NumpyRandomState::interval(uint64_t max) {
  if (max == 0) return 0;
  uint64_t mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  mask |= mask >> 16;
  mask |= mask >> 32;
  uint64_t value;
  if (max <= 0xffffffffULL) {
    while ((value = (next_uint32() & mask)) > max) {
    }
  } else {
    while ((value = (next_uint64() & mask)) > max) {
    }
  }
  return value;
}

void NumpyRandomState::shuffle(std::span<int64_t> values) {
  for (std::size_t i = values.size(); i-- > 1;) {
    const std::size_t j = static_cast<std::size_t>(interval(i));
    std::swap(values[i], values[j]);
  }
}

std::vector<int64_t> NumpyRandomState::permutation(int64_t n) {
  if (n < 0) fail(ErrorKind::kSpec, "numpy permutation: n must be >= 0, got {}", n);
  std::vector<int64_t> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), int64_t{0});
  shuffle(v);
  return v;
}

std::vector<int64_t> NumpyRandomState::choice_without_replacement(std::span<const int64_t> a, int64_t n) {
  const int64_t pop = static_cast<int64_t>(a.size());
  if (n < 0) fail(ErrorKind::kSpec, "numpy choice: sample size must be >= 0, got {}", n);
  if (n > pop) {
    fail(ErrorKind::kSpec,
         "numpy choice: cannot take a sample of {} from a population of {} without replacement", n, pop);
  }
  const std::vector<int64_t> idx = permutation(pop);
  std::vector<int64_t> out(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) out[static_cast<std::size_t>(i)] = a[static_cast<std::size_t>(idx[static_cast<std::size_t>(i)])];
  return out;
}

}  // namespace qpipe::sampling
