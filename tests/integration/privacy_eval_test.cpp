// `tandem privacy-eval` on stories260K: the table has a row per cut and codec, and the attacks find what
// they must — a tail that knows the weights recovers every token, and right after the embedding the
// nearest embedding row gives almost every token away, less so deeper.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>

#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;

TEST(PrivacyEvalTest, RecoveryRatesPerCutAndCodec) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  testing::TempDir dir;
  const testing::CommandResult run = testing::RunProgram(
      "tandem",
      {"privacy-eval", "--model", (testing::SharedDir() / "models/stories260K/stories260K.bin").string(),
       "--golden", (testing::SharedDir() / "golden/stories260K-greedy.jsonl").string(), "--cuts", "1,4",
       "--codecs", "fp32,int8", "--max-positions", "48", "--out-dir", dir.path().string()},
      120);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
  EXPECT_NE(run.out.find("| 4 | int8 |"), std::string::npos) << run.out;

  std::ifstream file(dir / "privacy-eval.json");
  const json report = json::parse(file, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run.out;
  const json& results = report["results"];
  ASSERT_EQ(results.size(), 4u);
  for (const json& row : results) {
    EXPECT_EQ(row["positions"], 5 * 48) << row;
    EXPECT_GE(row["search_rate"].get<double>(), 0.99) << row;
  }
  EXPECT_GT(results[0]["nearest_rate"].get<double>(), 0.9) << results[0];
  EXPECT_LT(results[2]["nearest_rate"].get<double>(), results[0]["nearest_rate"].get<double>()) << results[2];
}

TEST(PrivacyEvalTest, ACutOutsideTheModelIsAUsageError) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  const testing::CommandResult run = testing::RunProgram(
      "tandem",
      {"privacy-eval", "--model", (testing::SharedDir() / "models/stories260K/stories260K.bin").string(),
       "--golden", (testing::SharedDir() / "golden/stories260K-greedy.jsonl").string(), "--cuts", "5"});
  EXPECT_EQ(run.exit_code, 2) << run.out << run.err;
  EXPECT_NE(run.err.find("--cuts"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace tandem
