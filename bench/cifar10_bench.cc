// Throughput of the CIFAR-10 reader: images/s of read_batch(first, 256) over
// the test split, and of read_indices on a scattered 1000-image gather (the
// calibration-set access pattern). Data: $QPIPE_SHARED, else ../shared beside
// the repository root.

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/io/cifar10.h"

namespace {

namespace fs = std::filesystem;

std::string cifar_dir() {
  fs::path shared;
  if (const char* env = std::getenv("QPIPE_SHARED"); env && *env) {
    shared = env;
  } else {
    shared = fs::path(__FILE__).parent_path() / ".." / ".." / "shared";
  }
  return (shared / "data" / "cifar-10-batches-bin").string();
}

void BM_Cifar10ReadBatch256(benchmark::State& state) {
  qpipe::Cifar10Dataset ds;
  try {
    ds = qpipe::open_cifar10(cifar_dir(), qpipe::Cifar10Split::kTest);
  } catch (const qpipe::PtqError& e) {
    state.SkipWithError(e.what());
    return;
  }
  constexpr int64_t kBatch = 256;
  int64_t first = 0;
  for (auto _ : state) {
    if (first + kBatch > ds.size()) first = 0;
    qpipe::Cifar10Batch b = ds.read_batch(first, kBatch);
    benchmark::DoNotOptimize(b.images.raw());
    first += kBatch;
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
  state.SetBytesProcessed(state.iterations() * kBatch * qpipe::Cifar10Dataset::kRecordBytes);
}
BENCHMARK(BM_Cifar10ReadBatch256)->Unit(benchmark::kMillisecond);

void BM_Cifar10ReadIndices1000(benchmark::State& state) {
  qpipe::Cifar10Dataset ds;
  try {
    ds = qpipe::open_cifar10(cifar_dir(), qpipe::Cifar10Split::kTest);
  } catch (const qpipe::PtqError& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < 1000; ++i) idx.push_back((i * 7919) % ds.size());
  for (auto _ : state) {
    qpipe::Cifar10Batch b = ds.read_indices(idx);
    benchmark::DoNotOptimize(b.images.raw());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(idx.size()));
}
BENCHMARK(BM_Cifar10ReadIndices1000)->Unit(benchmark::kMillisecond);

void BM_Cifar10OpenTrain(benchmark::State& state) {
  for (auto _ : state) {
    try {
      auto ds = qpipe::open_cifar10(cifar_dir(), qpipe::Cifar10Split::kTrain);
      benchmark::DoNotOptimize(ds.size());
    } catch (const qpipe::PtqError& e) {
      state.SkipWithError(e.what());
      return;
    }
  }
}
BENCHMARK(BM_Cifar10OpenTrain)->Unit(benchmark::kMillisecond);

}  // namespace
