#include "tandem/edge/edge_planner.hpp"

#include <nlohmann/json.hpp>

#include <limits>

namespace tandem::edge {
namespace {

nlohmann::json CandidateJson(const sched::Candidate& candidate, int n_layers) {
  return {{"choice", candidate.Describe()},
          {"local", candidate.local()},
          {"cloud", candidate.endpoint},
          {"cut", candidate.local() ? n_layers : candidate.cut},
          {"codec", candidate.local() ? "" : candidate.codec.Name()},
          {"predicted_ttft_ms", candidate.prefill_ms},
          {"predicted_token_ms", candidate.decode_ms}};
}

}  // namespace

EdgePlanner::EdgePlanner(ModelShape shape, ComputeProfile edge_profile, const LinkMonitor* monitor,
                         const sched::LinkEstimator& link, EdgePlannerOptions options, const Clock& clock)
    : monitor_(monitor), link_(link), stabilizer_(clock, options.hysteresis) {
  inputs_.n_layers = shape.n_layers;
  inputs_.dim = shape.dim;
  inputs_.kv_bytes_per_position_per_block = shape.kv_bytes_per_position_per_block;
  inputs_.edge_int8_blocks = shape.edge_int8_blocks;
  inputs_.edge = std::move(edge_profile);
  inputs_.constraints = std::move(options.constraints);
  inputs_.objective = options.objective;
  inputs_.default_bandwidth_bytes_per_ms = options.default_bandwidth_bytes_per_ms;
}

sched::PlanInputs EdgePlanner::CurrentInputs(int prompt_tokens, int expected_tokens) const {
  sched::PlanInputs inputs = inputs_;
  inputs.prompt_tokens = prompt_tokens;
  inputs.expected_tokens = expected_tokens;
  const std::optional<TailSnapshot> tail = monitor_ ? monitor_->tail() : std::nullopt;
  // A tail counts once it has reported its compute; until then only all-local can be predicted.
  if (tail && tail->stats.profile.decode_block_ms.size() == static_cast<size_t>(inputs.n_layers)) {
    inputs.tails.push_back({.endpoint = monitor_->endpoint(),
                            .profile = tail->stats.profile,
                            .utilization = tail->stats.utilization,
                            .max_rows = tail->hello.max_rows,
                            .free_kv_bytes = tail->stats.free_kv_bytes,
                            .codecs = tail->hello.codecs,
                            .link = link_.Estimate()});
  }
  return inputs;
}

Result<sched::Candidate> EdgePlanner::Choose(int prompt_tokens, int expected_tokens) {
  const std::lock_guard lock(mutex_);
  last_prompt_tokens_ = prompt_tokens;
  last_expected_tokens_ = expected_tokens;
  ++plans_;
  return PlanLocked(prompt_tokens, expected_tokens);
}

void EdgePlanner::Refresh() {
  const std::lock_guard lock(mutex_);
  (void)PlanLocked(last_prompt_tokens_, last_expected_tokens_);  // nothing feasible: the next request says
}

Result<sched::Candidate> EdgePlanner::PlanLocked(int prompt_tokens, int expected_tokens) {
  TANDEM_ASSIGN_OR_RETURN(sched::Plan plan, sched::MakePlan(CurrentInputs(prompt_tokens, expected_tokens)));
  const std::optional<sched::Candidate> before = stabilizer_.current();
  sched::Candidate chosen = stabilizer_.Choose(plan);
  if (before && !before->SameChoice(chosen)) ++switches_;
  last_plan_ = std::move(plan);
  return chosen;
}

Result<EdgePlanner::MoveAdvice> EdgePlanner::AdviseMove(const sched::Candidate& current, int positions,
                                                        int remaining) {
  const std::lock_guard lock(mutex_);
  TANDEM_ASSIGN_OR_RETURN(const sched::Plan plan, sched::MakePlan(CurrentInputs(positions, remaining)));
  MoveAdvice advice{.best = current, .stay_ms = std::numeric_limits<double>::infinity()};
  if (const sched::Candidate* now = plan.Find(current)) advice.stay_ms = now->decode_ms * remaining;
  advice.move_ms = std::numeric_limits<double>::infinity();
  for (const sched::Candidate& candidate : plan.candidates) {
    if (candidate.SameChoice(current)) continue;
    // Moving costs about a prefill of every position so far at the new choice.
    const double move_ms = candidate.prefill_ms + candidate.decode_ms * remaining;
    if (move_ms < advice.move_ms) {
      advice.move_ms = move_ms;
      advice.best = candidate;
    }
  }
  return advice;
}

nlohmann::json EdgePlanner::Describe() const {
  const std::lock_guard lock(mutex_);
  const sched::LinkEstimate link = link_.Estimate();
  nlohmann::json out = {{"plans", plans_},
                        {"switches", switches_},
                        {"link",
                         {{"up", link.up},
                          {"rtt_ms", link.rtt_ms},
                          {"bandwidth_mbit_s", link.bandwidth_bytes_per_ms * 8 / 1000}}}};
  if (const auto& current = stabilizer_.current()) out["current"] = CandidateJson(*current, inputs_.n_layers);
  if (last_plan_) {
    out["best_prefill"] = CandidateJson(last_plan_->best_prefill, inputs_.n_layers);
    out["best_decode"] = CandidateJson(last_plan_->best_decode, inputs_.n_layers);
    nlohmann::json candidates = nlohmann::json::array();
    for (size_t i = 0; i < last_plan_->candidates.size() && i < 5; ++i) {
      candidates.push_back(CandidateJson(last_plan_->candidates[i], inputs_.n_layers));
    }
    out["top_candidates"] = std::move(candidates);
  }
  if (const std::optional<TailSnapshot> tail = monitor_ ? monitor_->tail() : std::nullopt) {
    out["tail"] = {{"utilization", tail->stats.utilization},
                   {"queue_depth", tail->stats.queue_depth},
                   {"sessions", tail->stats.sessions},
                   {"workers", tail->stats.workers},
                   {"free_kv_bytes", tail->stats.free_kv_bytes}};
  }
  return out;
}

}  // namespace tandem::edge
