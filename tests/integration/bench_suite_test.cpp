// `tandem bench-suite` on stories260K with tiny settings: every part runs (the tail part with real
// concurrent sessions batched on an in-process tail), and the JSON and Markdown hold each figure, so the
// suite cannot rot between the runs that fill docs/performance.md.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <fstream>
#include <sstream>

#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;

TEST(BenchSuiteTest, TinyRunReportsEveryPart) {
  if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  testing::TempDir dir;
  const std::string model = (testing::SharedDir() / "models/stories260K/stories260K.bin").string();
  const testing::CommandResult run = testing::RunProgram(
      "tandem",
      {"bench-suite", "--model", model, "--out-dir", dir.path().string(), "--prompt-tokens", "8",
       "--gen-tokens", "8", "--split-prompt-tokens", "4", "--split-gen-tokens", "4", "--repeat", "1",
       "--warmup", "0", "--sessions", "1,4", "--tail-prompt-tokens", "4", "--tail-decode-steps", "4",
       // A loaded 2-core host may schedule the four
       // sessions' threads more than the default 2 ms
       // apart: wait long enough that they batch.
       "--max-batch-wait-us", "50000", "--codecs", "fp32,int8+zstd", "--threads", "1"},
      120);
  ASSERT_EQ(run.exit_code, 0) << run.out << run.err;

  std::ifstream file(dir / "bench-suite.json");
  const json report = json::parse(file, nullptr, false);
  ASSERT_TRUE(report.is_object()) << run.out;
  for (const char* part : {"monolithic_float32", "monolithic_int8"}) {
    EXPECT_GT(report[part]["decode_tok_s"]["median"].get<double>(), 0) << part;
    EXPECT_GT(report[part]["prefill_tok_s"]["median"].get<double>(), 0) << part;
    EXPECT_GT(report[part]["peak_rss_mb"].get<double>(), 1) << part;
  }
  const json& split = report["split_decode"]["codecs"];
  ASSERT_EQ(split.size(), 2u);
  EXPECT_EQ(split[1]["codec"], "int8+zstd");
  // int8 rows cross in fewer bytes than float32 ones (64 columns: 256 bytes as float32).
  EXPECT_EQ(split[0]["decode_payload_bytes"].get<double>(), 256);
  EXPECT_LT(split[1]["decode_payload_bytes"].get<double>(), 256);

  const json& sessions = report["tail_aggregate"]["sessions"];
  ASSERT_EQ(sessions.size(), 2u);
  EXPECT_EQ(sessions[0]["aggregate_vs_single"].get<double>(), 1.0);
  EXPECT_GT(sessions[1]["aggregate_tok_s"]["median"].get<double>(), 0);
  // The 4 sessions' steps were batched: more than one step per pass through the weights.
  EXPECT_GT(sessions[1]["mean_batch"].get<double>(), 1.0);

  const json& codecs = report["codecs"]["codecs"];
  ASSERT_EQ(codecs.size(), 2u);
  EXPECT_GT(codecs[1]["ratio_vs_fp32"].get<double>(), 3.0);
  EXPECT_GT(codecs[0]["encode_gb_s"].get<double>(), 0);
  EXPECT_FALSE(report["machine"]["cpu"].get<std::string>().empty());

  std::ifstream markdown_file(dir / "bench-suite.md");
  std::stringstream markdown;
  markdown << markdown_file.rdbuf();
  for (const char* heading : {"| monolithic_int8 |", "| int8+zstd |", "aggregate tok/s", "encode GB/s"}) {
    EXPECT_NE(markdown.str().find(heading), std::string::npos) << heading << "\n" << markdown.str();
  }
}

TEST(BenchSuiteTest, BadSessionCountIsAUsageError) {
  const testing::CommandResult run = testing::RunProgram("tandem", {"bench-suite", "--sessions", "0"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_NE(run.err.find("--sessions"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace tandem
