#include "tandem/edge_agent/edge_planner.hpp"

#include <nlohmann/json.hpp>

#include <limits>

#include "tandem/base/log.hpp"
#include "tandem/scheduler/scheduler_api.hpp"
#include "tandem/services/http_client.hpp"

namespace tandem::edge_agent {
namespace {

nlohmann::json CandidateJson(const scheduler::Candidate& candidate, int n_layers) {
  return {{"choice", candidate.Describe()},
          {"local", candidate.local()},
          {"cloud", candidate.endpoint},
          {"cut", candidate.local() ? n_layers : candidate.cut},
          {"tail_end", candidate.private_output() ? nlohmann::json(candidate.end) : nlohmann::json()},
          {"codec", candidate.local() ? "" : candidate.codec.Name()},
          {"predicted_ttft_ms", candidate.prefill_ms},
          {"predicted_token_ms", candidate.decode_ms},
          {"draft_tokens", candidate.draft_tokens},
          {"tokens_per_step", candidate.tokens_per_step}};
}

}  // namespace

EdgePlanner::EdgePlanner(ModelShape shape, ComputeProfile edge_profile, TailSet& tails,
                         EdgePlannerOptions options, const Clock& clock)
    : tails_(tails), shape_(shape), options_(options), stabilizer_(clock, options.hysteresis) {
  inputs_.n_layers = shape.n_layers;
  inputs_.dim = shape.dim;
  inputs_.kv_bytes_per_position_per_block = shape.kv_bytes_per_position_per_block;
  inputs_.edge_int8_blocks = shape.edge_int8_blocks;
  inputs_.edge = std::move(edge_profile);
  inputs_.constraints = std::move(options.constraints);
  inputs_.objective = options.objective;
  inputs_.default_bandwidth_bytes_per_ms = options.default_bandwidth_bytes_per_ms;
}

scheduler::PlanInputs EdgePlanner::CurrentInputs(int prompt_tokens, int expected_tokens) const {
  scheduler::PlanInputs inputs = inputs_;
  inputs.prompt_tokens = prompt_tokens;
  inputs.expected_tokens = expected_tokens;
  if (options_.draft) inputs.draft = options_.draft();
  const bool honour_breakers = tails_.BreakersLeaveATail();
  for (const auto& [endpoint, link] : tails_.All()) {
    const std::optional<TailSnapshot> tail = link->monitor.tail();
    // A tail counts once it has reported its compute; until then it cannot be predicted.
    if (!tail || tail->stats.profile.decode_block_ms.size() != static_cast<size_t>(inputs.n_layers)) continue;
    inputs.tails.push_back(
        {.endpoint = endpoint,
         .profile = tail->stats.profile,
         .held_first = static_cast<int>(tail->hello.held_first),
         .held_last = tail->hello.HoldsEveryBlock() ? -1 : static_cast<int>(tail->hello.held_last),
         .utilization = tail->stats.utilization,
         .max_rows = tail->hello.max_rows,
         .free_kv_bytes = tail->stats.free_kv_bytes,
         .codecs = tail->hello.codecs,
         .link = link->PlanningEstimate(honour_breakers)});
  }
  return inputs;
}

Result<scheduler::Candidate> EdgePlanner::Choose(int prompt_tokens, int expected_tokens) {
  if (!options_.scheduler.empty()) {
    auto planned = AskScheduler(prompt_tokens, expected_tokens);
    const std::lock_guard lock(mutex_);
    ++plans_;
    last_prompt_tokens_ = prompt_tokens;
    last_expected_tokens_ = expected_tokens;
    if (planned.ok()) {
      ++scheduler_plans_;
      if (!scheduler_error_.empty()) {
        Log(LogLevel::kInfo, "edge", "planning with the scheduler again",
            {{"scheduler", options_.scheduler}});
      }
      scheduler_error_.clear();
      current_ = *planned;
      return planned;
    }
    if (scheduler_error_ != planned.status().message()) {
      Log(LogLevel::kWarn, "edge", "no plan from the scheduler: planning locally",
          {{"scheduler", options_.scheduler}, {"error", planned.status().message()}});
    }
    scheduler_error_ = planned.status().message();
    return PlanLocked(prompt_tokens, expected_tokens);
  }
  const std::lock_guard lock(mutex_);
  last_prompt_tokens_ = prompt_tokens;
  last_expected_tokens_ = expected_tokens;
  ++plans_;
  return PlanLocked(prompt_tokens, expected_tokens);
}

void EdgePlanner::Refresh() {
  const std::lock_guard lock(mutex_);
  // With a working scheduler, plans are its to make (one request each, not one per probe).
  if (!options_.scheduler.empty() && scheduler_error_.empty()) return;
  (void)PlanLocked(last_prompt_tokens_, last_expected_tokens_);  // nothing feasible: the next request says
}

Result<scheduler::Candidate> EdgePlanner::AskScheduler(int prompt_tokens, int expected_tokens) {
  scheduler::PlanRequest request{.fingerprint = shape_.fingerprint,
                                 .n_layers = shape_.n_layers,
                                 .dim = shape_.dim,
                                 .kv_bytes_per_position_per_block = shape_.kv_bytes_per_position_per_block,
                                 .profile = inputs_.edge,
                                 .edge_int8_blocks = shape_.edge_int8_blocks,
                                 .constraints = inputs_.constraints,
                                 .objective = options_.objective_text,
                                 .prompt_tokens = prompt_tokens,
                                 .expected_tokens = expected_tokens,
                                 .draft = options_.draft ? options_.draft() : scheduler::DraftInputs{}};
  const bool honour_breakers = tails_.BreakersLeaveATail();
  for (const auto& [endpoint, link] : tails_.All()) {
    const scheduler::LinkEstimate estimate = link->PlanningEstimate(honour_breakers);
    scheduler::LinkReport report{.endpoint = endpoint, .up = estimate.up};
    if (estimate.rtt_ms > 0) report.rtt_ms = estimate.rtt_ms;
    if (estimate.bandwidth_bytes_per_ms > 0)
      report.bandwidth_mbit_s = estimate.bandwidth_bytes_per_ms * 8 / 1000;
    request.links.push_back(std::move(report));
  }
  services::HttpClientRequest ask{.method = "POST",
                                  .target = "/v1/plan",
                                  .body = scheduler::PlanRequestToJson(request).dump(),
                                  .timeout = options_.scheduler_timeout,
                                  .tls = options_.scheduler_tls};
  if (options_.scheduler_signer) options_.scheduler_signer->Sign(ask);
  services::HttpReply reply;
  TANDEM_RETURN_IF_ERROR(services::HttpExchange(options_.scheduler, ask, reply));
  const nlohmann::json body = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (reply.status != 200 || !body.is_object()) {
    const std::string why =
        body.is_object() && body.contains("error") ? body["error"].value("message", "") : "";
    return Unavailable("the scheduler answered " + std::to_string(reply.status) +
                       (why.empty() ? "" : ": " + why));
  }
  try {
    if (body.at("local").get<bool>()) {
      return scheduler::Candidate{.cut = shape_.n_layers,
                                  .prefill_ms = body.value("predicted_ttft_ms", 0.0),
                                  .decode_ms = body.value("predicted_token_ms", 0.0)};
    }
    const std::string endpoint = body.at("tail").get<std::string>();
    TANDEM_ASSIGN_OR_RETURN(const ActivationCodec codec,
                            ParseActivationCodec(body.at("codec").get<std::string>()));
    const int cut = body.at("cut").get<int>();
    if (cut < 0 || cut >= shape_.n_layers)
      return Unavailable("the scheduler's plan has cut " + std::to_string(cut));
    const int end = body.value("tail_end", 0);
    if (end != 0 && (end <= cut || end > shape_.n_layers))
      return Unavailable("the scheduler's plan has tail end " + std::to_string(end));
    if (inputs_.constraints.private_output && end == 0) {
      return Unavailable("the scheduler's plan is not private-output (an older scheduler?)");
    }
    if (tails_.Get(endpoint) == nullptr) return Unavailable("too many tails to add " + endpoint);
    return scheduler::Candidate{.tail = 0,
                                .endpoint = endpoint,
                                .cut = cut,
                                .end = end,
                                .codec = codec,
                                .prefill_ms = body.value("predicted_ttft_ms", 0.0),
                                .decode_ms = body.value("predicted_token_ms", 0.0)};
  } catch (const nlohmann::json::exception& error) {
    return Unavailable(std::string("the scheduler's plan is malformed: ") + error.what());
  }
}

Result<scheduler::Candidate> EdgePlanner::PlanLocked(int prompt_tokens, int expected_tokens) {
  TANDEM_ASSIGN_OR_RETURN(scheduler::Plan plan,
                          scheduler::MakePlan(CurrentInputs(prompt_tokens, expected_tokens)));
  scheduler::Candidate chosen = stabilizer_.Choose(plan);
  if (current_ && !current_->SameChoice(chosen)) ++switches_;
  current_ = chosen;
  last_plan_ = std::move(plan);
  return chosen;
}

Result<EdgePlanner::MoveAdvice> EdgePlanner::AdviseMove(const scheduler::Candidate& current, int positions,
                                                        int remaining) {
  const std::lock_guard lock(mutex_);
  TANDEM_ASSIGN_OR_RETURN(const scheduler::Plan plan,
                          scheduler::MakePlan(CurrentInputs(positions, remaining)));
  MoveAdvice advice{.best = current, .stay_ms = std::numeric_limits<double>::infinity()};
  if (const scheduler::Candidate* now = plan.Find(current)) advice.stay_ms = now->decode_ms * remaining;
  advice.move_ms = std::numeric_limits<double>::infinity();
  for (const scheduler::Candidate& candidate : plan.candidates) {
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

Result<scheduler::Candidate> EdgePlanner::Alternative(const scheduler::Candidate& failed, int positions,
                                                      int remaining) {
  const std::lock_guard lock(mutex_);
  scheduler::PlanInputs inputs = CurrentInputs(positions, std::max(remaining, 1));
  std::erase_if(inputs.tails,
                [&](const scheduler::TailState& tail) { return tail.endpoint == failed.endpoint; });
  TANDEM_ASSIGN_OR_RETURN(const scheduler::Plan plan, scheduler::MakePlan(inputs));
  return plan.best;
}

nlohmann::json EdgePlanner::Describe() const {
  const std::lock_guard lock(mutex_);
  nlohmann::json out = {{"plans", plans_}, {"switches", switches_}};
  if (!options_.scheduler.empty()) {
    out["scheduler"] = {
        {"address", options_.scheduler}, {"plans", scheduler_plans_}, {"error", scheduler_error_}};
  }
  if (current_) out["current"] = CandidateJson(*current_, inputs_.n_layers);
  if (last_plan_) {
    out["best_prefill"] = CandidateJson(last_plan_->best_prefill, inputs_.n_layers);
    out["best_decode"] = CandidateJson(last_plan_->best_decode, inputs_.n_layers);
    nlohmann::json candidates = nlohmann::json::array();
    for (size_t i = 0; i < last_plan_->candidates.size() && i < 5; ++i) {
      candidates.push_back(CandidateJson(last_plan_->candidates[i], inputs_.n_layers));
    }
    out["top_candidates"] = std::move(candidates);
  }
  out["tails"] = tails_.Describe();
  return out;
}

}  // namespace tandem::edge_agent
