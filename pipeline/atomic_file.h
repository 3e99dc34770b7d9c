#pragma once
// Crash-safe file writes. A reader (or the next run after a SIGKILL) sees
// either the old complete file or the new complete file, never a prefix:
// bytes go to a temporary file in the same folder, are fsync'ed, and the
// temporary is renamed over the target (rename is atomic within a file
// system); the folder is fsync'ed so the rename itself survives a crash.
// Everything qpipe writes for others to read (ONNX models, reports, cache
// records) goes through here.

#include <filesystem>
#include <string>
#include <string_view>

namespace qpipe {

// Writes `bytes` to `path` atomically, creating parent folders. Throws
// PtqError(kRuntime) naming the file on any failure; the temporary is removed.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Whole file as bytes; throws PtqError(kInput) naming the file.
std::string read_file(const std::filesystem::path& path);

// fsync of a folder (so renames/creations inside it are durable). Best effort.
void fsync_directory(const std::filesystem::path& dir);

// Atomically points the symlink `link` at `target` (a relative target is
// relative to the link's folder): a new symlink is created beside it and
// renamed over it. Returns false (and changes nothing) when the file system
// refuses symlinks, so callers can fall back to a plain file.
bool replace_symlink_atomic(const std::filesystem::path& link, const std::filesystem::path& target);

// A name unique to this process and call: "<pid>.<counter><random>", for
// temporary files and staging folders.
std::string unique_suffix();

}  // namespace qpipe
