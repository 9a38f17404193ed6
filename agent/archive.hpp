#pragma once
// Unpacking downloaded archives (zip, tar, tar.gz, tar.xz, tar.bz2) with libarchive, for
// the http and s3 repository kinds. Archives are untrusted input: an entry that would
// land outside the target folder (a `..` part, an absolute path, a link pointing out) or
// that is not a plain file, folder or link is refused with its name, and nothing is
// ever written outside the target.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string_view>

#include "common/result.hpp"

namespace proctor {

struct ArchiveLimits {
  std::uintmax_t max_total_bytes = 1024ULL * 1024 * 1024;  // unpacked size (zip bombs)
  std::size_t max_entries = 200000;
};

struct UnpackStats {
  std::size_t entries = 0;
  std::uintmax_t bytes = 0;  // file contents written
};

// Unpacks the archive held in `data` into `target`, which must not exist yet: it is
// made whole or not at all (unpacked beside it, then renamed). Fails naming the entry
// that breaks a rule or the limit that was passed.
Result<UnpackStats> unpack_archive(std::string_view data, const std::filesystem::path& target,
                                   const ArchiveLimits& limits = {});

}  // namespace proctor
