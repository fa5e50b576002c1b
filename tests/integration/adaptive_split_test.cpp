// tandem-edge --split auto with a real tandem-cloud on loopback: the planner keeps within the edge's memory
// budget and the output stays golden; when the tail dies mid-generation the edge finishes the generation
// itself (replaying the steps so far, so the text is still the golden one), then plans all-local while
// the link is down, and /v1/plan shows it.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <cstdlib>
#include <thread>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::EdgeProcess;
using testing::HttpCall;
using testing::HttpResult;
using testing::WaitUntil;

constexpr int kLayers = 5;  // stories260K

json Plan(const EdgeProcess& edge) {
  const HttpResult result = HttpCall(edge.address(), "GET", "/v1/plan");
  return result.status == 200 ? json::parse(result.body) : json();
}

json GoldenRequest(const json& golden) {
  return {{"prompt", golden["prompt"]},
          {"max_tokens", golden["ids"].size() - golden["prompt_ids"].size()},
          {"temperature", 0}};
}

std::string GoldenContinuation(const json& golden) {
  return golden["text"].get<std::string>().substr(golden["prompt"].get<std::string>().size());
}

class AdaptiveSplitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    // Edge and tail share the machine's cores: OpenMP threads must not spin while the other side works.
    setenv("OMP_WAIT_POLICY", "passive", 1);
  }
};

TEST_F(AdaptiveSplitTest, WithinTheEdgeMemoryBudgetThePlanSplitsAndTheOutputStaysGolden) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  EdgeProcess edge(tail, {"--split", "auto", "--max-edge-blocks", "2"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge)) << edge.log();
  for (const json& golden : testing::GoldenRecords()) {
    SCOPED_TRACE(golden["prompt"].get<std::string>());
    const HttpResult result =
        HttpCall(edge.address(), "POST", "/v1/completions", GoldenRequest(golden).dump());
    ASSERT_EQ(result.status, 200) << result.body;
    const json body = json::parse(result.body);
    EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
    // All-local would need 5 blocks here; the budget is 2, and the privacy floor 1.
    const int cut = body["tandem"]["cut"];
    EXPECT_GE(cut, 1);
    EXPECT_LE(cut, 2);
    EXPECT_GT(body["tandem"]["bytes_sent"].get<int>(), 0);
  }
  const json plan = Plan(edge);
  EXPECT_LE(plan["planner"]["current"]["cut"].get<int>(), 2) << plan.dump();
  EXPECT_GT(plan["planner"]["plans"].get<int>(), 0);
}

TEST_F(AdaptiveSplitTest, WhenTheTailDiesTheEdgeFinishesLocallyAndThenPlansLocal) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  // A slow device (emulated) makes the split worth it, so the planner starts on the tail; no re-planning
  // mid-generation, so that only the failure moves it.
  EdgeProcess edge(
      tail, {"--split", "auto", "--emulate-slowdown", "30", "--timeout-ms", "1000", "--replan-tokens", "0"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge)) << edge.log();
  const json golden = testing::GoldenRecords().front();

  // Streamed, so that the tail can be killed once the first tokens are out.
  json request = GoldenRequest(golden);
  request["stream"] = true;
  int events = 0;
  const HttpResult streamed = testing::HttpStream(
      edge.address(), "POST", "/v1/completions", request.dump(), {}, [&](std::string_view data) {
        events += static_cast<int>(testing::SseEvents(std::string(data)).size());
        if (events >= 10 && tail.process().Running()) tail.process().Signal(SIGKILL);
        return true;
      });
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  std::string text;
  json last;
  for (const std::string& event : testing::SseEvents(streamed.body)) {
    if (event == "[DONE]") break;
    last = json::parse(event);
    ASSERT_FALSE(last.contains("error")) << event << "\n" << edge.log();
    text += last["choices"][0]["text"].get<std::string>();
  }
  EXPECT_EQ(text, GoldenContinuation(golden)) << edge.log();
  const json& tandem = last["tandem"];
  EXPECT_LT(tandem["plan"]["cut"].get<int>(), kLayers)
      << "the first plan should be a split: " << tandem.dump();
  ASSERT_FALSE(tandem["move_log"].empty()) << tandem.dump();
  EXPECT_EQ(tandem["move_log"].back()["reason"], "fallback");
  EXPECT_EQ(tandem["cut"], kLayers);

  // The probes go unanswered: the link is down, and new requests are planned all-local.
  ASSERT_TRUE(
      WaitUntil([&] { return Plan(edge)["estimates"]["link_up"] == false; }, std::chrono::seconds(10)))
      << Plan(edge).dump();
  EXPECT_EQ(HttpCall(edge.address(), "GET", "/readyz").status, 200);
  const HttpResult after = HttpCall(edge.address(), "POST", "/v1/completions", GoldenRequest(golden).dump());
  ASSERT_EQ(after.status, 200) << after.body;
  const json body = json::parse(after.body);
  EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
  EXPECT_EQ(body["tandem"]["plan"]["cut"], kLayers);
  const std::string metrics = HttpCall(edge.address(), "GET", "/metrics").body;
  EXPECT_NE(metrics.find("tandem_edge_split_moves_total{reason=\"fallback\"} 1"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("tandem_edge_link_up 0"), std::string::npos);
}

// The tail stops answering before the prompt's step comes back (the edge still thinks it is up): the
// edge moves the generation before it has produced anything, and the text is still the golden one.
TEST_F(AdaptiveSplitTest, ATailThatGoesSilentBeforeTheFirstTokenIsReplacedByTheEdge) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  EdgeProcess edge(tail, {"--split", "auto", "--emulate-slowdown", "30", "--timeout-ms", "800"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge)) << edge.log();
  const json golden = testing::GoldenRecords().front();
  tail.process().Signal(SIGSTOP);
  const HttpResult result = HttpCall(edge.address(), "POST", "/v1/completions", GoldenRequest(golden).dump());
  tail.process().Signal(SIGCONT);
  ASSERT_EQ(result.status, 200) << result.body << edge.log();
  const json body = json::parse(result.body);
  EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
  EXPECT_LT(body["tandem"]["plan"]["cut"].get<int>(), kLayers) << body["tandem"].dump();
  ASSERT_EQ(body["tandem"]["move_log"].size(), 1u) << body["tandem"].dump();
  EXPECT_EQ(body["tandem"]["move_log"][0]["reason"], "fallback");
  EXPECT_EQ(body["tandem"]["cut"], kLayers);
}

// --private-output: auto plans only U-shaped splits (the tail runs [k, m), this edge [m, L) and the head),
// with the golden outputs; a request may not force another split; a fixed --split K --tail-end M too.
TEST_F(AdaptiveSplitTest, PrivateOutputEdgesPlanUShapedSplitsWithTheGoldenOutputs) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  // A slow edge, so that the planner gives the tail what it may rather than running all-local.
  EdgeProcess planned(tail, {"--split", "auto", "--private-output", "--emulate-slowdown", "30"});
  EdgeProcess fixed(tail, {"--split", "1", "--tail-end", "3"});
  ASSERT_TRUE(planned.started()) << planned.log();
  ASSERT_TRUE(fixed.started()) << fixed.log();
  ASSERT_TRUE(testing::AwaitTailReports(planned)) << planned.log();
  ASSERT_TRUE(testing::AwaitReady(fixed));
  const json golden = testing::GoldenRecords().front();
  for (EdgeProcess* edge : {&planned, &fixed}) {
    const HttpResult result =
        HttpCall(edge->address(), "POST", "/v1/completions", GoldenRequest(golden).dump());
    ASSERT_EQ(result.status, 200) << result.body;
    const json body = json::parse(result.body);
    EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
    const int cut = body["tandem"]["cut"], end = body["tandem"]["tail_end"];
    if (edge == &fixed) {
      EXPECT_EQ(cut, 1);
      EXPECT_EQ(end, 3);
    } else {
      // The privacy floor keeps block 0 here, the default keeps the last block: [1, 4) of 5.
      EXPECT_EQ(cut, 1) << body.dump();
      EXPECT_EQ(end, kLayers - 1) << body.dump();
    }
    json forced = GoldenRequest(golden);
    forced["tandem"] = {{"split", 3}};
    EXPECT_EQ(HttpCall(edge->address(), "POST", "/v1/completions", forced.dump()).status, 400);
  }
}

TEST_F(AdaptiveSplitTest, ARequestMayForceItsSplit) {
  CloudTailProcess tail;
  ASSERT_TRUE(tail.started()) << tail.log();
  EdgeProcess edge(tail, {"--split", "auto"});
  ASSERT_TRUE(edge.started()) << edge.log();
  ASSERT_TRUE(testing::AwaitTailReports(edge)) << edge.log();
  const json golden = testing::GoldenRecords().front();
  for (const json& forced : {json{{"split", 3}, {"codec", "fp32"}}, json{{"split", "local"}}}) {
    json request = GoldenRequest(golden);
    request["tandem"] = forced;
    const HttpResult result = HttpCall(edge.address(), "POST", "/v1/completions", request.dump());
    ASSERT_EQ(result.status, 200) << result.body;
    const json body = json::parse(result.body);
    EXPECT_EQ(body["choices"][0]["text"], GoldenContinuation(golden));
    EXPECT_EQ(body["tandem"]["cut"], forced["split"] == "local" ? kLayers : 3);
  }
  for (const json& bad :
       {json{{"split", 6}}, json{{"split", "middle"}}, json{{"split", 1}, {"codec", "fp64"}}}) {
    json request = GoldenRequest(golden);
    request["tandem"] = bad;
    const HttpResult result = HttpCall(edge.address(), "POST", "/v1/completions", request.dump());
    EXPECT_EQ(result.status, 400) << bad.dump() << " " << result.body;
    EXPECT_EQ(json::parse(result.body)["error"]["param"].get<std::string>().substr(0, 6), "tandem");
  }
}

}  // namespace
}  // namespace tandem
