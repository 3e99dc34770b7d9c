#pragma once
// SHA-256 (FIPS 180-4), written here so qpipe needs no crypto library. Used for
// content addresses: artifact hashes, cache keys, spec hashes. Not constant
// time and not meant for secrets.
//
// Directory hash (an artifact that is a folder): SHA-256 of the lines
// "<relative path>\0<file sha256 hex>\n" for every regular file, sorted by
// relative path ('/' separators). An empty folder hashes the empty string.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace qpipe {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // Finishes the hash; the object must not be updated afterwards.
  std::array<uint8_t, 32> digest();
  std::string hex_digest();  // 64 lowercase hex characters

 private:
  void block(const uint8_t* p);
  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_;
  std::size_t buf_len_ = 0;
  uint64_t total_bytes_ = 0;
  bool finished_ = false;
};

std::string sha256_hex(std::string_view bytes);
// Hash of a regular file's bytes. Throws PtqError(kInput) naming the file when
// it cannot be read.
std::string sha256_file(const std::filesystem::path& file);
// Hash of a folder as described above.
std::string sha256_directory(const std::filesystem::path& dir);
// File or folder, whichever `p` is.
std::string sha256_path(const std::filesystem::path& p);

}  // namespace qpipe
