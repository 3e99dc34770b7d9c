// Results must not depend on the thread count or the batch size: the FP32 and
// the int8 QDQ ResNet8 on the same 256 test images, at 1 and 2 threads
// (tbb::task_arena) and batch sizes 1, 7 and 256, give bit-identical softmax
// outputs.

#include <gtest/gtest.h>
#include <tbb/task_arena.h>

#include <cstring>
#include <string>
#include <vector>

#include "engine/io/cifar10.h"
#include "engine/session.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

constexpr int64_t kImages = 256;

// Softmax outputs of the first kImages test images, computed in batches of
// `batch` inside an arena of `threads` threads.
std::vector<float> outputs(const Session& s, const Cifar10Dataset& data, int threads, int64_t batch) {
  std::vector<float> out;
  tbb::task_arena arena(threads);
  arena.execute([&] {
    for (int64_t first = 0; first < kImages; first += batch) {
      const int64_t n = std::min(batch, kImages - first);
      Tensor y = s.run(data.read_batch(first, n).images).at(0);
      EXPECT_EQ(y.shape(), (Shape{n, 10}));
      out.insert(out.end(), y.data<float>(), y.data<float>() + y.numel());
    }
  });
  return out;
}

class Resnet8Determinism : public ::testing::TestWithParam<std::string> {};

TEST_P(Resnet8Determinism, BitIdenticalAcrossThreadsAndBatchSizes) {
  QPIPE_REQUIRE_SHARED(shared);
  Session s(load_onnx(shared + "/models/" + GetParam()));
  const Cifar10Dataset data = open_cifar10(shared + "/data/cifar-10-batches-bin", Cifar10Split::kTest);
  const std::vector<float> ref = outputs(s, data, 1, 256);
  ASSERT_EQ(ref.size(), static_cast<std::size_t>(kImages * 10));
  for (int threads : {1, 2})
    for (int64_t batch : {1, 7, 256}) {
      if (threads == 1 && batch == 256) continue;
      const std::vector<float> got = outputs(s, data, threads, batch);
      ASSERT_EQ(got.size(), ref.size());
      std::size_t first_diff = ref.size();
      for (std::size_t i = 0; i < ref.size() && first_diff == ref.size(); ++i)
        if (std::memcmp(&got[i], &ref[i], sizeof(float)) != 0) first_diff = i;
      EXPECT_EQ(first_diff, ref.size()) << GetParam() << ": threads " << threads << " batch " << batch
                                        << " differs from threads 1 batch 256 first at image " << first_diff / 10
                                        << " class " << first_diff % 10;
    }
}

INSTANTIATE_TEST_SUITE_P(Models, Resnet8Determinism,
                         ::testing::Values("resnet8.onnx", "resnet8_int8_ort_reference.onnx"),
                         [](const auto& info) { return info.param == "resnet8.onnx" ? "Fp32" : "Int8Qdq"; });

}  // namespace
}  // namespace qpipe
