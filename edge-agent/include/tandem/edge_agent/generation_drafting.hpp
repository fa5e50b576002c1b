// One generation's speculative decoding on the edge: its drafter, how many tokens each step drafts (a
// fixed number, or planned from the measured acceptance, step times and drafting cost), and the metrics of
// what the steps kept. The tokens that come out are the model's whatever is drafted: drafting only changes
// how many a round trip yields.
#pragma once

#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/edge_agent/edge_metrics.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/scheduler/draft_planner.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::edge_agent {

// Step time against drafted tokens, fitted online (least squares with exponential forgetting): a step
// with n drafts is predicted to take base + n x per_draft ms.
class StepTimeModel {
 public:
  // Seeded with the planner's predicted time per step (when there is one, > 0), so that the first plan has
  // something to go by.
  explicit StepTimeModel(double predicted_step_ms);
  void Observe(int drafts, double ms);
  double base_ms() const;
  double per_draft_ms() const;

 private:
  double weight_ = 0, sum_n_ = 0, sum_nn_ = 0, sum_ms_ = 0, sum_n_ms_ = 0;
};

// What the generations drafting with the edge's default drafter taught, across requests: the acceptance
// and the drafter's time per token, which the planner's cost model takes (scheduler::DraftInputs).
// Thread-safe: every generation reports here.
class DraftStats {
 public:
  // A step's drafts and how many the model kept.
  void Observe(int drafted, int kept);
  // The drafter's time per token, measured on one proposal.
  void ObserveDraftTime(double ms_per_token);
  // The planner's draft inputs: disabled without a drafter (`enabled` false).
  scheduler::DraftInputs Inputs(bool enabled, int max_drafts) const;

 private:
  mutable std::mutex mutex_;
  scheduler::AcceptanceEstimate acceptance_;
  double draft_token_ms_ = 0;
};

class GenerationDrafting {
 public:
  // `draft_tokens`: N drafts every step, scheduler::kAutoDraftTokens plans them. `predicted_step_ms`: the
  // plan's time per step (per token x tokens per step). `metrics` may be null (the CLI).
  GenerationDrafting(const DraftModels& models, int draft_tokens, int capacity, double predicted_step_ms,
                     EdgeMetrics* metrics, const Clock& clock);
  // Reports every step to `stats` too (the default drafter's generations).
  void ReportTo(DraftStats* stats) { stats_ = stats; }
  ~GenerationDrafting();

  // The split's cut now: early-exit drafting exits there (its drafter is rebuilt when the cut moved).
  Status UseCut(int cut);
  // A DraftSource: the drafts of the next step, at most `max_tokens`. A drafter that fails drafts nothing.
  std::vector<int> Propose(std::span<const int> context, int max_tokens);
  // A step's drafts and outcome, and its time (edge, wire and tail; not drafting); < 0: not a decode
  // step's (the prefill).
  void Observe(int drafted, const VerifyOutcome& outcome, double step_ms);

  int drafted() const { return drafted_; }
  int kept() const { return kept_; }

 private:
  const DraftModels& models_;
  const int capacity_;
  EdgeMetrics* metrics_;
  DraftStats* stats_ = nullptr;
  const Clock& clock_;
  int cut_ = -1;
  std::unique_ptr<Drafter> drafter_;
  scheduler::DraftLengthPolicy policy_;
  StepTimeModel step_time_;
  double draft_token_ms_ = 0;  // EWMA of the drafter's time per token
  int drafted_ = 0;
  int kept_ = 0;
  int drafting_steps_ = 0;  // steps that carried drafts (the slow start's doublings)
};

}  // namespace tandem::edge_agent
