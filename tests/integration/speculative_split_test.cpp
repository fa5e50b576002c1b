// Speculative decoding across processes: `tandem generate --draft` against a real tandem-cloud on loopback.
// Whatever the drafter, greedy output is the golden one token for token, at every cut, with private
// output, and through moves of the split mid-generation; and the steps yield several tokens each when the
// drafter guesses well.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <future>

#include "cloud_tail_process.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::CloudTailProcess;
using testing::RunProgram;

constexpr int kLayers = 5;  // stories260K

class SpeculativeSplitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::SharedDir().empty()) tail_ = new CloudTailProcess();
  }
  static void TearDownTestSuite() {
    if (tail_ != nullptr) EXPECT_EQ(tail_->process().Stop(), 0);
    delete tail_;
    tail_ = nullptr;
  }
  void SetUp() override {
    if (tail_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(tail_->started()) << tail_->log();
  }

  // `tandem generate --json` greedy on the cloud tail with `extra` flags; the parsed output.
  static json Generate(const json& golden, std::vector<std::string> extra) {
    std::vector<std::string> args = testing::GenerateArgs(golden["prompt"], golden["steps"]);
    const auto cloud = tail_->EdgeFlags();
    args.insert(args.end(), cloud.begin(), cloud.end());
    args.insert(args.end(), {"--codec", "fp32", "--temperature", "0"});
    args.insert(args.end(), extra.begin(), extra.end());
    const auto result = RunProgram("tandem", args, 120);
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.exit_code == 0 ? json::parse(result.out) : json::object();
  }

  static CloudTailProcess* tail_;
};

CloudTailProcess* SpeculativeSplitTest::tail_ = nullptr;

std::vector<std::string> Drafters() {
  return {"ngram", "self-int8", "self-int4", "model:" + testing::Stories260KModel().string(), "early-exit"};
}

// One thread per golden record: the tail serves them together.
void ForEachGolden(const std::function<void(const json&)>& check) {
  const auto records = testing::GoldenRecords();
  ASSERT_EQ(records.size(), 5u);
  std::vector<std::future<void>> runs;
  for (const json& golden : records) runs.push_back(std::async(std::launch::async, [&] { check(golden); }));
  for (auto& run : runs) run.get();
}

TEST_F(SpeculativeSplitTest, EveryDrafterAtEveryCutGivesTheGoldenOutputs) {
  std::mutex mutex;
  std::map<std::string, std::pair<int64_t, int64_t>> acceptance;  // drafter: drafted, accepted
  ForEachGolden([&](const json& golden) {
    for (const std::string& drafter : Drafters()) {
      for (int cut = 1; cut < kLayers; ++cut) {
        SCOPED_TRACE("prompt '" + golden["prompt"].get<std::string>() + "', --draft " + drafter + ", cut " +
                     std::to_string(cut));
        const json out =
            Generate(golden, {"--split", std::to_string(cut), "--draft", drafter, "--draft-tokens", "4"});
        EXPECT_EQ(out["ids"], golden["ids"]);
        EXPECT_EQ(out["text"], golden["text"]);
        if (!out.contains("timings")) continue;
        const json& timings = out["timings"];
        const std::lock_guard lock(mutex);
        acceptance[drafter].first += timings["drafted_tokens"].get<int64_t>();
        acceptance[drafter].second += timings["accepted_tokens"].get<int64_t>();
      }
    }
  });
  for (const auto& [drafter, counts] : acceptance) {
    std::printf("%-12s drafted %6lld accepted %6lld (%.0f%%)\n", drafter.substr(0, 12).c_str(),
                static_cast<long long>(counts.first), static_cast<long long>(counts.second),
                counts.first > 0 ? 100.0 * counts.second / counts.first : 0.0);
    EXPECT_GT(counts.first, 0) << drafter << " drafted nothing";
  }
  // The model drafting for itself guesses every token: only the end of a text stops a run.
  const auto& self = acceptance["model:" + testing::Stories260KModel().string()];
  EXPECT_GT(self.second, self.first * 9 / 10);
}

TEST_F(SpeculativeSplitTest, PrivateOutputVerifiesOnTheEdgeWithTheGoldenOutputs) {
  ForEachGolden([](const json& golden) {
    for (const std::string drafter : {"ngram", "self-int8"}) {
      SCOPED_TRACE("prompt '" + golden["prompt"].get<std::string>() + "', --draft " + drafter);
      const json out =
          Generate(golden, {"--split", "1", "--tail-end", "3", "--draft", drafter, "--draft-tokens", "3"});
      EXPECT_EQ(out["ids"], golden["ids"]);
    }
  });
}

TEST_F(SpeculativeSplitTest, MovesMidGenerationReplayTheVerifyStepsExactly) {
  ForEachGolden([](const json& golden) {
    SCOPED_TRACE("prompt '" + golden["prompt"].get<std::string>() + "'");
    const json out = Generate(golden, {"--split", "2", "--draft", "self-int8", "--draft-tokens", "auto",
                                       "--moves", "10:4,30:1,60:local,90:3"});
    EXPECT_EQ(out["ids"], golden["ids"]);
    EXPECT_GE(out["cut"].value("moves", 0), 1);
  });
}

TEST_F(SpeculativeSplitTest, GoodDraftsYieldSeveralTokensPerRoundTrip) {
  const json golden = testing::GoldenRecords().front();
  const json plain = Generate(golden, {"--split", "2"});
  const json drafted = Generate(golden, {"--split", "2", "--draft", "self-int8", "--draft-tokens", "6"});
  ASSERT_TRUE(plain.contains("timings") && drafted.contains("timings"));
  EXPECT_DOUBLE_EQ(plain["timings"]["tokens_per_step"].get<double>(), 1.0);
  EXPECT_GT(drafted["timings"]["tokens_per_step"].get<double>(), 2.0);
  // One reply per step: fewer round trips with drafting.
  EXPECT_LT(drafted["cut"]["step_round_trip_ms"].size(), plain["cut"]["step_round_trip_ms"].size() / 2);
}

// Each token is drawn from the session's RNG as without drafting (one draw per token emitted), a draft kept
// when it is that token: a seed gives the same tokens with any drafter, or none.
TEST_F(SpeculativeSplitTest, SeededSamplingGivesTheSameTokensWithOrWithoutDrafts) {
  const json golden = testing::GoldenRecords().front();
  const std::vector<std::string> sampling = {"--split", "2", "--temperature", "0.8", "--seed", "7"};
  // Generate's greedy flag comes first; the later --temperature wins.
  const json plain = Generate(golden, sampling);
  ASSERT_TRUE(plain.contains("ids"));
  EXPECT_NE(plain["ids"], golden["ids"]);
  for (const std::string& drafter : Drafters()) {
    std::vector<std::string> flags = sampling;
    flags.insert(flags.end(), {"--draft", drafter, "--draft-tokens", drafter == "ngram" ? "2" : "4"});
    EXPECT_EQ(Generate(golden, flags)["ids"], plain["ids"]) << drafter;
    EXPECT_EQ(Generate(golden, flags)["ids"], plain["ids"]) << drafter << ", again";
  }
}

}  // namespace
}  // namespace tandem
