#include "tandem/scheduler/draft_planner.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace tandem::scheduler {
namespace {

// 1 + a + ... + a^n, summed term by term.
double SummedTokens(double a, int n) {
  double total = 0;
  for (int i = 0; i <= n; ++i) total += std::pow(a, i);
  return total;
}

TEST(ExpectedTokensPerStepTest, IsTheGeometricSum) {
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0.5, 2), 1.75);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(1, 4), 5);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0, 7), 1);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0.8, 0), 1);
  for (const double a : {0.05, 0.3, 0.5, 0.8, 0.95, 0.999}) {
    for (const int n : {1, 2, 5, 16, 64}) {
      SCOPED_TRACE("a=" + std::to_string(a) + " n=" + std::to_string(n));
      EXPECT_NEAR(ExpectedTokensPerStep(a, n), SummedTokens(a, n), 1e-12 * SummedTokens(a, n));
    }
  }
  // Just below 1 the closed form must not cancel: ~n + 1.
  EXPECT_NEAR(ExpectedTokensPerStep(1 - 1e-12, 10), 11, 1e-9);
  // Out-of-range inputs are clamped rather than trusted.
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(1.5, 3), 4);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(-0.2, 3), 1);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(std::nan(""), 3), 1);
  EXPECT_DOUBLE_EQ(ExpectedTokensPerStep(0.5, -2), 1);
}

TEST(DraftCostsTest, StepIsLinearInTheDrafts) {
  const DraftCosts costs{.round_trip_ms = 50, .step_ms = 1, .row_ms = 0.05, .draft_token_ms = 0.1};
  EXPECT_DOUBLE_EQ(costs.StepMs(0), 51);
  EXPECT_DOUBLE_EQ(costs.StepMs(4), 51.6);
}

// A far tail: the round trip dominates a step.
constexpr DraftCosts kFarTail{.round_trip_ms = 50, .step_ms = 1, .row_ms = 0.05, .draft_token_ms = 0.1};
// The same compute on a near one.
constexpr DraftCosts kNearTail{.round_trip_ms = 0.2, .step_ms = 1, .row_ms = 0.05, .draft_token_ms = 0.1};

TEST(BestDraftLengthTest, FollowsTheRoundTripAndTheAcceptance) {
  struct Case {
    std::string name;
    double acceptance;
    DraftCosts costs;
    int max_drafts;
    int want;
  };
  // Worked out by hand from (RTT + step + n x 0.15) / E(a, n).
  const std::vector<Case> cases = {
      {"far, good acceptance: as many as allowed", 0.8, kFarTail, 8, 8},
      {"far, good acceptance, room to spare: 19 drafts", 0.8, kFarTail, 64, 19},
      {"near, same compute: fewer", 0.8, kNearTail, 64, 5},
      {"near, middling acceptance", 0.5, kNearTail, 64, 2},
      {"near, poor acceptance", 0.3, kNearTail, 64, 1},
      {"far, acceptance 0.05: under 5% gain, none", 0.05, kFarTail, 64, 0},
      {"acceptance 0", 0, kFarTail, 64, 0},
      {"no drafts allowed", 0.8, kFarTail, 0, 0},
      {"max above kMaxDraftTokens is capped", 1, kFarTail, 1000, kMaxDraftTokens},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(BestDraftLength(c.acceptance, c.costs, c.max_drafts), c.want);
  }
}

TEST(BestDraftLengthTest, MinGainDecidesAMarginalDraft) {
  // One draft at a = 0.05 over 50 ms: 51.15 / 1.05 = 48.7 ms a token against 51, 4.7% faster.
  EXPECT_EQ(BestDraftLength(0.05, kFarTail, 64, /*min_gain=*/0.05), 0);
  EXPECT_EQ(BestDraftLength(0.05, kFarTail, 64, /*min_gain=*/0.04), 1);
  EXPECT_EQ(BestDraftLength(0.05, kFarTail, 64, /*min_gain=*/0), 1);
}

TEST(ChooseDraftLengthTest, AnyStepCostAndTiesToTheShortest) {
  // A step that gets much dearer past 3 drafts (say a batch size the tail runs well).
  const auto cliff = [](int n) { return 10.0 + (n > 3 ? 100.0 : n); };
  const DraftChoice choice = ChooseDraftLength(0.9, 16, 0.05, cliff);
  EXPECT_EQ(choice.drafts, 3);
  EXPECT_DOUBLE_EQ(choice.tokens_per_step, SummedTokens(0.9, 3));
  EXPECT_DOUBLE_EQ(choice.ms_per_token, 13 / SummedTokens(0.9, 3));
  // Every length equally fast (every draft kept, each row as dear as a step): no drafts.
  EXPECT_EQ(ChooseDraftLength(1, 16, 0, [](int n) { return 2.0 * (n + 1); }).drafts, 0);
  // A free step cannot be beaten.
  const DraftChoice free = ChooseDraftLength(0.9, 16, 0.05, [](int) { return 0.0; });
  EXPECT_EQ(free.drafts, 0);
  EXPECT_EQ(free.ms_per_token, 0);
}

TEST(AcceptanceEstimateTest, StartsAtThePriorAndMovesWithObservations) {
  AcceptanceEstimate estimate;
  EXPECT_DOUBLE_EQ(estimate.value(), 0.5);
  EXPECT_DOUBLE_EQ(estimate.weight(), 4);
  estimate.Observe(4, 4);
  EXPECT_GT(estimate.value(), 0.7);
  for (int i = 0; i < 50; ++i) estimate.Observe(4, 4);
  EXPECT_GT(estimate.value(), 0.99);
  // Each all-rejected step is one trial: ten half-lives of them leave ~1/1024 of the old weight.
  for (int i = 0; i < 320; ++i) estimate.Observe(4, 0);
  EXPECT_LT(estimate.value(), 0.002);
}

TEST(AcceptanceEstimateTest, CountsOnlyTheDraftsThatWereJudged) {
  // No decay to speak of: plain counts.
  AcceptanceEstimate estimate({.prior = 0.5, .prior_trials = 4, .half_life_trials = 1e12});
  estimate.Observe(4, 1);  // the first kept, the second rejected, the last two never judged: 1 in 2
  EXPECT_NEAR(estimate.weight(), 6, 1e-9);
  EXPECT_NEAR(estimate.value(), 3.0 / 6, 1e-9);
  estimate.Observe(3, 3);  // all kept: 3 in 3
  EXPECT_NEAR(estimate.weight(), 9, 1e-9);
  EXPECT_NEAR(estimate.value(), 6.0 / 9, 1e-9);
  estimate.Observe(2, 0);  // the first rejected: 0 in 1
  EXPECT_NEAR(estimate.value(), 6.0 / 10, 1e-9);
  estimate.Observe(0, 0);   // no drafts: nothing learned
  estimate.Observe(2, 7);   // kept clamped to drafted: 2 in 2
  estimate.Observe(-3, 1);  // nonsense: nothing learned
  EXPECT_NEAR(estimate.weight(), 12, 1e-9);
  EXPECT_NEAR(estimate.value(), 8.0 / 12, 1e-9);
}

TEST(AcceptanceEstimateTest, OldTrialsWeighHalfAfterAHalfLife) {
  // A prior of 0 worth 32 trials, then 32 kept drafts: the prior now weighs 16.
  AcceptanceEstimate estimate({.prior = 0, .prior_trials = 32, .half_life_trials = 32});
  estimate.Observe(32, 32);
  EXPECT_NEAR(estimate.weight(), 48, 1e-9);
  EXPECT_NEAR(estimate.value(), 32.0 / 48, 1e-12);
}

TEST(ParseDraftTokensTest, AutoOrACount) {
  EXPECT_EQ(*ParseDraftTokens("auto"), kAutoDraftTokens);
  EXPECT_EQ(*ParseDraftTokens("0"), 0);
  EXPECT_EQ(*ParseDraftTokens("8"), 8);
  EXPECT_EQ(*ParseDraftTokens("64"), kMaxDraftTokens);
  for (const char* bad : {"65", "-1", "", "four", "4x", "Auto"}) {
    SCOPED_TRACE(bad);
    const Result<int> parsed = ParseDraftTokens(bad);
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("auto or a count in 0..64"), std::string::npos);
  }
}

// The lengths `policy` asks for over `steps` steps at `costs`, every draft kept with `kept` (a fraction of
// each step's drafts, rounded down).
std::vector<int> DraftLengths(DraftLengthPolicy& policy, const DraftCosts& costs, int steps, double kept) {
  std::vector<int> lengths;
  for (int i = 0; i < steps; ++i) {
    const int drafts = policy.Next(costs);
    lengths.push_back(drafts);
    policy.Observe(drafts, static_cast<int>(drafts * kept));
  }
  return lengths;
}

TEST(DraftLengthPolicyTest, AFixedCountAlwaysDraftsIt) {
  DraftLengthPolicy policy({.draft_tokens = 3});
  EXPECT_FALSE(policy.automatic());
  EXPECT_EQ(DraftLengths(policy, kFarTail, 5, 0), std::vector<int>(5, 3));
  EXPECT_EQ(DraftLengths(policy, kNearTail, 5, 1), std::vector<int>(5, 3));
  DraftLengthPolicy none({.draft_tokens = 0});
  EXPECT_EQ(DraftLengths(none, kFarTail, 40, 1), std::vector<int>(40, 0));  // never probes
}

TEST(DraftLengthPolicyTest, AutoPlansFromTheEstimate) {
  DraftLengthPolicy policy({.max_drafts = 8});
  EXPECT_TRUE(policy.automatic());
  // The prior 0.5 over a 50 ms round trip already pays for 7 drafts.
  EXPECT_EQ(policy.Next(kFarTail), BestDraftLength(0.5, kFarTail, 8));
  EXPECT_EQ(policy.Next(kFarTail), 7);
  // The same estimate on a near tail asks for fewer.
  EXPECT_EQ(policy.Next(kNearTail), 2);
}

TEST(DraftLengthPolicyTest, ProbesWhilePlanningSaysNone) {
  DraftLengthPolicy policy({.max_drafts = 8, .probe_every = 4, .probe_drafts = 2});
  for (int i = 0; i < 100; ++i) policy.Observe(4, 0);  // the drafter is always wrong
  ASSERT_LT(policy.acceptance().value(), 0.05);
  EXPECT_EQ(DraftLengths(policy, kNearTail, 12, 0), (std::vector<int>{0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2}));
}

TEST(DraftLengthPolicyTest, ProbesSeeARiseInAcceptance) {
  DraftLengthPolicy policy({.max_drafts = 8, .probe_every = 16, .probe_drafts = 2});
  for (int i = 0; i < 100; ++i) policy.Observe(4, 0);
  ASSERT_EQ(policy.Next(kNearTail), 0);
  // The drafter turns good: only the probes can tell, and they do.
  const std::vector<int> lengths = DraftLengths(policy, kNearTail, 200, 1);
  ASSERT_EQ(lengths[14], 2);  // the first probe (the step above was the first without drafts)
  EXPECT_EQ(lengths[15], 0);
  EXPECT_GE(lengths.back(), 5);
  // And the same calls give the same lengths.
  DraftLengthPolicy again({.max_drafts = 8, .probe_every = 16, .probe_drafts = 2});
  for (int i = 0; i < 100; ++i) again.Observe(4, 0);
  again.Next(kNearTail);
  EXPECT_EQ(DraftLengths(again, kNearTail, 200, 1), lengths);
}

TEST(DraftLengthPolicyTest, NoProbesWhenNothingMayBeDrafted) {
  DraftLengthPolicy no_room({.max_drafts = 0, .probe_every = 2});
  EXPECT_EQ(DraftLengths(no_room, kFarTail, 10, 1), std::vector<int>(10, 0));
  DraftLengthPolicy no_probes({.max_drafts = 8, .probe_every = 0});
  for (int i = 0; i < 100; ++i) no_probes.Observe(4, 0);
  EXPECT_EQ(DraftLengths(no_probes, kNearTail, 40, 1), std::vector<int>(40, 0));
}

}  // namespace
}  // namespace tandem::scheduler
