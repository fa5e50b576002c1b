// The edge's step-time model for draft planning: fitted from the steps measured, seeded by a prediction
// only when there is one.
#include <gtest/gtest.h>

#include "tandem/edge_agent/generation_drafting.hpp"

namespace tandem::edge_agent {
namespace {

TEST(StepTimeModelTest, FitsBaseAndPerDraftTimeFromSteps) {
  StepTimeModel model(/*predicted_step_ms=*/0);
  EXPECT_EQ(model.base_ms(), 0);
  for (int round = 0; round < 5; ++round) {
    for (const int drafts : {2, 4, 8}) model.Observe(drafts, 35 + 0.5 * drafts);
  }
  EXPECT_NEAR(model.base_ms(), 35, 1e-6);
  EXPECT_NEAR(model.per_draft_ms(), 0.5, 1e-6);
}

// Without a prediction, the first drafted step says nothing of what a draft costs (one length only):
// not the whole step's time per draft.
TEST(StepTimeModelTest, OneDraftLengthAloneIsNotASlope) {
  StepTimeModel unseeded(0);
  unseeded.Observe(2, 36);
  EXPECT_EQ(unseeded.per_draft_ms(), 0);
  EXPECT_NEAR(unseeded.base_ms(), 36, 1e-9);
  StepTimeModel seeded(30);
  seeded.Observe(2, 36);
  EXPECT_NEAR(seeded.per_draft_ms(), 3, 0.5);
}

TEST(StepTimeModelTest, RecentStepsOutweighOldOnes) {
  StepTimeModel model(10);
  for (int i = 0; i < 40; ++i) model.Observe(i % 2 == 0 ? 0 : 4, i % 2 == 0 ? 50 : 52);
  EXPECT_NEAR(model.base_ms(), 50, 1);
  EXPECT_NEAR(model.per_draft_ms(), 0.5, 0.2);
}

}  // namespace
}  // namespace tandem::edge_agent
