// NumpyRandomState against values printed by real numpy (1.24.2, Debian
// python3-numpy; the legacy RandomState stream is frozen across versions).
// The snippet used, run with a python that has numpy:
//
//   import numpy as np
//   rs = np.random.RandomState(42); print(rs.get_state()[1][:5].tolist(), rs.get_state()[2])
//   # randint over [0, 2**32) with dtype uint64 returns raw next_uint32 outputs
//   rs = np.random.RandomState(42); print(rs.randint(0, 2**32, size=5, dtype=np.uint64).tolist())
//   # randint over [0, 2**40) uses (next_uint64() & (2**40-1)), masked rejection
//   rs = np.random.RandomState(42); print(rs.randint(0, 2**40, size=3, dtype=np.uint64).tolist())
//   rs = np.random.RandomState(42); print(rs.permutation(10).tolist())
//   rs = np.random.RandomState(0); print(rs.permutation(10).tolist())
//   rs = np.random.RandomState(0); print(rs.get_state()[1][:3].tolist())
//   rs = np.random.RandomState(7); v = rs.permutation(1000).tolist(); print(sum(i * x for i, x in enumerate(v)))
//   rs = np.random.RandomState(123); print(rs.choice(np.arange(100, 150), 7, replace=False).tolist())
//   rs = np.random.RandomState(4294967295); print(rs.permutation(5).tolist())
//
// Output:
//   [42, 3107752595, 1895908407, 3900362577, 3030691166] 624
//   [1608637542, 3421126067, 4083286876, 787846414, 3143890026]
//   [441507790259, 395924837646, 458615280711]
//   [8, 1, 5, 0, 7, 2, 9, 4, 3, 6]
//   [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]
//   [0, 1, 1812433255]
//   246202311
//   [110, 113, 130, 146, 118, 100, 140]
//   [4, 1, 0, 2, 3]

#include "quant/sampling/numpy_random.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "engine/error.h"

namespace qpipe::sampling {
namespace {

TEST(NumpyRandomState, SeedFillsKeyLikeInitGenrand) {
  NumpyRandomState rs(42);
  EXPECT_EQ(rs.position(), 624);
  EXPECT_EQ(rs.key()[0], 42u);
  EXPECT_EQ(rs.key()[1], 3107752595u);
  EXPECT_EQ(rs.key()[2], 1895908407u);
  EXPECT_EQ(rs.key()[3], 3900362577u);
  EXPECT_EQ(rs.key()[4], 3030691166u);
  NumpyRandomState zero(0);
  EXPECT_EQ(zero.key()[0], 0u);
  EXPECT_EQ(zero.key()[1], 1u);
  EXPECT_EQ(zero.key()[2], 1812433255u);
}

TEST(NumpyRandomState, RawUint32Outputs) {
  NumpyRandomState rs(42);
  const std::vector<uint32_t> want = {1608637542u, 3421126067u, 4083286876u, 787846414u, 3143890026u};
  for (uint32_t w : want) EXPECT_EQ(rs.next_uint32(), w);
  // Reseeding restarts the stream.
  rs.seed(42);
  EXPECT_EQ(rs.next_uint32(), want[0]);
}

TEST(NumpyRandomState, Interval64UsesHighWordFirst) {
  NumpyRandomState rs(42);
  const uint64_t max = (uint64_t{1} << 40) - 1;
  EXPECT_EQ(rs.interval(max), 441507790259u);
  EXPECT_EQ(rs.interval(max), 395924837646u);
  EXPECT_EQ(rs.interval(max), 458615280711u);
}

TEST(NumpyRandomState, IntervalEdgeCases) {
  NumpyRandomState rs(1);
  NumpyRandomState ref(1);
  EXPECT_EQ(rs.interval(0), 0u);                // consumes nothing
  EXPECT_EQ(rs.next_uint32(), ref.next_uint32());
  for (int i = 0; i < 1000; ++i) {
    const uint64_t m = static_cast<uint64_t>(i % 37);
    EXPECT_LE(rs.interval(m), m);
  }
  // max == 2^32-1: mask is all ones, one draw, the raw value.
  NumpyRandomState a(9), b(9);
  EXPECT_EQ(a.interval(0xffffffffULL), b.next_uint32());
}

TEST(NumpyRandomState, PermutationMatchesNumpy) {
  EXPECT_EQ(NumpyRandomState(42).permutation(10), (std::vector<int64_t>{8, 1, 5, 0, 7, 2, 9, 4, 3, 6}));
  EXPECT_EQ(NumpyRandomState(0).permutation(10), (std::vector<int64_t>{2, 8, 4, 9, 1, 6, 7, 3, 0, 5}));
  EXPECT_EQ(NumpyRandomState(4294967295u).permutation(5), (std::vector<int64_t>{4, 1, 0, 2, 3}));
  std::vector<int64_t> p = NumpyRandomState(7).permutation(1000);
  int64_t weighted = 0;
  for (std::size_t i = 0; i < p.size(); ++i) weighted += static_cast<int64_t>(i) * p[i];
  EXPECT_EQ(weighted, 246202311);
  std::sort(p.begin(), p.end());
  for (int64_t i = 0; i < 1000; ++i) ASSERT_EQ(p[i], i);
  EXPECT_TRUE(NumpyRandomState(3).permutation(0).empty());
  EXPECT_EQ(NumpyRandomState(3).permutation(1), std::vector<int64_t>{0});
  EXPECT_THROW(NumpyRandomState(3).permutation(-1), PtqError);
}

TEST(NumpyRandomState, ChoiceWithoutReplacementMatchesNumpy) {
  std::vector<int64_t> a(50);
  std::iota(a.begin(), a.end(), 100);
  NumpyRandomState rs(123);
  EXPECT_EQ(rs.choice_without_replacement(a, 7), (std::vector<int64_t>{110, 113, 130, 146, 118, 100, 140}));
}

TEST(NumpyRandomState, ChoiceIsPrefixOfPermutationAndConsumesFullShuffle) {
  std::vector<int64_t> a = {5, 6, 7, 8, 9, 10, 11};
  NumpyRandomState x(11), y(11);
  const std::vector<int64_t> c = x.choice_without_replacement(a, 3);
  const std::vector<int64_t> p = y.permutation(7);
  ASSERT_EQ(c.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(c[i], a[p[i]]);
  // Both generators are now at the same point in the stream.
  EXPECT_EQ(x.next_uint32(), y.next_uint32());
}

TEST(NumpyRandomState, ChoiceErrors) {
  std::vector<int64_t> a = {1, 2, 3};
  NumpyRandomState rs(0);
  try {
    rs.choice_without_replacement(a, 4);
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSpec);
    EXPECT_NE(std::string(e.what()).find("sample of 4 from a population of 3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(rs.choice_without_replacement(a, -1), PtqError);
  EXPECT_TRUE(rs.choice_without_replacement(a, 0).empty());
}

}  // namespace
}  // namespace qpipe::sampling
