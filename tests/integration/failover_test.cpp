// Failover by replay with real processes on loopback: two replicas of a tail (one key pair), an edge that
// may not run every block itself, and streams in flight when the serving tail is killed with SIGKILL. Every
// stream must finish on the other replica with the text an undisturbed run gives (the golden one), without
// a repeated or missing chunk. And the link going down under a stream (the tail alive behind it): an edge
// that may hold every block finishes the stream itself, with the same text.
//
// TANDEM_FAILOVER_STREAMS sets the number of concurrent greedy streams (default 20; the documented long run
// uses 100), beside which 4 seeded sampled streams run; TANDEM_FAILOVER_SEED sets the kill point.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "tandem/netem/link_proxy.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::EdgeProcess;
using testing::HttpCall;
using testing::HttpResult;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// The tail's open sessions, from its /metrics; -1 when it does not answer.
double OpenSessions(CloudTailProcess& tail) {
  if (!tail.process().Running()) return -1;
  return testing::MetricValue(tail.http_address(), "tandem_cloud_sessions", std::chrono::milliseconds(500));
}

struct StreamOutcome {
  int status = 0;
  std::string text;
  int content_events = 0;
  int done_events = 0;
  std::vector<std::string> errors;
  json tandem;
};

// Streams one completion; `on_event` sees each server-sent event as it arrives.
StreamOutcome Stream(const std::string& address, const json& request, const std::function<void()>& on_event) {
  StreamOutcome outcome;
  std::string received;
  const HttpResult result = testing::HttpStream(
      address, "POST", "/v1/completions", request.dump(), {},
      [&](std::string_view data) {
        const size_t scanned = received.size() < 1 ? 0 : received.size() - 1;
        received.append(data);
        for (size_t at = received.find("\n\n", scanned); at != std::string::npos;
             at = received.find("\n\n", at + 2)) {
          on_event();
        }
        return true;
      },
      std::chrono::minutes(10));  // a hundred streams on one slowed tail take minutes
  outcome.status = result.status;
  for (const std::string& event : testing::SseEvents(result.body)) {
    if (event == "[DONE]") {
      ++outcome.done_events;
      continue;
    }
    const json chunk = json::parse(event);
    if (chunk.contains("error")) {
      outcome.errors.push_back(event);
      continue;
    }
    if (outcome.done_events > 0) outcome.errors.push_back("an event after [DONE]: " + event);
    outcome.text += chunk["choices"][0]["text"].get<std::string>();
    ++outcome.content_events;
    if (chunk.contains("tandem")) outcome.tandem = chunk["tandem"];
  }
  return outcome;
}

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    setenv("OMP_WAIT_POLICY", "passive", 1);
  }
};

// `streams` greedy streams and a few sampled ones through an edge with `edge_flags` besides its own; the
// serving tail is killed while they run, and every stream must finish on the other with its reference text.
// The edge plans with --split auto, or runs the fixed cut `fixed_cut`, which every stream must keep.
void KillTheServingTailUnderStreams(int streams, const std::vector<std::string>& edge_flags,
                                    std::optional<int> fixed_cut = std::nullopt) {
  constexpr int kSampled = 4;
  const unsigned seed =
      static_cast<unsigned>(EnvInt("TANDEM_FAILOVER_SEED", static_cast<int>(std::random_device{}())));
  // Slowed tails stretch the streams over a few seconds, so that the kill lands inside them; more streams
  // take longer by themselves, and slowing them as much would hold the replays onto the one survivor in
  // its queue past --timeout-ms.
  const std::string slowdown = std::to_string(std::max(1, 80 / streams));
  const std::vector<std::string> tail_args = {"--max-sessions",     std::to_string(streams + kSampled + 8),
                                              "--threads",          "1",
                                              "--emulate-slowdown", slowdown};
  CloudTailProcess first(tail_args);
  ASSERT_TRUE(first.started()) << first.log();
  const auto second = CloudTailProcess::ReplicaOf(first, tail_args);
  ASSERT_TRUE(second->started()) << second->log();
  // Two blocks at most on the edge (stories260K has five): every stream must stay split, so a failing
  // tail can only be replaced by the other one. The link monitor finds a dead tail within about two
  // seconds; --timeout-ms only has to cover a live tail's queue, which every stream's replay joins at once
  // when its replica dies (seconds on shared cores, with other tests running).
  std::vector<std::string> flags = {"--cloud",           first.endpoint(),
                                    "--cloud",           second->endpoint(),
                                    "--split",           fixed_cut ? std::to_string(*fixed_cut) : "auto",
                                    "--max-edge-blocks", "2",
                                    "--max-concurrent",  std::to_string(streams + kSampled),
                                    "--max-queue",       std::to_string(streams),
                                    "--replan-tokens",   "0",
                                    "--timeout-ms",      "60000"};
  flags.insert(flags.end(), edge_flags.begin(), edge_flags.end());
  EdgeProcess edge(first, flags);
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge, 2)) << edge.log();

  // The greedy streams, whose undisturbed text is the golden one, and a few sampled ones beside them
  // (seeded): their text before any fault is the reference that the failover must reproduce.
  const std::vector<json> goldens = testing::GoldenRecords();
  std::vector<json> requests;
  std::vector<std::string> expected;
  int total_tokens = 0;
  for (int i = 0; i < streams + kSampled; ++i) {
    const json& golden = goldens[static_cast<size_t>(i) % goldens.size()];
    const size_t max_tokens = golden["ids"].size() - golden["prompt_ids"].size();
    json request = {{"prompt", golden["prompt"]}, {"max_tokens", max_tokens}, {"temperature", 0}};
    if (i < streams) {
      expected.push_back(
          golden["text"].get<std::string>().substr(golden["prompt"].get<std::string>().size()));
    } else {
      request["temperature"] = 0.9;
      request["top_p"] = 0.95;
      request["seed"] = 1000 + i;
      const HttpResult reference = HttpCall(edge.address(), "POST", "/v1/completions", request.dump());
      ASSERT_EQ(reference.status, 200) << reference.body;
      expected.push_back(json::parse(reference.body)["choices"][0]["text"]);
    }
    request["stream"] = true;
    requests.push_back(std::move(request));
    total_tokens += static_cast<int>(max_tokens);
  }
  // Somewhere in the first two thirds of all the tokens the streams will produce.
  std::mt19937 random(seed);
  const int kill_at = std::uniform_int_distribution<int>(streams, total_tokens * 2 / 3)(random);
  std::atomic<int> events{0};
  std::mutex kill_mutex;
  std::string killed;
  const auto maybe_kill = [&] {
    if (events.fetch_add(1) + 1 != kill_at) return;
    const std::lock_guard lock(kill_mutex);
    // The replica serving more streams right now.
    CloudTailProcess& victim = OpenSessions(first) >= OpenSessions(*second) ? first : *second;
    victim.process().Signal(SIGKILL);
    killed = victim.endpoint();
  };

  std::vector<StreamOutcome> outcomes(requests.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < requests.size(); ++i) {
    clients.emplace_back([&, i] { outcomes[i] = Stream(edge.address(), requests[i], maybe_kill); });
  }
  for (auto& client : clients) client.join();
  ASSERT_FALSE(killed.empty()) << "the streams ended before event " << kill_at << " of " << events.load();
  std::printf("killed %s at event %d of %d (seed %u)\n", killed.c_str(), kill_at, events.load(), seed);

  int failed_over = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    SCOPED_TRACE("stream " + std::to_string(i) +
                 (i < static_cast<size_t>(streams) ? " (greedy)" : " (sampled)") + ", seed " +
                 std::to_string(seed));
    const StreamOutcome& outcome = outcomes[i];
    ASSERT_EQ(outcome.status, 200);
    EXPECT_TRUE(outcome.errors.empty()) << outcome.errors.front() << "\n" << edge.log();
    EXPECT_EQ(outcome.done_events, 1);
    EXPECT_EQ(outcome.text, expected[i]);
    ASSERT_TRUE(outcome.tandem.is_object());
    EXPECT_NE(outcome.tandem["cloud"], killed) << "a stream finished on the killed tail";
    if (fixed_cut) {
      EXPECT_EQ(outcome.tandem["cut"], *fixed_cut) << "a fixed split moved its cut";
    }
    for (const json& move : outcome.tandem["move_log"]) {
      if (move["reason"] == "fallback") ++failed_over;
    }
  }
  std::printf("%d of %zu streams failed over\n", failed_over, requests.size());
  CloudTailProcess& survivor = killed == first.endpoint() ? *second : first;
  EXPECT_TRUE(survivor.process().Running()) << survivor.log();
  EXPECT_GT(failed_over, 0) << "the kill hit no stream in flight";

  // A new request starts on the survivor, whichever tail comes first in --cloud.
  json after_request = requests.front();
  after_request["stream"] = false;
  const HttpResult after = HttpCall(edge.address(), "POST", "/v1/completions", after_request.dump());
  ASSERT_EQ(after.status, 200) << after.body << "\n" << edge.log();
  EXPECT_EQ(json::parse(after.body)["choices"][0]["text"], expected.front());
  EXPECT_EQ(json::parse(after.body)["tandem"]["cloud"], survivor.endpoint());
}

TEST_F(FailoverTest, KillingTheServingTailLosesNoStreamAndChangesNoToken) {
  KillTheServingTailUnderStreams(EnvInt("TANDEM_FAILOVER_STREAMS", 20), {});
}

// The same with speculative decoding: the replay on the survivor runs the verify steps again, the drafts
// and the sampler's draws as they were.
TEST_F(FailoverTest, KillingTheServingTailWhileDraftingLosesNoStreamAndChangesNoToken) {
  KillTheServingTailUnderStreams(8, {"--draft", "self-int8", "--draft-tokens", "3"});
}

// A fixed cut pins the cut and codec, not the tail: a replica takes the streams over at the same cut.
TEST_F(FailoverTest, AFixedSplitsStreamsMoveToTheOtherReplicaAtTheSameCut) {
  KillTheServingTailUnderStreams(8, {}, /*fixed_cut=*/2);
}

// With no other tail and all-local not allowed, a generation cannot go on: a stream ends with an error
// event after the tokens it already sent (which were right: a prefix of the golden text), and the next
// request is refused with 503 before it starts.
void WithNowhereToGo(const std::vector<std::string>& edge_flags) {
  CloudTailProcess tail({"--emulate-slowdown", "4"});
  ASSERT_TRUE(tail.started()) << tail.log();
  EdgeProcess edge(tail, edge_flags);
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge, 1)) << edge.log();
  const json golden = testing::GoldenRecords().front();
  const std::string golden_text =
      golden["text"].get<std::string>().substr(golden["prompt"].get<std::string>().size());
  const json request = {{"prompt", golden["prompt"]},
                        {"max_tokens", golden["ids"].size() - golden["prompt_ids"].size()},
                        {"temperature", 0},
                        {"stream", true}};
  int events = 0;
  const StreamOutcome outcome = Stream(edge.address(), request, [&] {
    if (++events == 10) tail.process().Signal(SIGKILL);
  });
  ASSERT_EQ(outcome.status, 200);
  ASSERT_EQ(outcome.errors.size(), 1u) << edge.log();
  EXPECT_EQ(json::parse(outcome.errors[0])["error"]["code"], "upstream_unavailable") << outcome.errors[0];
  EXPECT_EQ(outcome.done_events, 1);
  EXPECT_GE(outcome.content_events, 9);
  EXPECT_LT(outcome.text.size(), golden_text.size());
  EXPECT_EQ(golden_text.substr(0, outcome.text.size()), outcome.text) << "a streamed token was taken back";

  json plain = request;
  plain["stream"] = false;
  const HttpResult refused = HttpCall(edge.address(), "POST", "/v1/completions", plain.dump());
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"]["code"], "upstream_unavailable") << refused.body;
  EXPECT_EQ(refused.Header("retry-after"), "1");
}

TEST_F(FailoverTest, WithNowhereToGoAStreamEndsWithAnErrorEventAndNewRequestsGet503) {
  WithNowhereToGo({"--split", "auto", "--max-edge-blocks", "2"});
}

TEST_F(FailoverTest, WithNowhereToGoAFixedSplitsStreamEndsWithAnErrorEventToo) {
  WithNowhereToGo({"--split", "2"});
}

TEST_F(FailoverTest, WhenTheLinkGoesDownTheEdgeFinishesLocallyWithTheSameText) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  // The link between edge and tail, which the test cuts: its bytes are held, nothing is reset.
  auto link = netem::LinkProxy::Start(
      {.target = "127.0.0.1:" + tail.endpoint().substr(tail.endpoint().rfind(':') + 1)});
  ASSERT_TRUE(link.ok()) << link.status().ToString();
  // A slow device (emulated) makes splitting worth it; no re-planning, so that only the failure moves it.
  EdgeProcess edge(tail, {"--cloud", "tcp://" + (*link)->address(), "--split", "auto", "--emulate-slowdown",
                          "30", "--replan-tokens", "0"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge, 1)) << edge.log();

  const json golden = testing::GoldenRecords().front();
  const json request = {{"prompt", golden["prompt"]},
                        {"max_tokens", golden["ids"].size() - golden["prompt_ids"].size()},
                        {"temperature", 0},
                        {"stream", true}};
  int events = 0;
  const StreamOutcome outcome = Stream(edge.address(), request, [&] {
    if (++events == 10) (*link)->SetConditions({.up = false});
  });
  ASSERT_EQ(outcome.status, 200);
  ASSERT_TRUE(outcome.errors.empty()) << outcome.errors.front() << "\n" << edge.log();
  EXPECT_EQ(outcome.done_events, 1);
  EXPECT_EQ(outcome.text,
            golden["text"].get<std::string>().substr(golden["prompt"].get<std::string>().size()));
  ASSERT_TRUE(outcome.tandem.is_object());
  EXPECT_LT(outcome.tandem["plan"]["cut"].get<int>(), 5) << "the first plan should be a split";
  EXPECT_EQ(outcome.tandem["cut"], 5) << outcome.tandem.dump();
  ASSERT_FALSE(outcome.tandem["move_log"].empty());
  EXPECT_EQ(outcome.tandem["move_log"].back()["reason"], "fallback");

  // /v1/plan and the metrics show it.
  const json plan = json::parse(HttpCall(edge.address(), "GET", "/v1/plan").body);
  EXPECT_EQ(plan["estimates"]["link_up"], false) << plan.dump();
  const std::string metrics = HttpCall(edge.address(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("tandem_edge_failovers_total{to=\"local\"} 1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("tandem_edge_link_up 0"), std::string::npos);

  // The link comes back: the held bytes arrive, the probes are answered, and requests split again.
  (*link)->SetConditions({});
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        return json::parse(HttpCall(edge.address(), "GET", "/v1/plan").body)["estimates"]["link_up"] == true;
      },
      std::chrono::seconds(20)));
  json again = request;
  again["stream"] = false;
  const HttpResult after = HttpCall(edge.address(), "POST", "/v1/completions", again.dump());
  ASSERT_EQ(after.status, 200) << after.body;
  EXPECT_EQ(json::parse(after.body)["choices"][0]["text"], outcome.text);
}

}  // namespace
}  // namespace tandem
