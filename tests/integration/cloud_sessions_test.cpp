// Many sessions at once against one real tandem-cloud: each gives exactly what it gives alone.
#include <gtest/gtest.h>

#include <csignal>
#include <future>
#include <thread>

#include "cloud_tail_process.hpp"
#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

constexpr int kSessions = 16;
constexpr int kSteps = 96;
constexpr int kIdleTimeoutSeconds = 2;

struct SessionPlan {
  std::string prompt;
  int cut = 0;
  SamplingParams sampling;
  ActivationCodec codec;
};

std::vector<SessionPlan> Plans() {
  const auto records = testing::GoldenRecords();
  std::vector<SessionPlan> plans;
  for (int i = 0; i < kSessions; ++i) {
    SessionPlan plan;
    plan.prompt = records.at(static_cast<size_t>(i) % records.size())["prompt"];
    plan.cut = i % 6;  // every cut 0..5 of the 5-layer model, mixed
    // Half greedy, half seeded nucleus sampling (the cloud samples with the session's RNG).
    plan.sampling =
        i % 2 ? SamplingParams{1.0f, 0.9f, static_cast<uint64_t>(1000 + i)} : SamplingParams{0.0f, 1.0f, 0};
    plan.codec = i % 4 == 3 ? ActivationCodec{Precision::kBf16, Compression::kLz4} : ActivationCodec{};
    plans.push_back(plan);
  }
  return plans;
}

// Parameter: the tail's --workers (2: steps on worker threads; 0: on the I/O thread).
class CloudSessionsTest : public ::testing::TestWithParam<int> {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    tail_ = std::make_unique<testing::CloudTailProcess>(std::vector<std::string>{
        "--workers", std::to_string(GetParam()), "--idle-timeout-s", std::to_string(kIdleTimeoutSeconds)});
    ASSERT_TRUE(tail_->started()) << tail_->log();
    ModelFlags flags;
    flags.model = testing::Stories260KModel().string();
    flags.threads = 1;
    auto model = LoadModel(flags, /*fingerprint=*/true);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = *model;
    auto tokenizer =
        Tokenizer::Load(testing::Stories260KTokenizer().string(), model_.checkpoint->config().vocab_size);
    ASSERT_TRUE(tokenizer.ok());
    tokenizer_ = std::make_unique<Tokenizer>(std::move(*tokenizer));
  }

  Result<std::unique_ptr<edge_agent::CloudConnection>> Connect() {
    edge_agent::CloudOptions options;
    options.endpoint = tail_->endpoint();
    options.security.own_keys = tail_->edge_keys();
    options.security.server_public_key = tail_->cloud_keys().public_key;
    options.timeout = std::chrono::seconds(30);
    return edge_agent::CloudConnection::Connect(
        context_, options, wire::DescribeModel(model_.checkpoint->config(), model_.fingerprint));
  }

  // One session on its own connection, as one edge would run it.
  Result<std::vector<int>> RunSession(const SessionPlan& plan) {
    TANDEM_ASSIGN_OR_RETURN(auto connection, Connect());
    EdgeRunner edge(model_.transformer, plan.cut, kSteps);
    TANDEM_ASSIGN_OR_RETURN(auto tail, edge_agent::RemoteTail::Open(*connection, {.cut = plan.cut,
                                                                                  .codec = plan.codec,
                                                                                  .sampling = plan.sampling,
                                                                                  .max_positions = kSteps}));
    const std::vector<int> prompt = tokenizer_->Encode(plan.prompt, true, false);
    TANDEM_ASSIGN_OR_RETURN(Generation generation,
                            Generate(edge, *tail, prompt, GenerateOptions{.steps = kSteps}));
    if (tail->cut_log().positions() != static_cast<int64_t>(generation.ids.size()) - 1 &&
        tail->cut_log().positions() != static_cast<int64_t>(generation.ids.size())) {
      return Internal("the cut log does not hold every position sent");
    }
    return generation.ids;
  }

  std::unique_ptr<testing::CloudTailProcess> tail_;
  LoadedModel model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  zmq::context_t context_;
};

TEST_P(CloudSessionsTest, SixteenConcurrentSessionsMatchTheirSoloRuns) {
  const std::vector<SessionPlan> plans = Plans();
  std::vector<std::vector<int>> solo;
  for (const SessionPlan& plan : plans) {
    auto ids = RunSession(plan);
    ASSERT_TRUE(ids.ok()) << ids.status().ToString();
    solo.push_back(*ids);
  }
  std::vector<std::future<Result<std::vector<int>>>> concurrent;
  for (const SessionPlan& plan : plans) {
    concurrent.push_back(std::async(std::launch::async, [this, &plan] { return RunSession(plan); }));
  }
  for (size_t i = 0; i < plans.size(); ++i) {
    auto ids = concurrent[i].get();
    ASSERT_TRUE(ids.ok()) << "session " << i << ": " << ids.status().ToString();
    EXPECT_EQ(*ids, solo[i]) << "session " << i << " (cut " << plans[i].cut << ")";
  }
  // Greedy fp32 sessions are the golden continuations too.
  const auto records = testing::GoldenRecords();
  for (size_t i = 0; i < plans.size(); i += 2) {
    if (plans[i].codec != ActivationCodec{}) continue;
    const auto& golden = records.at(i % records.size());
    const auto expected = golden["ids"].get<std::vector<int>>();
    const size_t n = std::min(expected.size(), solo[i].size());
    EXPECT_EQ(std::vector<int>(solo[i].begin(), solo[i].begin() + static_cast<long>(n)),
              std::vector<int>(expected.begin(), expected.begin() + static_cast<long>(n)))
        << "session " << i;
  }
}

TEST_P(CloudSessionsTest, IdleSessionsExpire) {
  auto connection = Connect();
  ASSERT_TRUE(connection.ok()) << connection.status().ToString();
  EdgeRunner edge(model_.transformer, 2, 16);
  auto tail = edge_agent::RemoteTail::Open(**connection,
                                           {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 16});
  ASSERT_TRUE(tail.ok());
  ASSERT_TRUE((*tail)->Forward(*edge.Forward(std::vector<int>{1, 403})).ok());
  // The tail sweeps once a second: after the timeout and a sweep, the session is gone. Waits for the sweep's
  // log line (generously: a loaded machine may run the sweep late) rather than sleeping a fixed time.
  ASSERT_FALSE(tail_->process().WaitForLine("idle session expired", 30000).empty()) << tail_->log();
  const auto expired = (*tail)->Forward(*edge.Forward(std::vector<int>{407}));
  ASSERT_FALSE(expired.ok());
  EXPECT_NE(expired.status().message().find("unknown_session"), std::string::npos)
      << expired.status().ToString();
}

TEST_P(CloudSessionsTest, SigtermDrainsOpenSessionsThenExits) {
  auto connection = Connect();
  ASSERT_TRUE(connection.ok()) << connection.status().ToString();
  EdgeRunner edge(model_.transformer, 1, 16);
  auto tail = edge_agent::RemoteTail::Open(**connection,
                                           {.cut = 1, .sampling = {0.0f, 1.0f, 0}, .max_positions = 16});
  ASSERT_TRUE(tail.ok());
  ASSERT_TRUE((*tail)->Forward(*edge.Forward(std::vector<int>{1, 403})).ok());

  tail_->process().Signal(SIGTERM);
  ASSERT_FALSE(tail_->process().WaitForLine("msg=draining", 30000).empty()) << tail_->log();
  // The open session goes on; a new edge is told to go elsewhere.
  EXPECT_TRUE((*tail)->Forward(*edge.Forward(std::vector<int>{407})).ok());
  auto refused = Connect();
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("shutting down"), std::string::npos)
      << refused.status().ToString();
  // Once the last session closes, the tail stops by itself, cleanly.
  tail->reset();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (tail_->process().Running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_FALSE(tail_->process().Running()) << "still draining with no session open";
  EXPECT_EQ(tail_->process().Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(Workers, CloudSessionsTest, ::testing::Values(2, 0),
                         [](const auto& info) { return info.param ? "OnWorkers" : "Inline"; });

}  // namespace
}  // namespace tandem
