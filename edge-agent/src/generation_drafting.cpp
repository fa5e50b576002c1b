#include "tandem/edge_agent/generation_drafting.hpp"

#include <algorithm>

#include "tandem/base/log.hpp"

namespace tandem::edge_agent {
namespace {

constexpr double kForgetting = 0.9;          // per observation: about the last ten steps count
constexpr double kDraftTimeSmoothing = 0.2;  // EWMA weight of the newest drafting time

// Moves the drafting-time average toward `sample` (the first sample sets it).
void SmoothDraftTime(double& average, double sample) {
  average = average == 0 ? sample : (1 - kDraftTimeSmoothing) * average + kDraftTimeSmoothing * sample;
}

}  // namespace

StepTimeModel::StepTimeModel(double predicted_step_ms) {
  // No prediction (a forced or fixed split): the first steps measured are all there is. A seed of 0 ms
  // would make the first drafted step look as if every draft cost its whole time.
  if (predicted_step_ms > 0) Observe(0, predicted_step_ms);
}

void StepTimeModel::Observe(int drafts, double ms) {
  weight_ = kForgetting * weight_ + 1;
  sum_n_ = kForgetting * sum_n_ + drafts;
  sum_nn_ = kForgetting * sum_nn_ + double{1} * drafts * drafts;
  sum_ms_ = kForgetting * sum_ms_ + ms;
  sum_n_ms_ = kForgetting * sum_n_ms_ + drafts * ms;
}

double StepTimeModel::per_draft_ms() const {
  const double variance = weight_ * sum_nn_ - sum_n_ * sum_n_;
  // Too few distinct draft lengths seen to tell a slope: a draft is assumed free, the optimistic guess
  // that the planner corrects as soon as lengths vary.
  if (variance <= 1e-9 * std::max(1.0, weight_ * sum_nn_)) return 0;
  return std::max(0.0, (weight_ * sum_n_ms_ - sum_n_ * sum_ms_) / variance);
}

double StepTimeModel::base_ms() const {
  if (weight_ == 0) return 0;
  return std::max(0.0, (sum_ms_ - per_draft_ms() * sum_n_) / weight_);
}

void DraftStats::Observe(int drafted, int kept) {
  const std::lock_guard lock(mutex_);
  acceptance_.Observe(drafted, kept);
}

void DraftStats::ObserveDraftTime(double ms_per_token) {
  const std::lock_guard lock(mutex_);
  SmoothDraftTime(draft_token_ms_, ms_per_token);
}

scheduler::DraftInputs DraftStats::Inputs(bool enabled, int max_drafts) const {
  const std::lock_guard lock(mutex_);
  return {.enabled = enabled,
          .acceptance = acceptance_.value(),
          .draft_token_ms = draft_token_ms_,
          .max_drafts = max_drafts};
}

GenerationDrafting::GenerationDrafting(const DraftModels& models, int draft_tokens, int capacity,
                                       double predicted_step_ms, EdgeMetrics* metrics, const Clock& clock)
    : models_(models),
      capacity_(capacity),
      metrics_(metrics),
      clock_(clock),
      policy_(scheduler::DraftPolicyOptions{.draft_tokens = draft_tokens}),
      step_time_(predicted_step_ms) {}

GenerationDrafting::~GenerationDrafting() = default;

Status GenerationDrafting::UseCut(int cut) {
  if (drafter_ && (cut == cut_ || models_.spec().kind != DraftKind::kEarlyExit)) return Status::Ok();
  TANDEM_ASSIGN_OR_RETURN(drafter_, models_.Create(cut, capacity_));
  cut_ = cut;
  return Status::Ok();
}

std::vector<int> GenerationDrafting::Propose(std::span<const int> context, int max_tokens) {
  if (!drafter_) return {};
  const scheduler::DraftCosts costs{.round_trip_ms = 0,
                                    .step_ms = step_time_.base_ms(),
                                    .row_ms = step_time_.per_draft_ms(),
                                    .draft_token_ms = draft_token_ms_};
  int wanted = std::min(policy_.Next(costs), max_tokens);
  // Slow start: a planned length doubles from 2 with each step that drafted, so that a drafter that
  // guesses badly costs a few short drafts before the estimates know it, not several long ones.
  if (policy_.automatic()) wanted = std::min(wanted, 2 << std::min(drafting_steps_, 5));
  if (wanted <= 0) return {};
  const Clock::TimePoint start = clock_.Now();
  Result<std::vector<int>> draft = drafter_->Propose(context, wanted);
  if (!draft.ok()) {
    Log(LogLevel::kWarn, "edge", "drafting failed; this step verifies nothing",
        {{"error", draft.status().message()}});
    return {};
  }
  if (!draft->empty()) {
    const double per_token = ToMilliseconds(clock_.Now() - start) / static_cast<double>(draft->size());
    SmoothDraftTime(draft_token_ms_, per_token);
    if (stats_ != nullptr) stats_->ObserveDraftTime(per_token);
  }
  return std::move(*draft);
}

void GenerationDrafting::Observe(int drafted, const VerifyOutcome& outcome, double step_ms) {
  if (step_ms >= 0) step_time_.Observe(drafted, step_ms);
  if (metrics_ != nullptr) metrics_->tokens_per_step.Observe(static_cast<double>(outcome.tokens.size()));
  if (drafted == 0) return;
  policy_.Observe(drafted, outcome.kept);
  ++drafting_steps_;
  if (stats_ != nullptr) stats_->Observe(drafted, outcome.kept);
  drafted_ += drafted;
  kept_ += outcome.kept;
  if (metrics_ != nullptr) {
    metrics_->kept_drafts.Increment(outcome.kept);
    metrics_->rejected_drafts.Increment(drafted - outcome.kept);
  }
}

}  // namespace tandem::edge_agent
