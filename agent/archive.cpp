#include "agent/archive.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>

#include <algorithm>
#include <memory>
#include <random>
#include <string>

#include "common/file_io.hpp"
#include "common/text.hpp"

namespace proctor {

namespace fs = std::filesystem;

namespace {

// libarchive is loaded on first use, not linked: with its compression libraries it
// costs an agent about 3 MiB of resident memory from the start, and most agents never
// unpack an archive (issue #2 keeps an idle agent under 10 MB). The declarations still
// come from <archive.h>, so every call is type-checked.
#define PROCTOR_LIBARCHIVE_FUNCTIONS \
  X(entry_filetype, archive_entry_filetype) \
  X(entry_hardlink, archive_entry_hardlink) \
  X(entry_pathname, archive_entry_pathname) \
  X(entry_perm, archive_entry_perm) \
  X(entry_set_hardlink, archive_entry_set_hardlink) \
  X(entry_set_pathname, archive_entry_set_pathname) \
  X(entry_set_perm, archive_entry_set_perm) \
  X(entry_size, archive_entry_size) \
  X(entry_size_is_set, archive_entry_size_is_set) \
  X(entry_symlink, archive_entry_symlink) \
  X(error_string, archive_error_string) \
  X(read_data_block, archive_read_data_block) \
  X(read_free, archive_read_free) \
  X(read_new, archive_read_new) \
  X(read_next_header, archive_read_next_header) \
  X(read_open_memory, archive_read_open_memory) \
  X(read_support_filter_gzip, archive_read_support_filter_gzip) \
  X(read_support_filter_bzip2, archive_read_support_filter_bzip2) \
  X(read_support_filter_xz, archive_read_support_filter_xz) \
  X(read_support_filter_zstd, archive_read_support_filter_zstd) \
  X(read_support_format_gnutar, archive_read_support_format_gnutar) \
  X(read_support_format_tar, archive_read_support_format_tar) \
  X(read_support_format_zip, archive_read_support_format_zip) \
  X(write_close, archive_write_close) \
  X(write_data_block, archive_write_data_block) \
  X(write_disk_new, archive_write_disk_new) \
  X(write_disk_set_options, archive_write_disk_set_options) \
  X(write_finish_entry, archive_write_finish_entry) \
  X(write_free, archive_write_free) \
  X(write_header, archive_write_header)

struct LibArchive {
#define X(member, function) decltype(&::function) member = nullptr;
  PROCTOR_LIBARCHIVE_FUNCTIONS
#undef X
  std::string error;  // why it could not be loaded; empty when loaded
};

const LibArchive& load_libarchive() {
  static const LibArchive loaded = [] {
    LibArchive lib;
    void* handle = ::dlopen("libarchive.so.13", RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      const char* why = ::dlerror();
      lib.error = "libarchive cannot be loaded (" + std::string(why != nullptr ? why : "unknown error") +
                  "): install libarchive13";
      return lib;
    }
#define X(member, function)                                                                        \
  lib.member = reinterpret_cast<decltype(&::function)>(::dlsym(handle, #function)); /* NOLINT */  \
  if (lib.member == nullptr && lib.error.empty()) lib.error = "libarchive lacks " #function;
    PROCTOR_LIBARCHIVE_FUNCTIONS
#undef X
    return lib;
  }();
  return loaded;
}

// The loaded library; callers check load_libarchive().error first.
const LibArchive& lib() { return load_libarchive(); }

struct ReadCloser {
  void operator()(archive* a) const { lib().read_free(a); }
};
struct WriteCloser {
  void operator()(archive* a) const { lib().write_free(a); }
};

// An entry's name for messages: valid UTF-8, not too long.
std::string shown(std::string_view name) { return utf8_truncate(make_valid_utf8(name), 200); }

// The entry's path relative to the target, or an error when it would land outside it.
Result<fs::path> inside_path(std::string_view name, std::string_view what) {
  if (name.empty()) return make_error("the archive has an entry without a name");
  const fs::path path(name);
  if (path.is_absolute() || name.front() == '/') {
    return make_error("the archive " + std::string(what) + " '" + shown(name) +
                      "' is an absolute path: it would land outside the target folder");
  }
  if (std::any_of(path.begin(), path.end(), [](const fs::path& part) { return part == ".."; })) {
    return make_error("the archive " + std::string(what) + " '" + shown(name) +
                      "' climbs out with '..': it would land outside the target folder");
  }
  return path.lexically_normal();
}

Error link_outside(std::string_view name, std::string_view link) {
  return make_error("the archive entry '" + shown(name) + "' is a link to '" + shown(link) +
                    "', outside the target folder");
}

// Checks a symbolic link entry before it is written: its target, read from the link's
// folder, stays inside (check_links checks again on disk, once all is written).
Result<void> check_link_target(const fs::path& entry, std::string_view link, std::string_view name) {
  if (link.empty()) return make_error("the archive entry '" + shown(name) + "' is a link to nothing");
  const fs::path target(link);
  const fs::path resolved = (entry.parent_path() / target).lexically_normal();
  if (target.is_absolute() || (!resolved.empty() && *resolved.begin() == "..")) return link_outside(name, link);
  return {};
}

// Every symbolic link under `root`, followed on disk as the system would, must end inside
// it. Checked once everything is written: a link's text alone can mislead (a trailing
// slash, `..` after another link, a hard link to a link).
Result<void> check_links(const fs::path& root) {
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (!it->is_symlink(ec)) continue;
    const fs::path link = fs::read_symlink(it->path(), ec);
    const fs::path resolved = fs::weakly_canonical(it->path().parent_path() / link, ec);
    if (ec || !is_within(root, resolved)) {
      return link_outside(it->path().lexically_relative(root).string(), link.string());
    }
  }
  if (ec) return make_error("cannot check the unpacked archive: " + ec.message());
  return {};
}

// A folder name beside `target` for unpacking into before the rename.
fs::path staging_for(const fs::path& target) {
  std::random_device random;
  return target.parent_path() / (target.filename().string() + ".unpacking-" + std::to_string(random()));
}

class Unpacker {
 public:
  Unpacker(const fs::path& root, const ArchiveLimits& limits) : root_(root), limits_(limits) {}

  Result<UnpackStats> run(std::string_view data) {
    const std::unique_ptr<archive, ReadCloser> reader(lib().read_new());
    const std::unique_ptr<archive, WriteCloser> writer(lib().write_disk_new());
    if (!reader || !writer) return make_error("libarchive could not start");
    // Only what the header promises: zip and tar, plain or compressed in-process (the
    // "all" sets would hand some filters to external programs).
    lib().read_support_format_zip(reader.get());
    lib().read_support_format_tar(reader.get());
    lib().read_support_format_gnutar(reader.get());
    lib().read_support_filter_gzip(reader.get());
    lib().read_support_filter_bzip2(reader.get());
    lib().read_support_filter_xz(reader.get());
    lib().read_support_filter_zstd(reader.get());
    // Defence in depth: libarchive refuses `..` and writing through links by itself too.
    lib().write_disk_set_options(writer.get(), ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
                                                     ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                                                     ARCHIVE_EXTRACT_SECURE_SYMLINKS);
    if (lib().read_open_memory(reader.get(), data.data(), data.size()) != ARCHIVE_OK) {
      return make_error("the download is not an archive this agent can unpack (zip or tar, plain or compressed): " +
                        error_of(reader.get()));
    }
    archive_entry* entry = nullptr;
    int status = ARCHIVE_OK;
    while ((status = lib().read_next_header(reader.get(), &entry)) == ARCHIVE_OK ||
           status == ARCHIVE_WARN) {
      if (auto written = write_entry(reader.get(), writer.get(), entry); !written) return written.error();
    }
    if (status != ARCHIVE_EOF) return make_error("the archive is corrupt: " + error_of(reader.get()));
    if (lib().write_close(writer.get()) != ARCHIVE_OK) {
      return make_error("the archive could not be written out: " + error_of(writer.get()));
    }
    return stats_;
  }

 private:
  static std::string error_of(archive* a) {
    const char* message = lib().error_string(a);
    return message != nullptr ? make_valid_utf8(message) : "unknown error";
  }

  Result<void> write_entry(archive* reader, archive* writer, archive_entry* entry) {
    const char* raw_name = lib().entry_pathname(entry);
    const std::string name = raw_name != nullptr ? raw_name : "";
    auto relative = inside_path(name, "entry");
    if (!relative) return relative.error();
    if (++stats_.entries > limits_.max_entries) {
      return make_error("the archive has more than " + std::to_string(limits_.max_entries) + " entries");
    }
    if (*relative == ".") return {};  // the archive's own root folder
    const auto type = lib().entry_filetype(entry);
    const char* hardlink = lib().entry_hardlink(entry);
    if (hardlink != nullptr) {
      auto link = inside_path(hardlink, "hard link target");
      if (!link) return link.error();
      lib().entry_set_hardlink(entry, (root_ / *link).c_str());
    } else if (type == AE_IFLNK) {
      const char* link = lib().entry_symlink(entry);
      if (auto checked = check_link_target(*relative, link != nullptr ? link : "", name); !checked) {
        return checked.error();
      }
    } else if (type != AE_IFREG && type != AE_IFDIR) {
      return make_error("the archive entry '" + shown(name) +
                        "' is a device, pipe or socket; only files, folders and links are unpacked");
    }
    lib().entry_set_pathname(entry, (root_ / *relative).c_str());
    // No set-user/group-ID bits, nothing writable by others, always usable by the agent.
    const auto perm = lib().entry_perm(entry) & 0755;
    lib().entry_set_perm(entry, type == AE_IFDIR ? (perm | 0700) : (perm | 0600));
    // The size an entry declares counts before anything is written: libarchive extends a
    // file to it at the end (sparse entries), whatever data follows.
    if (type == AE_IFREG && hardlink == nullptr && lib().entry_size_is_set(entry) != 0) {
      if (auto counted = count_bytes(static_cast<std::uintmax_t>(std::max<la_int64_t>(0, lib().entry_size(entry))),
                                     name);
          !counted) {
        return counted;
      }
      declared_ = true;
    }
    if (lib().write_header(writer, entry) < ARCHIVE_WARN) {
      return make_error("the archive entry '" + shown(name) + "' could not be written: " + error_of(writer));
    }
    if (type == AE_IFREG && hardlink == nullptr) {
      if (auto copied = copy_data(reader, writer, name); !copied) return copied;
    }
    declared_ = false;
    if (lib().write_finish_entry(writer) < ARCHIVE_WARN) {
      return make_error("the archive entry '" + shown(name) + "' could not be written: " + error_of(writer));
    }
    return {};
  }

  Result<void> copy_data(archive* reader, archive* writer, const std::string& name) {
    const void* block = nullptr;
    std::size_t size = 0;
    la_int64_t offset = 0;
    while (true) {
      const int status = lib().read_data_block(reader, &block, &size, &offset);
      if (status == ARCHIVE_EOF) return {};
      if (status < ARCHIVE_WARN) {
        return make_error("the archive entry '" + shown(name) + "' is corrupt: " + error_of(reader));
      }
      if (!declared_) {
        if (auto counted = count_bytes(size, name); !counted) return counted;
      }
      if (lib().write_data_block(writer, block, size, offset) < ARCHIVE_WARN) {
        return make_error("the archive entry '" + shown(name) + "' could not be written: " + error_of(writer));
      }
    }
  }

  // Adds `bytes` to the unpacked total, failing past the limit.
  Result<void> count_bytes(std::uintmax_t bytes, const std::string& name) {
    stats_.bytes += bytes;
    if (stats_.bytes > limits_.max_total_bytes) {
      return make_error("the archive unpacks to more than " + std::to_string(limits_.max_total_bytes >> 20) +
                        " MiB (at entry '" + shown(name) + "')");
    }
    return {};
  }

  fs::path root_;
  ArchiveLimits limits_;
  UnpackStats stats_;
  bool declared_ = false;  // the current entry's size was counted from its header
};

}  // namespace

Result<UnpackStats> unpack_archive(std::string_view data, const fs::path& target, const ArchiveLimits& limits) {
  if (const std::string& missing = load_libarchive().error; !missing.empty()) return make_error(missing);
  std::error_code ec;
  if (fs::exists(target, ec)) return make_error("cannot unpack into " + target.string() + ": it already exists");
  fs::create_directories(target.parent_path(), ec);
  const fs::path staging = staging_for(target);
  fs::create_directories(staging, ec);
  if (ec) return make_error("cannot create " + staging.string() + ": " + ec.message());
  // A real path: libarchive refuses to write through any symbolic link on the way.
  const fs::path root = fs::canonical(staging, ec);
  auto stats = ec ? Result<UnpackStats>(make_error("cannot resolve " + staging.string() + ": " + ec.message()))
                  : Unpacker(root, limits).run(data);
  if (stats) {
    if (auto links = check_links(root); !links) stats = links.error();
  }
  if (stats) {
    fs::rename(staging, target, ec);
    if (ec) stats = make_error("cannot move the unpacked archive to " + target.string() + ": " + ec.message());
  }
  if (!stats) fs::remove_all(staging, ec);
  return stats;
}

}  // namespace proctor
