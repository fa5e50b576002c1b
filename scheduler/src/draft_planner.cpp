#include "tandem/scheduler/draft_planner.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "tandem/base/strings.hpp"

namespace tandem::scheduler {
namespace {

double ClampedAcceptance(double acceptance) {
  if (std::isnan(acceptance)) return 0;
  return std::clamp(acceptance, 0.0, 1.0);
}

}  // namespace

double ExpectedTokensPerStep(double acceptance, int drafts) {
  const double a = ClampedAcceptance(acceptance);
  const int n = std::max(drafts, 0);
  if (a >= 1) return n + 1.0;
  if (a <= 0) return 1;
  // 1 - a^(n+1) through expm1 and log: exact enough as a nears 1, where the plain form cancels.
  return -std::expm1((n + 1.0) * std::log(a)) / (1 - a);
}

double DraftCosts::StepMs(int drafts) const {
  return round_trip_ms + step_ms + std::max(drafts, 0) * (row_ms + draft_token_ms);
}

DraftChoice ChooseDraftLength(double acceptance, int max_drafts, double min_gain,
                              const std::function<double(int)>& step_ms) {
  const auto choice_of = [&](int drafts) {
    const double tokens = ExpectedTokensPerStep(acceptance, drafts);
    return DraftChoice{.drafts = drafts, .tokens_per_step = tokens, .ms_per_token = step_ms(drafts) / tokens};
  };
  const DraftChoice none = choice_of(0);
  DraftChoice best = none;
  for (int drafts = 1; drafts <= std::min(max_drafts, kMaxDraftTokens); ++drafts) {
    const DraftChoice candidate = choice_of(drafts);
    if (candidate.ms_per_token < best.ms_per_token) best = candidate;
  }
  // In time per token, rate(n) >= (1 + g) x rate(0) reads ms(n) x (1 + g) <= ms(0): no division by a
  // zero-cost step.
  const bool worth_it =
      best.ms_per_token < none.ms_per_token && best.ms_per_token * (1 + min_gain) <= none.ms_per_token;
  return worth_it ? best : none;
}

int BestDraftLength(double acceptance, const DraftCosts& costs, int max_drafts, double min_gain) {
  return ChooseDraftLength(acceptance, max_drafts, min_gain, [&](int drafts) { return costs.StepMs(drafts); })
      .drafts;
}

AcceptanceEstimate::AcceptanceEstimate(AcceptanceOptions options)
    : decay_per_trial_(options.half_life_trials > 0 ? std::exp2(-1 / options.half_life_trials) : 0),
      successes_(ClampedAcceptance(options.prior) * std::max(options.prior_trials, 1e-9)),
      trials_(std::max(options.prior_trials, 1e-9)) {}

void AcceptanceEstimate::Observe(int drafted, int kept) {
  if (drafted <= 0) return;
  kept = std::clamp(kept, 0, drafted);
  const int trials = std::min(kept, drafted - 1) + 1;
  // The step's trials count whole; what came before decays by their number.
  const double decay = std::pow(decay_per_trial_, trials);
  successes_ = successes_ * decay + kept;
  trials_ = trials_ * decay + trials;
}

Result<int> ParseDraftTokens(std::string_view text) {
  if (text == "auto") return kAutoDraftTokens;
  const std::optional<int> count = ParseInt(text);
  if (!count || *count < 0 || *count > kMaxDraftTokens) {
    return InvalidArgument("draft tokens \"" + std::string(text) + "\": expected auto or a count in 0.." +
                           std::to_string(kMaxDraftTokens));
  }
  return *count;
}

DraftLengthPolicy::DraftLengthPolicy(DraftPolicyOptions options)
    : options_(options), acceptance_(options.acceptance) {
  options_.max_drafts = std::clamp(options_.max_drafts, 0, kMaxDraftTokens);
  options_.draft_tokens = std::min(options_.draft_tokens, kMaxDraftTokens);
  options_.probe_drafts = std::clamp(options_.probe_drafts, 1, std::max(options_.max_drafts, 1));
}

int DraftLengthPolicy::Next(const DraftCosts& costs) {
  if (!automatic()) return options_.draft_tokens;
  const int planned = BestDraftLength(acceptance_.value(), costs, options_.max_drafts, options_.min_gain);
  if (planned > 0 || options_.max_drafts == 0) {
    steps_without_drafts_ = 0;
    return planned;
  }
  // Planning says 0; without a step that drafts now and then the estimate could never recover.
  ++steps_without_drafts_;
  if (options_.probe_every <= 0 || steps_without_drafts_ < options_.probe_every) return 0;
  steps_without_drafts_ = 0;
  return options_.probe_drafts;
}

}  // namespace tandem::scheduler
