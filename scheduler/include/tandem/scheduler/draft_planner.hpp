// Planning the draft length of speculative decoding: how many drafted tokens a verify step should carry.
//
// A verify step with n drafts sends n + 1 rows; each draft is kept with probability a (independently,
// until the first rejection) and the step yields the kept drafts plus one token. Drafting pays when the
// step's fixed cost (the round trip above all) dominates what each extra row and each drafted token adds:
//   tokens per step  E(a, n) = 1 + a + ... + a^n
//   time per token   step_ms(n) / E(a, n)
// The acceptance a is learned from the steps themselves (AcceptanceEstimate), and DraftLengthPolicy picks
// each step's n from it.
//
// Pure: no clock, no I/O; every cost is handed in. Nothing here is thread-safe: one policy per session.
#pragma once

#include <functional>
#include <string_view>

#include "tandem/base/status.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem::scheduler {

// The most drafts a step may carry (a bound on plans, flags and requests).
inline constexpr int kMaxDraftTokens = wire::kMaxDraftTokens;
// A draft length is kept over none only if it is at least this much faster per token (relative).
inline constexpr double kDefaultDraftMinGain = 0.05;

// E(a, n) = (1 - a^(n+1)) / (1 - a), and n + 1 at a = 1: the tokens a verify step with `drafts` drafts
// yields on average when each is kept with probability `acceptance`. a is clamped to [0, 1] (NaN: 0),
// drafts < 0 count as 0.
double ExpectedTokensPerStep(double acceptance, int drafts);

// What a verify step costs, linear in its drafts n:
//   round_trip_ms + step_ms + n x (row_ms + draft_token_ms)
struct DraftCosts {
  double round_trip_ms = 0;   // per step whatever its rows: the link's RTT (0 on the device)
  double step_ms = 0;         // compute and transfer of a one-row step
  double row_ms = 0;          // what each further row adds to the step's compute and transfer
  double draft_token_ms = 0;  // the drafter's time per drafted token
  double StepMs(int drafts) const;
};

// The chosen draft length and what it predicts.
struct DraftChoice {
  int drafts = 0;
  double tokens_per_step = 1;  // E(a, drafts)
  double ms_per_token = 0;     // step_ms(drafts) / tokens_per_step
};

// The n in [0, min(max_drafts, kMaxDraftTokens)] with the least time per token (the smallest n on ties), for
// any step cost `step_ms(n)` (the planner's is not linear in n). n > 0 is chosen only if its tokens per
// millisecond beat n = 0's by the relative gain `min_gain`: rate(n) >= (1 + min_gain) x rate(0), and strictly
// more.
DraftChoice ChooseDraftLength(double acceptance, int max_drafts, double min_gain,
                              const std::function<double(int)>& step_ms);

// ChooseDraftLength(...).drafts for the linear costs of DraftCosts.
int BestDraftLength(double acceptance, const DraftCosts& costs, int max_drafts,
                    double min_gain = kDefaultDraftMinGain);

struct AcceptanceOptions {
  double prior = 0.5;            // the estimate before any step ...
  double prior_trials = 4;       // ... weighing as much as this many judged drafts
  double half_life_trials = 32;  // a judged draft weighs half as much after this many more
};

// The per-draft acceptance rate, as an exponentially weighted ratio of kept drafts to judged drafts.
class AcceptanceEstimate {
 public:
  explicit AcceptanceEstimate(AcceptanceOptions options = {});
  // A step drafted `drafted` tokens and kept the first `kept`. The drafts after the first rejected one
  // were never judged, so the step is min(kept + 1, drafted) trials with `kept` successes. kept is
  // clamped to [0, drafted]; a step without drafts teaches nothing.
  void Observe(int drafted, int kept);
  double value() const { return successes_ / trials_; }
  double weight() const { return trials_; }  // the trials behind value(), decayed

 private:
  double decay_per_trial_;
  double successes_;
  double trials_;
};

// --draft-tokens: a fixed N, or "auto" (kAutoDraftTokens) to plan each step's length.
inline constexpr int kAutoDraftTokens = -1;
inline constexpr const char* kDraftTokensFlagHelp =
    "tokens drafted per step: N (0..64) always, or auto: planned from the measured acceptance, step time "
    "and drafting time (none when drafting does not pay)";
// "auto" -> kAutoDraftTokens, "N" -> N in [0, kMaxDraftTokens]; InvalidArgument otherwise.
Result<int> ParseDraftTokens(std::string_view text);

struct DraftPolicyOptions {
  int draft_tokens = kAutoDraftTokens;  // >= 0: always draft exactly this many
  int max_drafts = 8;                   // auto: the longest draft planned (clamped to kMaxDraftTokens)
  double min_gain = kDefaultDraftMinGain;
  // Auto: while planning says 0, every probe_every-th step drafts probe_drafts anyway, so that a rise in
  // acceptance is seen (probe_every <= 0: never probe).
  int probe_every = 16;
  int probe_drafts = 2;
  AcceptanceOptions acceptance;
};

// Each step's draft length from the acceptance seen so far and the step's costs. Deterministic: the same
// calls give the same lengths.
class DraftLengthPolicy {
 public:
  explicit DraftLengthPolicy(DraftPolicyOptions options = {});
  // The drafts the next step should carry, given what a step costs now.
  int Next(const DraftCosts& costs);
  // What that step did: `drafted` tokens sent (the drafter may have proposed fewer than asked), the
  // first `kept` kept.
  void Observe(int drafted, int kept) { acceptance_.Observe(drafted, kept); }
  const AcceptanceEstimate& acceptance() const { return acceptance_; }
  bool automatic() const { return options_.draft_tokens < 0; }

 private:
  DraftPolicyOptions options_;
  AcceptanceEstimate acceptance_;
  int steps_without_drafts_ = 0;  // consecutive steps auto planning gave 0
};

}  // namespace tandem::scheduler
