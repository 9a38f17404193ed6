// The agent's metrics: the histogram, the Prometheus text, and the endpoint's answers
// (a pure function of the request; the socket side is in tests/integration).

#include <doctest/doctest.h>

#include <sstream>
#include <string>

#include "agent/metrics_server.hpp"
#include "common/metrics.hpp"

using namespace proctor;

namespace {

// The lines of `text` that start with `prefix`.
std::vector<std::string> lines_starting(const std::string& text, const std::string& prefix) {
  std::vector<std::string> found;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(prefix, 0) == 0) found.push_back(line);
  }
  return found;
}

}  // namespace

TEST_SUITE("metrics") {
  TEST_CASE("a histogram counts a value at a bound in that bound's bucket, and sums cumulatively") {
    Histogram histogram({1, 5, 10});
    for (const double value : {0.5, 1.0, 1.5, 5.0, 11.0, 300.0}) histogram.observe(value);
    CHECK(histogram.cumulative() == std::vector<std::uint64_t>{2, 4, 4, 6});
    CHECK(histogram.count() == 6);
    CHECK(histogram.sum() == doctest::Approx(319.0));
    CHECK_THROWS_AS(Histogram({5, 1}), std::invalid_argument);
  }

  TEST_CASE("the Prometheus text has HELP and TYPE before each family's samples and every series") {
    AgentCounters counters;
    counters.tasks_taken = 7;
    counters.tasks_finished["passed"] = 4;
    counters.tasks_finished["error"] = 3;
    counters.post_retries = 2;
    counters.task_duration.observe(0.2);
    counters.task_duration.observe(90);
    MetricsSnapshot snapshot;
    snapshot.version = "1.2\"x";
    snapshot.slots = 3;
    snapshot.slots_by_state = {{"running", 2}, {"idle", 1}};
    snapshot.spool_pending = 5;
    snapshot.spool_full = true;
    snapshot.event_stream = EventStreamFigures{16, 1};
    snapshot.counters = &counters;
    const std::string text = render_prometheus(snapshot);

    CHECK(text.find("proctor_build_info{version=\"1.2\\\"x\"} 1\n") != std::string::npos);
    CHECK(text.find("proctor_tasks_taken_total 7\n") != std::string::npos);
    CHECK(text.find("proctor_tasks_finished_total{result=\"passed\"} 4\n") != std::string::npos);
    CHECK(text.find("proctor_tasks_finished_total{result=\"failed\"} 0\n") != std::string::npos);
    CHECK(text.find("proctor_tasks_finished_total{result=\"error\"} 3\n") != std::string::npos);
    CHECK(text.find("proctor_result_post_retries_total 2\n") != std::string::npos);
    CHECK(text.find("proctor_slots_in_state{state=\"running\"} 2\n") != std::string::npos);
    CHECK(text.find("proctor_slots_in_state{state=\"polling\"} 0\n") != std::string::npos);
    CHECK(text.find("proctor_spool_pending_results 5\n") != std::string::npos);
    CHECK(text.find("proctor_spool_full 1\n") != std::string::npos);
    CHECK(text.find("proctor_event_subscribers 16\n") != std::string::npos);
    CHECK(text.find("proctor_event_subscribers_dropped_total 1\n") != std::string::npos);
    CHECK(text.find("proctor_task_duration_seconds_bucket{le=\"1\"} 1\n") != std::string::npos);
    CHECK(text.find("proctor_task_duration_seconds_bucket{le=\"60\"} 1\n") != std::string::npos);
    CHECK(text.find("proctor_task_duration_seconds_bucket{le=\"120\"} 2\n") != std::string::npos);
    CHECK(text.find("proctor_task_duration_seconds_bucket{le=\"+Inf\"} 2\n") != std::string::npos);
    CHECK(text.find("proctor_task_duration_seconds_sum 90.2\n") != std::string::npos);
    CHECK(text.find("proctor_task_duration_seconds_count 2\n") != std::string::npos);

    // Each sample's family was declared (HELP, then TYPE on the next line) before it, once.
    const auto types = lines_starting(text, "# TYPE ");
    const auto helps = lines_starting(text, "# HELP ");
    CHECK(types.size() == helps.size());
    std::istringstream in(text);
    std::vector<std::string> declared;
    std::string previous;
    for (std::string line; std::getline(in, line); previous = line) {
      if (line.rfind("# HELP ", 0) == 0) {
        CHECK(previous.rfind("# HELP ", 0) != 0);  // never two HELPs in a row
      } else if (line.rfind("# TYPE ", 0) == 0) {
        const auto family = line.substr(7, line.find(' ', 7) - 7);
        CHECK(previous.rfind("# HELP " + family + " ", 0) == 0);
        CHECK(std::find(declared.begin(), declared.end(), family) == declared.end());
        declared.push_back(family);
      } else if (line.rfind('#', 0) != 0) {
        const auto sample = line.substr(0, line.find_first_of("{ "));
        CAPTURE(sample);
        const bool in_family = sample == declared.back() || sample == declared.back() + "_bucket" ||
                               sample == declared.back() + "_sum" || sample == declared.back() + "_count";
        CHECK(in_family);
      }
    }
    CHECK(text.back() == '\n');
  }

  TEST_CASE("the event stream's families are left out when the stream is off") {
    AgentCounters counters;
    MetricsSnapshot snapshot;
    snapshot.counters = &counters;
    CHECK(render_prometheus(snapshot).find("proctor_event_subscribers") == std::string::npos);
    snapshot.event_stream = EventStreamFigures{};
    const std::string text = render_prometheus(snapshot);
    CHECK(text.find("proctor_event_subscribers 0\n") != std::string::npos);
    CHECK(text.find("proctor_event_subscribers_dropped_total 0\n") != std::string::npos);
  }

  TEST_CASE("a finished task's result label") {
    CHECK(std::string(task_result_label(true, true)) == "error");
    CHECK(std::string(task_result_label(false, true)) == "passed");
    CHECK(std::string(task_result_label(false, false)) == "failed");
  }

  TEST_CASE("the endpoint answers /metrics and /healthz, refuses other methods and paths") {
    bool healthy = true;
    EndpointContent content{[] { return std::string("m 1\n"); }, [&healthy] { return healthy; },
                            [] { return std::string("{\"status\":\"ok\"}"); }};
    const auto metrics = endpoint_reply("GET", "/metrics?x=1", content);
    CHECK(metrics.status == 200);
    CHECK(metrics.content_type == "text/plain; version=0.0.4; charset=utf-8");
    CHECK(metrics.body == "m 1\n");
    CHECK(endpoint_reply("HEAD", "/metrics", content).status == 200);
    CHECK(endpoint_reply("GET", "/healthz", content).status == 200);
    healthy = false;
    const auto stopping = endpoint_reply("GET", "/healthz", content);
    CHECK(stopping.status == 503);
    CHECK(stopping.content_type == "application/json");
    const auto post = endpoint_reply("POST", "/metrics", content);
    CHECK(post.status == 405);
    CHECK(post.allow == "GET, HEAD");
    CHECK(endpoint_reply("GET", "/", content).status == 404);
    CHECK(endpoint_reply("GET", "/metrics/../healthz", content).status == 404);
  }
}
