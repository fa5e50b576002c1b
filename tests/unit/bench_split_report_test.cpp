// tandem bench-split's figures from hand-made records: which requests count as steady state, the settled
// adaptive plan, when the planner switched to it and first used it, the best static split, what drafting
// did per plan, and the exact table rows, JSON and plans.csv it writes.
#include "bench_split_report.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "test_env.hpp"

namespace tandem::cli {
namespace {

using namespace std::chrono_literals;

const netem::LinkConditions kSlow{.rate_bps = 10'000'000, .rtt = 40ms};

RequestRecord Answered(std::string mode, std::string plan, double start_s, double total_ms, int phase = 1) {
  return {.start_s = start_s,
          .end_s = start_s + total_ms / 1000,
          .phase = phase,
          .mode = std::move(mode),
          .status = 200,
          .plan = std::move(plan),
          .ttft_ms = total_ms / 4,
          .token_ms = 2,
          .total_ms = total_ms};
}

// Phase 1 runs from 10 s to 30 s; the lead is 5 s.
const PhaseWindow kPhase{.index = 1, .start_s = 10, .end_s = 30, .conditions = kSlow};

std::vector<RequestRecord> Records() {
  std::vector<RequestRecord> records = {
      Answered("adaptive", "k=1 fp32", 11, 999),  // in the lead: not steady
      Answered("adaptive", "k=1 int8", 16, 100),
      Answered("adaptive", "k=1 int8", 18, 120),
      Answered("adaptive", "local", 20, 500),
      Answered("k=1 int8", "k=1 int8", 17, 90),
      Answered("k=1 int8", "k=1 int8", 21, 110),
      Answered("local", "local", 19, 400),
      Answered("adaptive", "k=1 int8", 2, 50, /*phase=*/0),  // another phase
  };
  RequestRecord straddling = Answered("k=2 fp32", "k=2 fp32", 29, 10);
  straddling.straddles = true;
  records.push_back(straddling);
  RequestRecord failed = Answered("adaptive", "", 22, 30000);
  failed.status = 503;
  records.push_back(failed);
  // Began before the change and moved to the settled plan 1.5 s after it.
  RequestRecord moved = Answered("adaptive", "k=3 fp32", 9, 3000, /*phase=*/0);
  moved.move_log = {{2.5, "k=1 int8 @tcp://tail"}};
  records.push_back(moved);
  return records;
}

TEST(BenchSplitReportTest, SummarizesTheSteadyStateOfAPhase) {
  const PlanChoices choices = {{9.9, "k=3 fp32"}, {10.4, "local"}, {10.8, "k=1 int8"}, {31, "k=1 int8"}};
  const PhaseSummary summary = SummarizePhase(kPhase, 5, Records(), choices);
  EXPECT_EQ(summary.settled, "k=1 int8");
  EXPECT_NEAR(summary.switched_s, 0.8, 1e-9);
  EXPECT_NEAR(summary.first_use_s, 1.5, 1e-9);
  EXPECT_EQ(summary.failed, 1);
  EXPECT_EQ(summary.adaptive.count, 3);
  EXPECT_DOUBLE_EQ(summary.adaptive.total_ms, 120);
  ASSERT_EQ(summary.statics.size(), 2u);  // the straddling request is left out
  EXPECT_EQ(summary.statics.at("k=1 int8").count, 2);
  EXPECT_DOUBLE_EQ(summary.statics.at("k=1 int8").total_ms, 100);
  EXPECT_EQ(summary.best_static, "k=1 int8");
  EXPECT_DOUBLE_EQ(summary.ratio_to_best_static, 1.2);
}

TEST(BenchSplitReportTest, PrintsTheRowAndJson) {
  const PhaseSummary summary = SummarizePhase(kPhase, 5, Records(), {{12, "k=1 int8"}});
  EXPECT_EQ(PhaseTableRow(summary),
            "| 1 | 10 Mbit/s 40 ms | k=1 int8 (3 req, 1 failed) | 2.00 s / 1.50 s | 30.0 / 2.00 / 120.0 "
            "(0.0 / 0.00) | k=1 int8: 100.00 | 1.20 |\n");
  const nlohmann::json json = ToJson(summary);
  EXPECT_EQ(json["phase"], 1);
  EXPECT_EQ(json["link"], "10 Mbit/s 40 ms");
  EXPECT_EQ(json["adaptive_plan"], "k=1 int8");
  EXPECT_EQ(json["adaptive"]["count"], 3);
  EXPECT_EQ(json["static"]["local"]["total_ms"], 400.0);
  EXPECT_EQ(json["best_static"], "k=1 int8");
  EXPECT_EQ(json["failed"], 1);
}

TEST(BenchSplitReportTest, APhaseWithoutRequestsHasDashes) {
  const PhaseWindow down{.index = 4, .start_s = 100, .end_s = 120, .conditions = {.up = false}};
  const PhaseSummary summary = SummarizePhase(down, 5, {}, {});
  EXPECT_EQ(summary.settled, "");
  EXPECT_EQ(summary.switched_s, -1);
  EXPECT_EQ(summary.first_use_s, -1);
  EXPECT_EQ(PhaseTableRow(summary),
            "| 4 | down |  (0 req, 0 failed) | - / - | 0.0 / 0.00 / 0.0 (0.0 / 0.00) | - | - |\n");
}

TEST(BenchSplitReportTest, WhileTheLinkIsDownTheLeadDoesNotApply) {
  const PhaseWindow down{.index = 1, .start_s = 10, .end_s = 30, .conditions = {.up = false}};
  EXPECT_EQ(SummarizePhase(down, 5, Records(), {}).adaptive.count, 4);
}

// A steady request of phase 1 on k=2 fp32 (named `mode`, with or without a drafter): 16 tokens in `steps`
// model steps, `accepted` of `drafted` drafts kept.
RequestRecord Drafted(std::string mode, double start_s, double tokens_per_second, int drafted, int accepted,
                      int steps) {
  RequestRecord record = Answered(std::move(mode), "k=2 fp32", start_s, 1000);
  record.token_ms = 1000 / tokens_per_second;
  record.completion_tokens = 16;
  record.drafted_tokens = drafted;
  record.accepted_tokens = accepted;
  record.model_steps = steps;
  return record;
}

std::vector<RequestRecord> DraftedRecords() {
  return {
      Drafted("k=2 fp32", 16, 10, 0, 0, 16),
      Drafted("k=2 fp32", 18, 12, 0, 0, 16),
      Drafted("k=2 fp32", 20, 8, 0, 0, 16),
      Drafted("k=2 fp32 draft=ngram", 17, 20, 12, 6, 8),
      Drafted("k=2 fp32 draft=ngram", 19, 30, 20, 12, 4),
      Drafted("k=2 fp32 draft=ngram", 21, 25, 8, 2, 8),
      Drafted("k=3 fp32 draft=ngram", 22, 40, 10, 10, 2),  // k=3 without drafting was not measured
  };
}

TEST(BenchSplitReportTest, MeasuresWhatDraftingDid) {
  const PhaseSummary summary = SummarizePhase(kPhase, 5, DraftedRecords(), {});
  const Medians& plain = summary.statics.at("k=2 fp32");
  EXPECT_DOUBLE_EQ(plain.tokens_per_second, 10);
  EXPECT_DOUBLE_EQ(plain.tokens_per_step, 1);
  EXPECT_EQ(plain.acceptance, -1);  // nothing drafted
  const Medians& drafted = summary.statics.at("k=2 fp32 draft=ngram");
  EXPECT_DOUBLE_EQ(drafted.tokens_per_second, 25);
  EXPECT_DOUBLE_EQ(drafted.tokens_per_step, 2);  // of 2, 4 and 2
  EXPECT_DOUBLE_EQ(drafted.drafted_tokens, 12);  // of 12, 20 and 8
  EXPECT_DOUBLE_EQ(drafted.acceptance, 0.5);     // 20 kept of 40, over the requests
  EXPECT_DOUBLE_EQ(SpeedupVsNoDraft(summary, "k=2 fp32 draft=ngram"), 2.5);
  EXPECT_EQ(SpeedupVsNoDraft(summary, "k=2 fp32"), 0);
  EXPECT_EQ(SpeedupVsNoDraft(summary, "k=3 fp32 draft=ngram"), 0);
}

TEST(BenchSplitReportTest, PrintsAndWritesThePlanFigures) {
  const PhaseSummary summary = SummarizePhase(kPhase, 5, DraftedRecords(), {});
  EXPECT_EQ(PlanTableRows(summary),
            "| 1 | 10 Mbit/s 40 ms | k=2 fp32 | 3 | 10.0 | 1.00 | 0 | - | - | 1000.0 |\n"
            "| 1 | 10 Mbit/s 40 ms | k=2 fp32 draft=ngram | 3 | 25.0 | 2.00 | 12 | 0.50 | 2.50x | 1000.0 |\n"
            "| 1 | 10 Mbit/s 40 ms | k=3 fp32 draft=ngram | 1 | 40.0 | 8.00 | 10 | 1.00 | - | 1000.0 |\n");
  const nlohmann::json json = ToJson(summary)["static"];
  EXPECT_EQ(json["k=2 fp32 draft=ngram"]["acceptance"], 0.5);
  EXPECT_EQ(json["k=2 fp32 draft=ngram"]["speedup_vs_no_draft"], 2.5);
  EXPECT_EQ(json["k=2 fp32 draft=ngram"]["tokens_per_step"], 2.0);
  EXPECT_TRUE(json["k=2 fp32"]["acceptance"].is_null());
  EXPECT_TRUE(json["k=2 fp32"]["speedup_vs_no_draft"].is_null());

  const testing::TempDir dir;
  WritePlansCsv(dir / "plans.csv", {summary});
  std::ifstream in(dir / "plans.csv");
  std::string header, plain, drafted;
  std::getline(in, header);
  std::getline(in, plain);
  std::getline(in, drafted);
  EXPECT_EQ(
      header,
      "phase,link,rtt_ms,rate_mbit_s,plan,drafter,requests,tokens_per_second,tokens_per_step,drafted_tokens,"
      "acceptance,speedup_vs_no_draft,ttft_ms,total_ms");
  EXPECT_EQ(plain, "1,10 Mbit/s 40 ms,40,10,k=2 fp32,none,3,10,1,0,-1,0,250,1000");
  EXPECT_EQ(drafted, "1,10 Mbit/s 40 ms,40,10,k=2 fp32 draft=ngram,ngram,3,25,2,12,0.5,2.5,250,1000");
}

TEST(BenchSplitReportTest, NamesDrafters) {
  EXPECT_EQ(PlanWithDrafter("k=2 fp32", "none"), "k=2 fp32");
  EXPECT_EQ(PlanWithDrafter("k=2 fp32", "self-int8"), "k=2 fp32 draft=self-int8");
  EXPECT_EQ(PlanWithDrafter("local", "model:/m/stories260K/stories260K.bin"),
            "local draft=model:stories260K.bin");
  EXPECT_EQ(DrafterLabel("early-exit"), "early-exit");
  EXPECT_EQ(DrafterOfPlan("k=2 fp32 draft=self-int4"), "self-int4");
  EXPECT_EQ(DrafterOfPlan("k=2 fp32"), "none");
  EXPECT_EQ(DrafterOfPlan("adaptive"), "");
}

TEST(BenchSplitReportTest, NamesPlansAndLinks) {
  EXPECT_EQ(PlanName(nullptr, nullptr, 5), "local");
  EXPECT_EQ(PlanName(5, "fp32", 5), "local");
  EXPECT_EQ(PlanName(2, "int8+zstd", 5), "k=2 int8+zstd");
  EXPECT_EQ(DescribeLink({.rate_bps = 1'500'000, .rtt = 150ms}), "1.5 Mbit/s 150 ms");
  EXPECT_EQ(DescribeLink({.up = false}), "down");
}

}  // namespace
}  // namespace tandem::cli
