// Archive unpacking: real archives made here with libarchive's writer, the good ones and
// the hostile ones (zip-slip, absolute paths, links out, devices, bombs, garbage).

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "agent/archive.hpp"
#include "tests/unit/temp_dir.hpp"

using namespace proctor;
namespace fs = std::filesystem;

namespace {

// One entry of an archive to make.
struct Entry {
  std::string name;
  std::string content;        // files only
  unsigned type = AE_IFREG;   // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, ...
  std::string link;           // symlink target (AE_IFLNK) or hard link target (when `hard`)
  bool hard = false;
  unsigned perm = 0644;
};

Entry file(std::string name, std::string content, unsigned perm = 0644) {
  Entry e;
  e.name = std::move(name);
  e.content = std::move(content);
  e.perm = perm;
  return e;
}
Entry folder(std::string name) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFDIR;
  return e;
}
Entry soft_link(std::string name, std::string target) {
  Entry e;
  e.name = std::move(name);
  e.type = AE_IFLNK;
  e.link = std::move(target);
  return e;
}
Entry hardlink(std::string name, std::string target) {
  Entry e;
  e.name = std::move(name);
  e.link = std::move(target);
  e.hard = true;
  return e;
}
Entry special(std::string name, unsigned type) {
  Entry e;
  e.name = std::move(name);
  e.type = type;
  return e;
}

enum class Format { zip, tar_gz, tar_xz };

// An archive in memory holding `entries`, in `format`.
std::string make_archive(const std::vector<Entry>& entries, Format format = Format::tar_gz) {
  archive* a = archive_write_new();
  if (format == Format::zip) {
    archive_write_set_format_zip(a);
  } else {
    archive_write_set_format_pax_restricted(a);
    if (format == Format::tar_gz) archive_write_add_filter_gzip(a);
    else archive_write_add_filter_xz(a);
  }
  std::vector<char> buffer(64 * 1024 * 1024);
  size_t used = 0;
  REQUIRE(archive_write_open_memory(a, buffer.data(), buffer.size(), &used) == ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.name.c_str());
    archive_entry_set_filetype(entry, e.hard ? AE_IFREG : e.type);
    archive_entry_set_perm(entry, e.type == AE_IFDIR ? 0755 : e.perm);
    if (e.hard) archive_entry_set_hardlink(entry, e.link.c_str());
    if (e.type == AE_IFLNK) archive_entry_set_symlink(entry, e.link.c_str());
    const bool has_data = e.type == AE_IFREG && !e.hard;
    archive_entry_set_size(entry, has_data ? static_cast<la_int64_t>(e.content.size()) : 0);
    REQUIRE(archive_write_header(a, entry) == ARCHIVE_OK);
    if (has_data && !e.content.empty()) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(entry);
  }
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
  return std::string(buffer.data(), used);
}

std::string read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Every path under `dir`, relative.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); it != fs::recursive_directory_iterator(); ++it) {
    out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Unpacks a hostile archive into dir/out and checks it was refused naming `entry`, with
// nothing left behind: no target, no staging folder, nothing beside the target.
void check_refused(const std::string& data, const std::string& expected_words) {
  test::TempDir dir;
  fs::create_directories(dir / "work");
  auto unpacked = unpack_archive(data, dir / "work" / "out");
  REQUIRE_FALSE(unpacked.ok());
  INFO(unpacked.error().message);
  CHECK(unpacked.error().message.find(expected_words) != std::string::npos);
  CHECK(listing(dir.path()) == std::vector<std::string>{"work"});
}

}  // namespace

TEST_SUITE("archive") {
  TEST_CASE("zip, tar.gz and tar.xz unpack whole: folders, files, modes, links inside") {
    const std::vector<Entry> entries = {
        folder("service/"),
        file("service/service.yaml", "cmd: ./run.sh\n"),
        file("service/run.sh", "#!/bin/sh\necho hi\n", 0755),
        file("service/lib/helper.py", "print('x')\n"),
        soft_link("service/current", "lib"),
        hardlink("service/same.py", "service/lib/helper.py"),
        file("./top.txt", "top"),
    };
    for (const auto format : {Format::zip, Format::tar_gz, Format::tar_xz}) {
      test::TempDir dir;
      auto stats = unpack_archive(make_archive(entries, format), dir / "out");
      REQUIRE_MESSAGE(stats.ok(), stats.error().message);
      CHECK(read(dir / "out/service/service.yaml") == "cmd: ./run.sh\n");
      CHECK(read(dir / "out/top.txt") == "top");
      CHECK((fs::status(dir / "out/service/run.sh").permissions() & fs::perms::owner_exec) != fs::perms::none);
      CHECK(fs::is_symlink(dir / "out/service/current"));
      CHECK(read(dir / "out/service/current/helper.py") == "print('x')\n");
      if (format != Format::zip) CHECK(read(dir / "out/service/same.py") == "print('x')\n");  // zip has no hard links
      CHECK(stats->bytes >= 30);
      CHECK(listing(dir.path()).front() == "out");  // no staging folder left
    }
  }

  TEST_CASE("zip-slip: an entry climbing out with .. is refused, naming it, nothing written outside") {
    check_refused(make_archive({file("ok.txt", "fine"), file("../evil.sh", "rm -rf ~")}, Format::zip),
                  "'../evil.sh' climbs out with '..'");
    check_refused(make_archive({file("a/../../evil.sh", "x")}), "'a/../../evil.sh' climbs out");
  }

  TEST_CASE("absolute paths, links pointing out, devices are refused with the entry's name") {
    check_refused(make_archive({file("/tmp/proctor-evil", "x")}), "'/tmp/proctor-evil' is an absolute path");
    check_refused(make_archive({soft_link("etc", "/etc")}), "'etc' is a link to '/etc', outside the target");
    check_refused(make_archive({soft_link("a/up", "../../..")}), "'a/up' is a link to '../../..'");
    // The classic escape: a link out, then a file written through it.
    check_refused(make_archive({soft_link("escape", ".."), file("escape/pwned", "x")}), "'escape' is a link to '..'");
    check_refused(make_archive({hardlink("hard", "/etc/passwd")}), "'/etc/passwd' is an absolute path");
    check_refused(make_archive({special("dev", AE_IFCHR)}), "'dev' is a device, pipe or socket");
  }

  TEST_CASE("links that only lead out once followed on disk are refused too") {
    // A trailing slash on the link's own name hides a level.
    check_refused(make_archive({soft_link("x/", "..")}), "is a link to '..', outside the target folder");
    // `..` after a link inside: a/b/up is the root, so esc is the root's parent.
    check_refused(make_archive({folder("a/"), folder("a/b/"), soft_link("a/b/up", "../.."), soft_link("esc", "a/b/up/..")}),
                  "'esc' is a link to 'a/b/up/..', outside the target folder");
    // A hard link to a link that is fine where it stands but not where the hard link is.
    check_refused(make_archive({folder("a/"), folder("a/b/"), soft_link("a/b/up", "../.."), hardlink("h", "a/b/up")}),
                  "'h' is a link to '../..', outside the target folder");
  }

  TEST_CASE("modes: nothing writable by others, no set-user-ID") {
    test::TempDir dir;
    REQUIRE(unpack_archive(make_archive({file("open.sh", "x", 04777)}), dir / "out").ok());
    const auto perms = fs::status(dir / "out/open.sh").permissions();
    CHECK((perms & fs::perms::others_write) == fs::perms::none);
    CHECK((perms & fs::perms::group_write) == fs::perms::none);
    CHECK((perms & fs::perms::set_uid) == fs::perms::none);
    CHECK((perms & fs::perms::owner_exec) != fs::perms::none);
  }

  TEST_CASE("an archive that unpacks past the size limit is refused and removed") {
    const std::string bomb = make_archive({file("zeros.bin", std::string(4 * 1024 * 1024, '\0'))});
    CHECK(bomb.size() < 64 * 1024);  // a small download
    test::TempDir dir;
    ArchiveLimits limits;
    limits.max_total_bytes = 1024 * 1024;
    auto unpacked = unpack_archive(bomb, dir / "out", limits);
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find("unpacks to more than 1 MiB (at entry 'zeros.bin')") != std::string::npos);
    CHECK(listing(dir.path()).empty());
    limits.max_total_bytes = 1ULL << 30;
    limits.max_entries = 2;
    unpacked = unpack_archive(make_archive({file("a", "1"), file("b", "2"), file("c", "3")}), dir / "out", limits);
    REQUIRE_FALSE(unpacked.ok());
    CHECK(unpacked.error().message.find("more than 2 entries") != std::string::npos);
  }

  TEST_CASE("garbage, truncated archives and an existing target are errors") {
    test::TempDir dir;
    auto garbage = unpack_archive("<html>not found</html>", dir / "a");
    REQUIRE_FALSE(garbage.ok());
    CHECK(garbage.error().message.find("not an archive this agent can unpack") != std::string::npos);
    const std::string good = make_archive({file("file.txt", std::string(200000, 'x') + "end")});
    auto truncated = unpack_archive(std::string_view(good).substr(0, good.size() / 2), dir / "b");
    REQUIRE_FALSE(truncated.ok());
    CHECK(listing(dir.path()).empty());
    fs::create_directories(dir / "c");
    auto existing = unpack_archive(good, dir / "c");
    REQUIRE_FALSE(existing.ok());
    CHECK(existing.error().message.find("already exists") != std::string::npos);
  }
}
