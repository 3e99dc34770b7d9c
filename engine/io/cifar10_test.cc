// Tests of the CIFAR-10 binary reader: real data from ../shared (NHWC
// interleaving checked against bytes read independently with std::ifstream),
// and tiny synthetic fixtures written to a temporary folder for the error paths.

#include "engine/io/cifar10.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "engine/error.h"
#include "tests/test_support.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kRec = 3073;

std::string cifar_dir(const std::string& shared) { return (fs::path(shared) / "data" / "cifar-10-batches-bin").string(); }

// Raw record bytes read with plain ifstream, independent of the reader.
std::vector<unsigned char> raw_record(const std::string& file, int64_t record) {
  std::ifstream in(file, std::ios::binary);
  EXPECT_TRUE(in.good()) << file;
  in.seekg(record * kRec);
  std::vector<unsigned char> buf(kRec);
  in.read(reinterpret_cast<char*>(buf.data()), kRec);
  EXPECT_EQ(in.gcount(), kRec);
  return buf;
}

// Pixel (y, x, c) of image `i` of an NHWC float tensor.
float pixel(const Tensor& t, int64_t i, int y, int x, int c) {
  return t.data<float>()[((i * 32 + y) * 32 + x) * 3 + c];
}

// Checks that image `slot` of `batch` equals the raw record, byte for byte.
void expect_matches_raw(const Cifar10Batch& batch, int64_t slot, const std::vector<unsigned char>& rec) {
  ASSERT_EQ(batch.labels[static_cast<std::size_t>(slot)], rec[0]);
  int mismatches = 0;
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c)
        if (pixel(batch.images, slot, y, x, c) != static_cast<float>(rec[1 + c * 1024 + y * 32 + x])) ++mismatches;
  EXPECT_EQ(mismatches, 0) << "image slot " << slot;
}

// ---------------------------------------------------------------- real data

TEST(Cifar10Real, TestSplitShapeLabelsAndPixels) {
  QPIPE_REQUIRE_SHARED(shared);
  const std::string dir = cifar_dir(shared);
  Cifar10Dataset ds = open_cifar10(dir, Cifar10Split::kTest);
  ASSERT_EQ(ds.size(), 10000);
  ASSERT_EQ(ds.files().size(), 1u);
  EXPECT_EQ(ds.records_per_file(), std::vector<int64_t>{10000});
  EXPECT_EQ(ds.class_counts(), std::vector<int64_t>(10, 1000));
  ASSERT_EQ(ds.class_names().size(), 10u);
  EXPECT_EQ(ds.class_names()[0], "airplane");
  EXPECT_EQ(ds.class_names()[3], "cat");
  EXPECT_EQ(ds.class_names()[9], "truck");
  EXPECT_EQ(ds.labels()[0], 3);  // the first test image is a cat

  Cifar10Batch b = ds.read_batch(0, 4);
  ASSERT_EQ(b.images.dtype(), DType::kFloat32);
  ASSERT_EQ(b.images.shape(), (Shape{4, 32, 32, 3}));
  EXPECT_EQ(b.labels[0], 3);
  EXPECT_EQ(b.indices, (std::vector<int64_t>{0, 1, 2, 3}));

  const std::string file = ds.files()[0];
  const auto rec0 = raw_record(file, 0);
  // First pixel's R, G, B come from three planes 1024 bytes apart.
  EXPECT_EQ(pixel(b.images, 0, 0, 0, 0), static_cast<float>(rec0[1]));
  EXPECT_EQ(pixel(b.images, 0, 0, 0, 1), static_cast<float>(rec0[1 + 1024]));
  EXPECT_EQ(pixel(b.images, 0, 0, 0, 2), static_cast<float>(rec0[1 + 2048]));
  // Row 1, column 5 and the last pixel.
  EXPECT_EQ(pixel(b.images, 0, 1, 5, 0), static_cast<float>(rec0[1 + 32 + 5]));
  EXPECT_EQ(pixel(b.images, 0, 31, 31, 2), static_cast<float>(rec0[3072]));
  for (int64_t i = 0; i < 4; ++i) expect_matches_raw(b, i, raw_record(file, i));

  // Raw values, never normalized: the whole batch stays in 0..255 and spans
  // more than a small range.
  auto s = b.images.span<float>();
  auto [mn, mx] = std::minmax_element(s.begin(), s.end());
  EXPECT_GE(*mn, 0.0f);
  EXPECT_LE(*mx, 255.0f);
  EXPECT_GT(*mx - *mn, 100.0f);

  // The last image.
  Cifar10Batch last = ds.read_batch(9999, 1);
  expect_matches_raw(last, 0, raw_record(file, 9999));
  EXPECT_EQ(last.indices[0], 9999);
}

TEST(Cifar10Real, TrainSplitAcrossFiles) {
  QPIPE_REQUIRE_SHARED(shared);
  Cifar10Dataset ds = open_cifar10(cifar_dir(shared), Cifar10Split::kTrain);
  ASSERT_EQ(ds.size(), 50000);
  ASSERT_EQ(ds.files().size(), 5u);
  EXPECT_EQ(ds.records_per_file(), std::vector<int64_t>(5, 10000));
  EXPECT_EQ(fs::path(ds.files()[0]).filename(), "data_batch_1.bin");
  EXPECT_EQ(fs::path(ds.files()[4]).filename(), "data_batch_5.bin");
  EXPECT_EQ(ds.class_counts(), std::vector<int64_t>(10, 5000));

  // A batch straddling data_batch_1 / data_batch_2.
  Cifar10Batch b = ds.read_batch(9998, 4);
  EXPECT_EQ(b.indices, (std::vector<int64_t>{9998, 9999, 10000, 10001}));
  expect_matches_raw(b, 0, raw_record(ds.files()[0], 9998));
  expect_matches_raw(b, 1, raw_record(ds.files()[0], 9999));
  expect_matches_raw(b, 2, raw_record(ds.files()[1], 0));
  expect_matches_raw(b, 3, raw_record(ds.files()[1], 1));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(b.labels[i], ds.labels()[9998 + i]);

  // Gathered subset in arbitrary order, with a run across a file boundary.
  std::vector<int64_t> idx = {49999, 7, 19999, 20000, 20001, 7};
  Cifar10Batch g = ds.read_indices(idx);
  EXPECT_EQ(g.indices, idx);
  expect_matches_raw(g, 0, raw_record(ds.files()[4], 9999));
  expect_matches_raw(g, 1, raw_record(ds.files()[0], 7));
  expect_matches_raw(g, 2, raw_record(ds.files()[1], 9999));
  expect_matches_raw(g, 3, raw_record(ds.files()[2], 0));
  expect_matches_raw(g, 4, raw_record(ds.files()[2], 1));
  expect_matches_raw(g, 5, raw_record(ds.files()[0], 7));

  auto loc = ds.locate(30005);
  EXPECT_EQ(*loc.file, ds.files()[3]);
  EXPECT_EQ(loc.record, 5);
  EXPECT_EQ(loc.offset, 5 * kRec);
}

TEST(Cifar10Real, LimitKeepsFirstImages) {
  QPIPE_REQUIRE_SHARED(shared);
  Cifar10Dataset ds = open_cifar10(cifar_dir(shared), Cifar10Split::kTest);
  Cifar10Dataset small = ds.limited(100);
  EXPECT_EQ(small.size(), 100);
  EXPECT_EQ(small.full_size(), 10000);
  EXPECT_EQ(small.labels().size(), 100u);
  EXPECT_TRUE(std::equal(small.labels().begin(), small.labels().end(), ds.labels().begin()));
  EXPECT_EQ(ds.limited(20000).size(), 10000);
  EXPECT_EQ(ds.size(), 10000);  // the original is untouched
  try {
    small.read_batch(99, 2);
    FAIL() << "expected an out-of-range error";
  } catch (const PtqError& e) {
    EXPECT_THAT(e.what(), HasSubstr("100 images"));
    EXPECT_THAT(e.what(), HasSubstr("limited from 10000"));
  }
}

TEST(Cifar10Real, ConcurrentReadsAgreeWithSerial) {
  QPIPE_REQUIRE_SHARED(shared);
  Cifar10Dataset ds = open_cifar10(cifar_dir(shared), Cifar10Split::kTest);
  constexpr int kThreads = 4;
  constexpr int64_t kPer = 64;
  std::vector<Cifar10Batch> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] { got[t] = ds.read_batch(t * 1000, kPer); });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    Cifar10Batch serial = ds.read_batch(t * 1000, kPer);
    EXPECT_EQ(got[t].labels, serial.labels);
    EXPECT_TRUE(std::equal(serial.images.span<float>().begin(), serial.images.span<float>().end(),
                           got[t].images.span<float>().begin()));
  }
}

// ---------------------------------------------------------------- fixtures

// A temporary folder with synthetic CIFAR-10 files, removed at the end.
class Cifar10Fixture : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() /
           ("qpipe_cifar10_" + std::to_string(::getpid()) + "_" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    write_meta();
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Record r: label labels[r]; pixel byte of plane c at p = (r*7 + c*31 + p) mod 256.
  static std::vector<unsigned char> record_bytes(int64_t r, int label) {
    std::vector<unsigned char> rec(kRec);
    rec[0] = static_cast<unsigned char>(label);
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 1024; ++p) rec[1 + c * 1024 + p] = static_cast<unsigned char>((r * 7 + c * 31 + p) % 256);
    return rec;
  }
  void write_file(const std::string& name, const std::vector<int>& labels, int extra_bytes = 0) {
    std::ofstream out(dir_ / name, std::ios::binary | std::ios::trunc);
    for (std::size_t r = 0; r < labels.size(); ++r) {
      auto rec = record_bytes(static_cast<int64_t>(r), labels[r]);
      out.write(reinterpret_cast<const char*>(rec.data()), kRec);
    }
    for (int i = 0; i < extra_bytes; ++i) out.put('\x01');
  }
  void write_meta(const std::string& text =
                      "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n") {
    std::ofstream(dir_ / "batches.meta.txt") << text;
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  // Runs open_cifar10 and returns the kInput message (fails the test otherwise).
  std::string open_error(Cifar10Split split, ErrorKind want = ErrorKind::kInput) {
    try {
      open_cifar10(dir_.string(), split);
    } catch (const PtqError& e) {
      EXPECT_EQ(e.kind(), want) << e.what();
      return e.what();
    }
    ADD_FAILURE() << "open_cifar10 did not fail";
    return "";
  }

  fs::path dir_;
};

TEST_F(Cifar10Fixture, SevenRecordFile) {
  const std::vector<int> labels = {0, 9, 3, 3, 5, 1, 8};
  write_file("test_batch.bin", labels);
  Cifar10Dataset ds = open_cifar10(dir_.string(), Cifar10Split::kTest);
  ASSERT_EQ(ds.size(), 7);
  EXPECT_EQ(ds.labels(), labels);
  EXPECT_EQ(ds.class_counts(), (std::vector<int64_t>{1, 1, 0, 2, 0, 1, 0, 0, 1, 1}));
  Cifar10Batch b = ds.read_batch(0, 7);
  ASSERT_EQ(b.images.shape(), (Shape{7, 32, 32, 3}));
  for (int64_t r = 0; r < 7; ++r) expect_matches_raw(b, r, record_bytes(r, labels[r]));
  // Pixel (y=2, x=3) of record 4, channel G: (4*7 + 31 + 67) % 256 = 126.
  EXPECT_EQ(pixel(b.images, 4, 2, 3, 1), 126.0f);
  Cifar10Batch g = ds.read_indices(std::vector<int64_t>{6, 0, 1, 2});
  expect_matches_raw(g, 0, record_bytes(6, labels[6]));
  expect_matches_raw(g, 1, record_bytes(0, labels[0]));
  expect_matches_raw(g, 3, record_bytes(2, labels[2]));
  EXPECT_EQ(ds.read_batch(7, 0).images.shape(), (Shape{0, 32, 32, 3}));
  EXPECT_THROW(ds.read_batch(5, 3), PtqError);
  EXPECT_THROW(ds.read_batch(-1, 1), PtqError);
  EXPECT_THROW(ds.read_indices(std::vector<int64_t>{7}), PtqError);
  EXPECT_THROW(ds.limited(-1), PtqError);
}

TEST_F(Cifar10Fixture, TrainSplitOfUnevenFiles) {
  write_file("data_batch_1.bin", {1, 2});
  write_file("data_batch_2.bin", {3});
  write_file("data_batch_3.bin", {4, 5, 6});
  write_file("data_batch_4.bin", {7});
  write_file("data_batch_5.bin", {8, 9});
  Cifar10Dataset ds = open_cifar10(dir_.string(), Cifar10Split::kTrain);
  EXPECT_EQ(ds.size(), 9);
  EXPECT_EQ(ds.records_per_file(), (std::vector<int64_t>{2, 1, 3, 1, 2}));
  EXPECT_EQ(ds.labels(), (std::vector<int>{1, 2, 3, 4, 5, 6, 7, 8, 9}));
  Cifar10Batch b = ds.read_batch(1, 6);  // crosses four files
  EXPECT_EQ(b.labels, (std::vector<int>{2, 3, 4, 5, 6, 7}));
  expect_matches_raw(b, 1, record_bytes(0, 3));  // record 0 of data_batch_2
  expect_matches_raw(b, 4, record_bytes(2, 6));  // record 2 of data_batch_3
  Cifar10Dataset lim = ds.limited(3);
  EXPECT_EQ(lim.labels(), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(lim.read_indices(std::vector<int64_t>{2, 0}).labels, (std::vector<int>{3, 1}));
}

TEST_F(Cifar10Fixture, SizeNotMultipleOfRecord) {
  write_file("test_batch.bin", {1, 2}, 5);  // 3073*2 + 5 bytes
  const std::string msg = open_error(Cifar10Split::kTest);
  EXPECT_THAT(msg, HasSubstr(path("test_batch.bin")));
  EXPECT_THAT(msg, HasSubstr("size 6151 bytes"));
  EXPECT_THAT(msg, HasSubstr("5 stray bytes at byte offset 6146"));
  EXPECT_THAT(msg, HasSubstr("3073"));
}

TEST_F(Cifar10Fixture, LabelOutOfRange) {
  write_file("test_batch.bin", {0, 1, 2, 10, 4});
  const std::string msg = open_error(Cifar10Split::kTest);
  EXPECT_THAT(msg, HasSubstr(path("test_batch.bin")));
  EXPECT_THAT(msg, HasSubstr("record 3 (byte offset 9219)"));
  EXPECT_THAT(msg, HasSubstr("label 10"));
  EXPECT_THAT(msg, HasSubstr("0..9"));
}

TEST_F(Cifar10Fixture, LabelCorruptedAfterOpenIsCaughtOnRead) {
  write_file("test_batch.bin", {0, 1, 2});
  Cifar10Dataset ds = open_cifar10(dir_.string(), Cifar10Split::kTest);
  {
    std::fstream f(dir_ / "test_batch.bin", std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(2 * kRec);
    f.put(static_cast<char>(200));
  }
  try {
    ds.read_batch(0, 3);
    FAIL() << "expected a bad-label error";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_THAT(e.what(), HasSubstr("record 2 (byte offset 6146) has label 200"));
  }
}

TEST_F(Cifar10Fixture, MissingFolder) {
  const std::string missing = (dir_ / "nope").string();
  try {
    open_cifar10(missing, Cifar10Split::kTest);
    FAIL() << "expected an error";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_THAT(e.what(), HasSubstr("'" + missing + "' does not exist"));
  }
}

TEST_F(Cifar10Fixture, MissingFile) {
  write_file("data_batch_1.bin", {1});
  write_file("data_batch_2.bin", {1});
  // data_batch_3.bin missing
  const std::string msg = open_error(Cifar10Split::kTrain);
  EXPECT_THAT(msg, HasSubstr(path("data_batch_3.bin")));
  EXPECT_THAT(msg, HasSubstr("missing"));
  EXPECT_THAT(open_error(Cifar10Split::kTest), HasSubstr(path("test_batch.bin")));
}

TEST_F(Cifar10Fixture, EmptyFile) {
  write_file("test_batch.bin", {});
  const std::string msg = open_error(Cifar10Split::kTest);
  EXPECT_THAT(msg, HasSubstr(path("test_batch.bin")));
  EXPECT_THAT(msg, HasSubstr("empty (0 bytes at byte offset 0)"));
}

TEST_F(Cifar10Fixture, MetaFileMissingOrMalformed) {
  write_file("test_batch.bin", {1});
  fs::remove(dir_ / "batches.meta.txt");
  std::string msg = open_error(Cifar10Split::kTest);
  EXPECT_THAT(msg, HasSubstr(path("batches.meta.txt")));
  EXPECT_THAT(msg, HasSubstr("missing"));

  write_meta("a\nb\nc\n");
  msg = open_error(Cifar10Split::kTest);
  EXPECT_THAT(msg, HasSubstr(path("batches.meta.txt")));
  EXPECT_THAT(msg, HasSubstr("has 3 class names; expected 10"));

  write_meta("a\nb\n\nd\ne\nf\ng\nh\ni\nj\n");
  EXPECT_THAT(open_error(Cifar10Split::kTest), HasSubstr("line 3 is empty"));

  // CRLF line ends and trailing blank lines are accepted.
  write_meta("a\r\nb\r\nc\r\nd\r\ne\r\nf\r\ng\r\nh\r\ni\r\nj\r\n\r\n\n");
  Cifar10Dataset ds = open_cifar10(dir_.string(), Cifar10Split::kTest);
  EXPECT_EQ(ds.class_names().front(), "a");
  EXPECT_EQ(ds.class_names().back(), "j");
}

TEST(Cifar10SplitNames, Parse) {
  EXPECT_EQ(parse_cifar10_split("train"), Cifar10Split::kTrain);
  EXPECT_EQ(parse_cifar10_split("test"), Cifar10Split::kTest);
  try {
    parse_cifar10_split("val");
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kSpec);
    EXPECT_THAT(e.what(), HasSubstr("'val'"));
  }
  EXPECT_EQ(cifar10_split_files(Cifar10Split::kTrain).size(), 5u);
}

}  // namespace
}  // namespace qpipe
