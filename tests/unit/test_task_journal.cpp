// TaskJournal on a real folder: what a slot holds survives a new instance (a restart),
// taken identities are remembered across instances and bounded, and the spool answers
// whether it already has a task's payload.

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "agent/spool.hpp"
#include "agent/task_journal.hpp"
#include "agent/workspace.hpp"
#include "tests/unit/require_ok.hpp"
#include "tests/unit/temp_dir.hpp"

namespace proctor {
namespace {

namespace fs = std::filesystem;

TaskIdentity flat(const std::string& id) {
  return {Dialect::flat, nlohmann::json(id)};
}
TaskIdentity nested(int attempt) {
  return {Dialect::nested, nlohmann::json(attempt)};
}

std::size_t line_count(const fs::path& file) {
  std::ifstream in(file);
  std::size_t lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  return lines;
}

}  // namespace

TEST_SUITE("task_journal") {
  TEST_CASE("identity keys tell the dialects and the JSON types apart") {
    CHECK(identity_key(flat("7")) == "id:\"7\"");
    CHECK(identity_key({Dialect::flat, nlohmann::json(7)}) == "id:7");
    CHECK(identity_key(nested(7)) == "attempt:7");
    const auto key_of = [](std::string_view payload) -> std::optional<std::string> {
      const auto identity = payload_identity(payload);
      return identity ? std::optional(identity_key(*identity)) : std::nullopt;
    };
    CHECK(key_of(R"({"id":"7","isPassed":true})") == identity_key(flat("7")));
    CHECK(key_of(R"({"attempt":7,"testResults":{}})") == identity_key(nested(7)));
    CHECK_FALSE(payload_identity("not json").has_value());
    CHECK_FALSE(payload_identity(R"({"isPassed":true})").has_value());
  }

  TEST_CASE("a held task is found by the next instance until it is released") {
    test::TempDir dir;
    {
      TaskJournal journal(dir / "journal");
      CHECK(journal.open().empty());
      REQUIRE_OK(journal.hold(2, flat("abc"), "cookie-2"));
      REQUIRE_OK(journal.hold(0, nested(21), "cookie-0"));
      journal.release(0);
    }
    TaskJournal restarted(dir / "journal");
    const auto held = restarted.open();
    REQUIRE(held.size() == 1);
    CHECK(held[0].slot == 2);
    CHECK(identity_key(held[0].identity) == identity_key(flat("abc")));
    CHECK(held[0].cookie == "cookie-2");
    CHECK_FALSE(held[0].taken_at.empty());
    restarted.release(2);
    CHECK(TaskJournal(dir / "journal").open().empty());
  }

  TEST_CASE("only one journal at a time may own a folder") {
    test::TempDir dir;
    TaskJournal first(dir / "journal");
    REQUIRE_OK(first.lock());
    {
      TaskJournal second(dir / "journal");
      const auto refused = second.lock(std::chrono::milliseconds(100));  // gives up while `first` holds it
      REQUIRE_FALSE(refused.ok());
      CHECK(refused.error().message.find("another runner is using the work folder") !=
            std::string::npos);
    }
  }

  TEST_CASE("an identity held at a crash is remembered as taken through later restarts") {
    test::TempDir dir;
    {
      TaskJournal journal(dir / "journal");
      journal.open();
      REQUIRE_OK(journal.hold(1, flat("crashed"), "c"));
      // Crash: never released. Simulate a taken.log that missed the append.
      std::filesystem::remove(dir / "journal" / "taken.log");
    }
    {
      TaskJournal restarted(dir / "journal");
      CHECK(restarted.open().size() == 1);
      restarted.release(1);  // reported
    }
    TaskJournal later(dir / "journal");
    CHECK(later.open().empty());
    CHECK(later.taken(identity_key(flat("crashed"))));
  }

  TEST_CASE("an unreadable held record is skipped, not fatal") {
    test::TempDir dir;
    fs::create_directories(dir / "journal" / "held");
    std::ofstream(dir / "journal" / "held" / "1.json") << "{not json";
    TaskJournal journal(dir / "journal");
    CHECK(journal.open().empty());
  }

  TEST_CASE("a claimed identity is taken at once and stays taken after a restart once held") {
    test::TempDir dir;
    {
      TaskJournal journal(dir / "journal");
      journal.open();
      CHECK(journal.claim(identity_key(flat("a"))));
      CHECK_FALSE(journal.claim(identity_key(flat("a"))));  // a second copy is refused
      CHECK(journal.taken(identity_key(flat("a"))));
      CHECK_FALSE(journal.taken(identity_key(flat("b"))));
      REQUIRE_OK(journal.hold(0, flat("a"), "c"));
      journal.release(0);
    }
    TaskJournal restarted(dir / "journal");
    restarted.open();
    CHECK(restarted.taken(identity_key(flat("a"))));
    CHECK_FALSE(restarted.claim(identity_key(flat("a"))));
  }

  TEST_CASE("remembers only the last N identities and keeps its log bounded") {
    test::TempDir dir;
    const std::size_t remember = 5;
    {
      TaskJournal journal(dir / "journal", remember);
      journal.open();
      for (int i = 0; i < 23; ++i) REQUIRE_OK(journal.hold(0, nested(i), "c"));
      CHECK_FALSE(journal.taken(identity_key(nested(0))));
      CHECK(journal.taken(identity_key(nested(22))));
      CHECK(journal.taken(identity_key(nested(18))));
      CHECK_FALSE(journal.taken(identity_key(nested(17))));
    }
    CHECK(line_count(dir / "journal" / "taken.log") <= 2 * remember);
    TaskJournal restarted(dir / "journal", remember);
    restarted.open();
    CHECK(restarted.taken(identity_key(nested(22))));
    CHECK_FALSE(restarted.taken(identity_key(nested(10))));
  }

  TEST_CASE("the process cookie is stable and differs per slot and per task") {
    const auto a = process_cookie("/w/slots/0", flat("x"));
    CHECK(a == process_cookie("/w/slots/0/", flat("x")));
    CHECK(a != process_cookie("/w/slots/1", flat("x")));
    CHECK(a != process_cookie("/w/slots/0", flat("y")));
    CHECK(a.size() == 32);
  }
}

TEST_SUITE("spool") {
  TEST_CASE("counts pending payloads and bytes, reports full at the cap and still takes a payload when full") {
    test::TempDir dir;
    Spool spool(dir / "spool", 100);
    CHECK_FALSE(spool.full());
    auto first = spool.add("t1", std::string(60, 'a'));
    REQUIRE_OK(first);
    CHECK(spool.pending_bytes() == 60);
    CHECK_FALSE(spool.full());
    auto second = spool.add("t2", std::string(60, 'b'));
    REQUIRE_OK(second);
    CHECK(spool.full());
    auto third = spool.add("t3", "{}");  // never dropped, even past the cap
    REQUIRE_OK(third);
    CHECK(spool.pending().size() == 3);
    CHECK(spool.pending_count() == 3);
    // A restart counts what is there.
    CHECK(Spool(dir / "spool", 100).pending_bytes() == 122);
    CHECK(Spool(dir / "spool", 100).pending_count() == 3);
    spool.remove(*first);
    spool.reject(*second, 400, "no");
    CHECK(spool.pending_bytes() == 2);
    CHECK(spool.pending_count() == 1);
    CHECK_FALSE(spool.full());
  }

  TEST_CASE("knows whether it holds a payload for a task, pending or rejected") {
    test::TempDir dir;
    Spool spool(dir / "spool");
    auto entry = spool.add("a", R"({"id":"a","isPassed":true})");
    REQUIRE_OK(entry);
    REQUIRE_OK(spool.add("n", R"({"attempt":3,"testResults":{}})"));
    const auto keys = spool.task_keys();
    CHECK(keys.contains(identity_key(flat("a"))));
    CHECK(keys.contains(identity_key(nested(3))));
    CHECK_FALSE(keys.contains(identity_key(nested(4))));
    spool.reject(*entry, 422, "bad");
    CHECK(spool.task_keys().contains(identity_key(flat("a"))));
  }
}

}  // namespace proctor
