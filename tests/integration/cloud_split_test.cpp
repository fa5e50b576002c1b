// The split across processes: `tandem generate --cloud` against a real tandem-cloud on loopback with CURVE
// reproduces the golden outputs at every cut, samples as the local run does, and reports what crossed.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <future>

#include "cloud_tail_process.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using testing::CloudTailProcess;
using testing::RunProgram;

constexpr int kLayers = 5;  // stories260K
constexpr int kDim = 64;

class CloudSplitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!testing::SharedDir().empty()) tail_ = new CloudTailProcess();
  }
  static void TearDownTestSuite() {
    if (tail_ != nullptr) {
      EXPECT_EQ(tail_->process().Stop(), 0) << "tandem-cloud did not stop cleanly on SIGTERM";
    }
    delete tail_;
    tail_ = nullptr;
  }
  void SetUp() override {
    if (tail_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(tail_->started()) << tail_->log();
  }

  // `tandem generate --json` on the cloud tail; extra flags after the model and the cloud.
  static testing::CommandResult GenerateOnCloud(const std::string& prompt, int steps,
                                                std::vector<std::string> extra, bool stranger = false) {
    std::vector<std::string> args = testing::GenerateArgs(prompt, steps);
    const auto cloud = tail_->EdgeFlags(stranger);
    args.insert(args.end(), cloud.begin(), cloud.end());
    args.insert(args.end(), extra.begin(), extra.end());
    return RunProgram("tandem", args, 60);
  }

  static CloudTailProcess* tail_;
};

CloudTailProcess* CloudSplitTest::tail_ = nullptr;

// Runs `check` on every golden record, one thread each: the tail serves them concurrently.
void ForEachGoldenConcurrently(const std::function<void(const nlohmann::json&)>& check) {
  const auto records = testing::GoldenRecords();
  ASSERT_EQ(records.size(), 5u);
  std::vector<std::future<void>> runs;
  for (const nlohmann::json& golden : records) {
    runs.push_back(std::async(std::launch::async, [&check, &golden] { check(golden); }));
  }
  for (auto& run : runs) run.get();
}

TEST_F(CloudSplitTest, EveryCutReproducesTheGoldenOutputs) {
  ForEachGoldenConcurrently([](const nlohmann::json& golden) {
    for (int cut = 0; cut <= kLayers; ++cut) {
      SCOPED_TRACE("prompt '" + golden["prompt"].get<std::string>() + "', cut " + std::to_string(cut));
      const auto result =
          GenerateOnCloud(golden["prompt"], golden["steps"],
                          {"--split", std::to_string(cut), "--codec", "fp32", "--temperature", "0"});
      ASSERT_EQ(result.exit_code, 0) << result.err;
      const auto out = nlohmann::json::parse(result.out);
      EXPECT_EQ(out["ids"], golden["ids"]);
      EXPECT_EQ(out["text"], golden["text"]);
      // Every position crossed the cut once as float32 rows, cut 0 included: embedding rows, not ids.
      const int64_t positions = static_cast<int64_t>(golden["ids"].size()) - 1;
      EXPECT_EQ(out["cut"]["raw_bytes"].get<int64_t>(), positions * kDim * 4);
      EXPECT_EQ(out["cut"]["payload_bytes"].get<int64_t>(), positions * kDim * 4);
      EXPECT_EQ(out["cut"]["step_round_trip_ms"].size(),
                static_cast<size_t>(positions - golden["prompt_ids"].size() + 1));
    }
  });
}

// Private output: the tail runs only [k, m) and returns its rows; the edge runs [m, L), the head and the
// sampling. With fp32 both ways the outputs are the golden ones, token for token.
TEST_F(CloudSplitTest, PrivateOutputReproducesTheGoldenOutputs) {
  ForEachGoldenConcurrently([](const nlohmann::json& golden) {
    for (const auto& [cut, end] : {std::pair{1, 3}, {2, 5}, {1, 2}}) {
      SCOPED_TRACE("prompt '" + golden["prompt"].get<std::string>() + "', tail [" + std::to_string(cut) +
                   ", " + std::to_string(end) + ")");
      const auto result = GenerateOnCloud(golden["prompt"], golden["steps"],
                                          {"--split", std::to_string(cut), "--tail-end", std::to_string(end),
                                           "--codec", "fp32", "--temperature", "0"});
      ASSERT_EQ(result.exit_code, 0) << result.err;
      const auto out = nlohmann::json::parse(result.out);
      EXPECT_EQ(out["ids"], golden["ids"]);
      EXPECT_EQ(out["text"], golden["text"]);
      // Every position crossed twice: to the tail after block k-1, back after block m-1.
      const int64_t positions = static_cast<int64_t>(golden["ids"].size()) - 1;
      EXPECT_EQ(out["cut"]["tail_end"], end);
      EXPECT_EQ(out["cut"]["returned_payload_bytes"].get<int64_t>(), positions * kDim * 4);
      EXPECT_EQ(out["cut"]["payload_bytes"].get<int64_t>(), 2 * positions * kDim * 4);
    }
  });
}

TEST_F(CloudSplitTest, SeededSamplingOnTheCloudMatchesTheLocalRun) {
  const std::vector<std::string> sampling = {"--temperature", "1.0", "--top-p", "0.9", "--seed", "42"};
  const auto local_args = testing::GenerateArgs("Once upon a time", 80, sampling);
  const auto local = RunProgram("tandem", local_args);
  ASSERT_EQ(local.exit_code, 0) << local.err;
  std::vector<std::string> split = {"--split", "3"};
  split.insert(split.end(), sampling.begin(), sampling.end());
  const auto remote = GenerateOnCloud("Once upon a time", 80, split);
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(nlohmann::json::parse(remote.out)["ids"], nlohmann::json::parse(local.out)["ids"]);
}

TEST_F(CloudSplitTest, Int8ZstdReportsSmallerDecodePayloads) {
  const auto fp32 = GenerateOnCloud("One day", 40, {"--split", "2", "--codec", "fp32", "--temperature", "0"});
  const auto int8 =
      GenerateOnCloud("One day", 40, {"--split", "2", "--codec", "int8+zstd", "--temperature", "0"});
  ASSERT_EQ(fp32.exit_code, 0) << fp32.err;
  ASSERT_EQ(int8.exit_code, 0) << int8.err;
  const auto fp32_cut = nlohmann::json::parse(fp32.out)["cut"];
  const auto int8_cut = nlohmann::json::parse(int8.out)["cut"];
  EXPECT_EQ(int8_cut["codec"], "int8+zstd");
  EXPECT_EQ(fp32_cut["decode_payload_bytes"].get<double>(), kDim * 4);
  // int8: 64 bytes and a float32 scale per row; zstd cannot shrink that much, so it is sent as is.
  EXPECT_LE(int8_cut["decode_payload_bytes"].get<double>(), kDim + 4);
}

TEST_F(CloudSplitTest, AClientThatIsNotAllowListedIsRefusedWithAClearError) {
  const auto result =
      GenerateOnCloud("Hello", 10, {"--split", "1", "--timeout-ms", "500"}, /*stranger=*/true);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("allow-clients"), std::string::npos) << result.err;
  EXPECT_TRUE(tail_->process().Running());
}

TEST_F(CloudSplitTest, ThePlaintextClientOfACurveTailGetsNoAnswer) {
  const auto args = testing::GenerateArgs(
      "Hi", 16, {"--split", "1", "--cloud", tail_->endpoint(), "--insecure", "--timeout-ms", "500"});
  const auto result = RunProgram("tandem", args);
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("no reply"), std::string::npos) << result.err;
}

TEST_F(CloudSplitTest, CloudFlagsAreChecked) {
  const auto no_split = GenerateOnCloud("Hi", 10, {});
  EXPECT_NE(no_split.exit_code, 0);
  EXPECT_NE(no_split.err.find("--split"), std::string::npos) << no_split.err;
  const auto bad_codec = GenerateOnCloud("Hi", 10, {"--split", "1", "--codec", "int3"});
  EXPECT_NE(bad_codec.exit_code, 0);
  EXPECT_NE(bad_codec.err.find("int3"), std::string::npos) << bad_codec.err;
}

// Re-splitting mid-generation on the real tail (cuts 1 -> 3 -> all-local -> 0 -> 4), with fp32: every
// golden output is reproduced exactly, greedy, and seeded sampling gives the unsplit run's tokens.
TEST_F(CloudSplitTest, MovingTheSplitMidGenerationReproducesTheUnsplitRun) {
  const std::vector<std::string> moves = {"--split", "1",       "--codec",
                                          "fp32",    "--moves", "5:3,12:local,20:0,40:4"};
  for (const nlohmann::json& golden : testing::GoldenRecords()) {
    SCOPED_TRACE(golden["prompt"].get<std::string>());
    std::vector<std::string> greedy = moves;
    greedy.insert(greedy.end(), {"--temperature", "0"});
    const auto result = GenerateOnCloud(golden["prompt"], golden["steps"], greedy);
    ASSERT_EQ(result.exit_code, 0) << result.err;
    const auto out = nlohmann::json::parse(result.out);
    EXPECT_EQ(out["ids"], golden["ids"]);
    EXPECT_EQ(out["cut"]["moves"], 4);
    EXPECT_EQ(out["cut"]["final_cut"], 4);
  }
  const std::vector<std::string> sampling = {"--temperature", "1.0", "--top-p", "0.9", "--seed", "7"};
  std::vector<std::string> local_args = testing::GenerateArgs("Once upon a time", 120, sampling);
  const auto local = RunProgram("tandem", local_args, 60);
  ASSERT_EQ(local.exit_code, 0) << local.err;
  std::vector<std::string> moved = moves;
  moved.insert(moved.end(), sampling.begin(), sampling.end());
  const auto remote = GenerateOnCloud("Once upon a time", 120, moved);
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(nlohmann::json::parse(remote.out)["ids"], nlohmann::json::parse(local.out)["ids"]);
}

}  // namespace
}  // namespace tandem
