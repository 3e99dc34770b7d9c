#pragma once
// Bit-exact reproduction of numpy's legacy global generator (np.random.seed /
// np.random.RandomState, MT19937), for the calls the study's calibration
// recipe used: seed(int), permutation(n), shuffle of a 1-D int array, and
// choice(a, n, replace=False) without p.
//
// What numpy does (legacy RandomState; frozen by numpy's stream-compatibility
// policy, checked against numpy 1.24):
// - seed(s), s an int in [0, 2^32): mt19937_seed(state, s), i.e. the reference
//   init_genrand(s) (key[0] = s; key[i] = 1812433253 * (key[i-1] ^ key[i-1] >>
//   30) + i), position 624 so the first draw regenerates the whole state.
//   (init_by_array is only used for array seeds.)
// - next_uint32: the reference genrand_int32 with its tempering.
// - next_uint64: (first 32-bit draw) << 32 | (second 32-bit draw).
// - random_interval(max): 0 if max == 0; mask = smallest 2^k - 1 >= max; draw
//   next_uint32() & mask (next_uint64() & mask when max > 0xffffffff) until
//   the value is <= max.
// - shuffle(x) of a 1-D array: for i = n-1 down to 1: j = random_interval(i);
//   swap x[i], x[j].
// - permutation(n) = shuffle(arange(n)).
// - choice(a, size, replace=False, p=None) = a[permutation(len(a))[:size]]:
//   the full permutation is drawn even when size < len(a).

#include <array>
#include <cstdint>
#include <span>
#include <vector>

namespace qpipe::sampling {

class NumpyRandomState {
 public:
  static constexpr int kStateWords = 624;

  explicit NumpyRandomState(uint32_t seed) { this->seed(seed); }

  // np.random.seed(seed): resets the generator.
  void seed(uint32_t seed);

  // One raw MT19937 output (genrand_int32).
  uint32_t next_uint32();
  // Two raw outputs, the first in the high half.
  uint64_t next_uint64();
  // Uniform integer in [0, max] by masked rejection (numpy random_interval).
  uint64_t interval(uint64_t max);

  // In-place Fisher-Yates from the end, as RandomState.shuffle on a 1-D array.
  void shuffle(std::span<int64_t> values);
  // RandomState.permutation(n): a shuffled 0..n-1. n < 0 is a kSpec error.
  std::vector<int64_t> permutation(int64_t n);
  // RandomState.choice(a, n, replace=False): n distinct elements of `a` (by
  // position). n > a.size() or n < 0 is a kSpec error.
  std::vector<int64_t> choice_without_replacement(std::span<const int64_t> a, int64_t n);

  // The 624 key words as RandomState.get_state()[1] shows them, and the
  // position (get_state()[2]).
  const std::array<uint32_t, kStateWords>& key() const { return key_; }
  int position() const { return pos_; }

 private:
  void regenerate();

  std::array<uint32_t, kStateWords> key_{};
  int pos_ = kStateWords;
};

}  // namespace qpipe::sampling
