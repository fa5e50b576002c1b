// tandem bench-split's figures from hand-made records: which requests count as steady state, the settled
// adaptive plan, when the planner switched to it and first used it, the best static split, and the exact
// table row and JSON it prints.
#include "bench_split_report.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

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

TEST(BenchSplitReportTest, NamesPlansAndLinks) {
  EXPECT_EQ(PlanName(nullptr, nullptr, 5), "local");
  EXPECT_EQ(PlanName(5, "fp32", 5), "local");
  EXPECT_EQ(PlanName(2, "int8+zstd", 5), "k=2 int8+zstd");
  EXPECT_EQ(DescribeLink({.rate_bps = 1'500'000, .rtt = 150ms}), "1.5 Mbit/s 150 ms");
  EXPECT_EQ(DescribeLink({.up = false}), "down");
}

}  // namespace
}  // namespace tandem::cli
