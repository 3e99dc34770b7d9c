// SHA-256 against the FIPS 180-2 test vectors, directory hashing, atomic
// writes, did-you-mean and canonical JSON.

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <random>

#include "pipeline/atomic_file.h"
#include "pipeline/sha256.h"
#include "pipeline/text_util.h"
#include "tests/pipeline_test_util.h"

namespace qpipe {
namespace {

namespace fs = std::filesystem;

using pipetest::TempDir;

TEST(PipelineSha256, Fips180Vectors) {
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  Sha256 h;
  std::string a(1000, 'a');
  for (int i = 0; i < 1000; ++i) h.update(a);
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(PipelineSha256, IncrementalUpdatesMatchOneShotAtEverySplit) {
  std::mt19937 rng(7767517);
  std::string data(300, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  // Lengths around the 55/56/64-byte padding boundaries, split at every point.
  for (std::size_t len : {0u, 1u, 55u, 56u, 57u, 63u, 64u, 65u, 119u, 120u, 128u, 300u}) {
    std::string msg = data.substr(0, len);
    std::string one = sha256_hex(msg);
    for (std::size_t cut = 0; cut <= len; ++cut) {
      Sha256 h;
      h.update(msg.substr(0, cut));
      h.update(msg.substr(cut));
      ASSERT_EQ(h.hex_digest(), one) << "len " << len << " cut " << cut;
    }
  }
}

TEST(PipelineSha256, FilesAndFolders) {
  TempDir d;
  d.write("f/a.txt", "abc");
  d.write("f/sub/b.bin", "");
  EXPECT_EQ(sha256_file(d / "f/a.txt"), sha256_hex("abc"));
  std::string listing = std::string("a.txt") + '\0' + sha256_hex("abc") + "\n" + "sub/b.bin" + '\0' + sha256_hex("") + "\n";
  EXPECT_EQ(sha256_directory(d / "f"), sha256_hex(listing));
  EXPECT_EQ(sha256_path(d / "f"), sha256_directory(d / "f"));
  // Content change changes the folder hash; so does a rename.
  std::string before = sha256_directory(d / "f");
  d.write("f/a.txt", "abd");
  EXPECT_NE(sha256_directory(d / "f"), before);
  try {
    sha256_file(d / "missing.bin");
    FAIL() << "expected an error";
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_NE(std::string(e.what()).find("missing.bin"), std::string::npos);
  }
}

TEST(PipelineAtomicFile, WritesReplacesAndLeavesNoTemporaries) {
  TempDir d;
  fs::path p = d / "deep/folder/report.json";
  write_file_atomic(p, "first");
  EXPECT_EQ(read_file(p), "first");
  write_file_atomic(p, "second, longer");
  EXPECT_EQ(read_file(p), "second, longer");
  int entries = 0;
  for (auto& e : fs::directory_iterator(p.parent_path())) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1);
}

TEST(PipelineAtomicFile, ReaderNeverSeesAPartialFile) {
  // A child rewrites the file in a loop with two different complete contents;
  // the parent must only ever read one of them in full.
  TempDir d;
  fs::path p = d / "f.txt";
  std::string a(200000, 'a'), b(100000, 'b');
  write_file_atomic(p, a);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (int i = 0; i < 60; ++i) write_file_atomic(p, i % 2 ? a : b);
    _exit(0);
  }
  int bad = 0;
  for (int i = 0; i < 300; ++i) {
    std::string s = read_file(p);
    if (s != a && s != b) ++bad;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_EQ(bad, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST(PipelineAtomicFile, SymlinkReplacement) {
  TempDir d;
  fs::create_directories(d / "r1");
  fs::create_directories(d / "r2");
  ASSERT_TRUE(replace_symlink_atomic(d / "latest", "r1"));
  EXPECT_EQ(fs::read_symlink(d / "latest"), "r1");
  ASSERT_TRUE(replace_symlink_atomic(d / "latest", "r2"));
  EXPECT_EQ(fs::read_symlink(d / "latest"), "r2");
}

TEST(PipelineText, DidYouMean) {
  std::vector<std::string> c = {"stages", "gates", "report", "settings"};
  EXPECT_EQ(did_you_mean("stagse", c), " (did you mean 'stages'?)");
  EXPECT_EQ(did_you_mean("Gates", c), " (did you mean 'gates'?)");
  EXPECT_EQ(did_you_mean("completely_else", c), "");
  EXPECT_EQ(edit_distance("=>", ">="), 1u);  // a swap counts once
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(closest_match("=>", {">=", "<=", ">", "<"}), ">=");
}

TEST(PipelineText, CanonicalJsonSortsKeysAndRoundTripsFloats) {
  nlohmann::json j = {{"b", 0.1}, {"a", {{"z", 1}, {"y", 0.8719}}}, {"c", 1.0}, {"d", 1e-5}};
  EXPECT_EQ(canonical_json(j), R"({"a":{"y":0.8719,"z":1},"b":0.1,"c":1.0,"d":1e-05})");
  for (double v : {0.1, 1.0 / 3.0, 0.8675, 123456.789e-12}) {
    EXPECT_EQ(nlohmann::json::parse(canonical_json(v)).get<double>(), v);
  }
  try {
    parse_json("{\"a\": }", "x.json");
    FAIL();
  } catch (const PtqError& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInput);
    EXPECT_NE(std::string(e.what()).find("x.json"), std::string::npos);
  }
}

}  // namespace
}  // namespace qpipe
