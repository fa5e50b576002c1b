// `tandem generate --temperature 0 --json` reproduces the golden llama2.c outputs token for token, all
// local and cut at every block K in 0..L, with the real stories260K model.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "test_env.hpp"

namespace tandem {
namespace {

using testing::RunProgram;

using testing::GoldenRecords;

constexpr int kLayers = 5;  // stories260K

// (golden record, split): split -1 is the monolithic run.
class GoldenGenerateTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(GoldenGenerateTest, ReproducesGreedyContinuation) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto [record_index, split] = GetParam();
  const auto records = GoldenRecords();
  ASSERT_EQ(records.size(), 5u);
  const nlohmann::json& golden = records.at(static_cast<size_t>(record_index));

  std::vector<std::string> args =
      testing::GenerateArgs(golden["prompt"], golden["steps"].get<int>(), {"--temperature", "0"});
  if (split >= 0) {
    args.push_back("--split");
    args.push_back(std::to_string(split));
  }
  const auto result = RunProgram("tandem", args);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto out = nlohmann::json::parse(result.out);
  EXPECT_EQ(out["prompt_ids"], golden["prompt_ids"]);
  EXPECT_EQ(out["ids"], golden["ids"]);
  EXPECT_EQ(out["text"], golden["text"]);
  // The table that ran: the forced one (this test runs again under each), else the CPU's best.
  if (const char* forced = std::getenv("TANDEM_KERNELS")) {
    EXPECT_EQ(out["kernels"], forced);
  }
  EXPECT_TRUE(out["kernels"].is_string());
  if (split >= 0) {
    // Every position crossed the cut once, as float32 rows of dim 64.
    const int64_t positions = static_cast<int64_t>(golden["ids"].size()) - 1;
    EXPECT_EQ(out["timings"]["bytes_across_cut"].get<int64_t>(), positions * 64 * 4);
  }
}

INSTANTIATE_TEST_SUITE_P(AllPromptsAllCuts, GoldenGenerateTest,
                         ::testing::Combine(::testing::Range(0, 5), ::testing::Range(-1, kLayers + 1)));

// Private output in one process (--tail-end without --cloud): the middle's rows cross the codec both ways.
TEST(GoldenPrivateOutputTest, UShapedSplitReproducesGreedyContinuation) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const nlohmann::json golden = GoldenRecords().at(0);
  const auto result =
      RunProgram("tandem", testing::GenerateArgs(golden["prompt"], golden["steps"].get<int>(),
                                                 {"--temperature", "0", "--split", "1", "--tail-end", "4"}));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto out = nlohmann::json::parse(result.out);
  EXPECT_EQ(out["ids"], golden["ids"]);
  const int64_t positions = static_cast<int64_t>(golden["ids"].size()) - 1;
  EXPECT_EQ(out["timings"]["bytes_across_cut"].get<int64_t>(), 2 * positions * 64 * 4);
}

// Sampling is reproducible: one seed, one story; another seed, another story.
std::vector<int> SampleIds(uint64_t seed, int split) {
  const auto args = testing::GenerateArgs("Once upon a time", 120,
                                          {"--temperature", "0.8", "--top-p", "0.9", "--seed",
                                           std::to_string(seed), "--split", std::to_string(split)});
  const auto result = RunProgram("tandem", args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  if (result.exit_code != 0) return {};
  return nlohmann::json::parse(result.out)["ids"].get<std::vector<int>>();
}

TEST(SeededSamplingTest, SameSeedSameTokensDifferentSeedsDiffer) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto first = SampleIds(1234, -1);
  ASSERT_GT(first.size(), 20u);
  EXPECT_EQ(SampleIds(1234, -1), first);
  EXPECT_EQ(SampleIds(1234, 3), first) << "a lossless split must not change sampled tokens";
  EXPECT_NE(SampleIds(1235, -1), first);
  EXPECT_NE(SampleIds(99, -1), first);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// Runs `tandem eval-agreement` with `flags` and returns the agreement in percent and the positions counted.
std::pair<double, long long> Agreement(const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"eval-agreement",
                                   "--model",
                                   testing::Stories260KModel().string(),
                                   "--tokenizer",
                                   testing::Stories260KTokenizer().string(),
                                   "--golden",
                                   testing::GoldenFile().string()};
  args.insert(args.end(), flags.begin(), flags.end());
  const auto result = testing::RunProgram("tandem", args);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  const auto last_line_start = result.out.rfind('\n', result.out.size() - 2);
  const std::string last = result.out.substr(last_line_start + 1);
  double percent = 0;
  long long positions = 0;
  EXPECT_EQ(std::sscanf(last.c_str(), "top-1 agreement: %lf%% over %lld positions", &percent, &positions), 2)
      << last;
  return {percent, positions};
}

// int8 weights in blocks 0:2 keep the float32 model's top-1 choice at >= 97% of golden positions.
TEST(EvalAgreementTest, Int8FirstTwoBlocksAgreeWithFloat32) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto [percent, positions] = Agreement({"--int8-blocks", "0:2"});
  EXPECT_EQ(positions, 958);  // every continuation position of the 5 golden records
  EXPECT_GE(percent, 97.0);
  EXPECT_LT(percent, 100.0) << "int8 blocks identical to float32 everywhere: were they quantized?";
}

// int4 weights (a scale per group of 32) in blocks 0:2 keep it at >= 90%.
TEST(EvalAgreementTest, Int4FirstTwoBlocksAgreeWithFloat32) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto [percent, positions] = Agreement({"--int4-blocks", "0:2"});
  EXPECT_EQ(positions, 958);
  EXPECT_GE(percent, 90.0);
  EXPECT_LT(percent, 100.0) << "int4 blocks identical to float32 everywhere: were they quantized?";
}

// So does the int8+zstd activation codec at the cut (the boundary rows, not the weights, are quantized).
TEST(EvalAgreementTest, Int8ZstdCodecAtTheCutAgreesWithFloat32) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto [percent, positions] = Agreement({"--split", "2", "--codec", "int8+zstd"});
  EXPECT_EQ(positions, 958);
  EXPECT_GE(percent, 97.0);
  EXPECT_LT(percent, 100.0) << "the codec changed nothing: were the rows quantized?";
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// make-model writes a loadable model of the named shape; bench runs it and ends with its JSON summary.
TEST(CliToolsTest, MakeModelThenBench) {
  testing::TempDir dir;
  const std::string model = (dir / "tiny.bin").string();
  auto result =
      testing::RunProgram("tandem", {"make-model", "--shape", "tiny", "--seed", "3", "--out", model});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result =
      testing::RunProgram("tandem", {"bench", "--model", model, "--int8-blocks", "0:5", "--prompt-tokens",
                                     "16", "--gen-tokens", "8", "--repeat", "3", "--warmup", "0"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto last =
      nlohmann::json::parse(result.out.substr(result.out.rfind('\n', result.out.size() - 2) + 1));
  for (const char* key : {"prefill_tok_s", "decode_tok_s"}) {
    EXPECT_GT(last[key]["min"].get<double>(), 0.0);
    EXPECT_LE(last[key]["min"].get<double>(), last[key]["median"].get<double>());
    EXPECT_LE(last[key]["median"].get<double>(), last[key]["max"].get<double>());
  }
  EXPECT_GT(last["peak_rss_mb"].get<double>(), 0.0);
  EXPECT_EQ(last["int8_blocks"], "0:5");
  result = testing::RunProgram("tandem", {"make-model", "--shape", "huge", "--out", model});
  EXPECT_EQ(result.exit_code, 2);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

// The second real model (no grouped-query sharing, seq_len 128, its own tokenizer): every cut gives the
// monolithic tokens, and generation stops at the model's context.
TEST(SecondModelTest, AidreamsSplitEqualsMonolithic) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const auto dir = testing::SharedDir() / "models/aidreams260K";
  auto ids = [&](int split) {
    const auto result = testing::RunProgram(
        "tandem", {"generate", "--model", (dir / "aidreams260K.bin").string(), "--tokenizer",
                   (dir / "tok512.bin").string(), "--prompt", "I dreamed", "--steps", "0", "--temperature",
                   "0", "--split", std::to_string(split), "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.exit_code == 0 ? nlohmann::json::parse(result.out)["ids"].get<std::vector<int>>()
                                 : std::vector<int>{};
  };
  const auto whole = ids(-1);
  EXPECT_EQ(whole.size(), 129u);  // --steps 0 means seq_len (128) positions
  for (int split = 0; split <= 4; ++split) EXPECT_EQ(ids(split), whole) << "split " << split;
}

}  // namespace
}  // namespace tandem
