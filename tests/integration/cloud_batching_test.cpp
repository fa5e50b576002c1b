// Continuous batching in a real tandem-cloud: sixteen edges at once, on every cut of stories260K, each
// sampling with its own seed, get from a batching tail exactly the tokens of their all-local runs, and the
// tail's metrics show that their steps really ran together.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <future>
#include <iostream>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using testing::CloudTailProcess;
using testing::RunProgram;

constexpr int kSessions = 16;
constexpr int kLayers = 5;  // stories260K
constexpr int kSteps = 160;

// Session i's sampling: its own seed and temperature, so that no two sessions share their tokens.
std::vector<std::string> SamplingFlags(int session) {
  return {"--temperature", session % 4 == 0 ? "0" : "0.9", "--top-p", "0.95",
          "--seed",        std::to_string(session)};
}

const char* Prompt(int session) {
  static const char* const kPrompts[] = {"Once upon a time", "Lily and Ben", "One day", "The cat"};
  return kPrompts[session % 4];
}

// Runs `args_of(i)` for every session at once and returns each one's generated ids.
template <typename ArgsOf>
std::vector<nlohmann::json> GenerateAll(const ArgsOf& args_of) {
  std::vector<std::future<testing::CommandResult>> runs;
  for (int i = 0; i < kSessions; ++i) {
    runs.push_back(
        std::async(std::launch::async, [&args_of, i] { return RunProgram("tandem", args_of(i), 120); }));
  }
  std::vector<nlohmann::json> ids;
  for (int i = 0; i < kSessions; ++i) {
    const testing::CommandResult result = runs[static_cast<size_t>(i)].get();
    EXPECT_EQ(result.exit_code, 0) << "session " << i << ": " << result.err;
    ids.push_back(result.exit_code == 0 ? nlohmann::json::parse(result.out)["ids"] : nlohmann::json());
  }
  return ids;
}

TEST(CloudBatchingTest, SixteenSessionsOnMixedCutsGetTheirUnbatchedTokens) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const std::vector<nlohmann::json> local =
      GenerateAll([](int i) { return testing::GenerateArgs(Prompt(i), kSteps, SamplingFlags(i)); });
  // A slowed tail (each pass takes 20 times its compute), so that the sixteen edges' steps queue up
  // behind one another and the batches fill whatever the start-up jitter of the processes.
  CloudTailProcess tail({"--emulate-slowdown", "20", "--max-batch", "16", "--max-batch-wait-us", "5000"});
  ASSERT_TRUE(tail.started()) << tail.log();
  const std::vector<nlohmann::json> batched = GenerateAll([&tail](int i) {
    std::vector<std::string> extra = SamplingFlags(i);
    for (const std::string& flag : tail.EdgeFlags()) extra.push_back(flag);
    extra.insert(extra.end(), {"--split", std::to_string(i % (kLayers + 1)), "--codec", "fp32"});
    return testing::GenerateArgs(Prompt(i), kSteps, extra);
  });
  for (int i = 0; i < kSessions; ++i) {
    EXPECT_EQ(batched[static_cast<size_t>(i)], local[static_cast<size_t>(i)])
        << "session " << i << " (cut " << i % (kLayers + 1) << ")";
    EXPECT_GT(local[static_cast<size_t>(i)].size(), 20u)
        << "session " << i << " generated too little to tell";
  }
  const double passes = testing::MetricValue(tail.http_address(), "tandem_cloud_batch_steps_count");
  const double steps = testing::MetricValue(tail.http_address(), "tandem_cloud_batch_steps_sum");
  ASSERT_GT(passes, 0);
  std::cout << steps << " steps in " << passes << " worker passes\n";
  EXPECT_GE(steps / passes, 4.0) << steps << " steps in " << passes << " worker passes: too little batching";
  EXPECT_EQ(tail.process().Stop(), 0) << tail.log();
}

}  // namespace
}  // namespace tandem
