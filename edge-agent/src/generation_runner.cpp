#include "tandem/edge_agent/generation_runner.hpp"

#include <algorithm>
#include <random>
#include <thread>

#include "tandem/base/log.hpp"
#include "tandem/edge_agent/fixed_split.hpp"
#include "tandem/edge_agent/generation_drafting.hpp"
#include "tandem/edge_agent/movable_split.hpp"
#include "tandem/edge_agent/stop_scanner.hpp"
#include "tandem/edge_agent/tail_set.hpp"
#include "tandem/engine/transformer.hpp"

namespace tandem::edge_agent {
namespace {

class GenerationRunner final : public FailoverHost {
 public:
  GenerationRunner(const GenerationContext& context, const GenerationRequest& request, RequestTails& tails,
                   const TextSink& emit);
  Result<Completion> Run();

 private:
  // The prompt and every token through the split; the completion's text, finish reason and speed.
  Status GenerateText();
  // One model step: re-plans when due, and hands a failed step to the failover policy.
  Result<VerifyOutcome> Step(std::span<const int> tokens, std::span<const int> draft);
  // The drafts of the next step (none without a drafter).
  std::vector<int> Draft(std::span<const int> context, int max_tokens);
  // A sampled token: timings, its text through the stop scanner to the client; false ends the generation.
  bool OnToken(int token);
  // Re-plans mid-generation: moves when another choice is predicted to finish the rest sooner, replay
  // included, by the hysteresis margin. A failed move leaves the split where it was.
  bool MaybeMove(int remaining);
  // A failed step or start: moves off the tail when the policy covers the failure, else returns it. A
  // request's forced split never moves.
  Status FallBack(Status failure);
  void RecordMove(const char* reason);
  void LogCompletion(const Status& status) const;
  // Metrics and connections once the split is gone; the completion, or the error that ended it.
  Result<Completion> Settle(const Status& status);

  // FailoverHost.
  void Penalize(const scheduler::Candidate& failed, const Status& failure) override;
  Result<scheduler::Candidate> Alternative(const scheduler::Candidate& failed) override;
  Status MoveTo(const scheduler::Candidate& failed, const scheduler::Candidate& next,
                const Status& failure) override;
  void Pause(Clock::Duration pause) override { std::this_thread::sleep_for(pause); }

  const GenerationContext& context_;
  const CompletionRequest& request_;
  const GenerationRequest& generation_;
  RequestTails& tails_;
  const TextSink& emit_;
  const int layers_;
  const int positions_;  // the prompt and every token but the last
  const Clock::TimePoint admitted_at_;
  Completion completion_;
  SamplingParams sampling_;
  std::unique_ptr<MovableSplit> split_;
  std::unique_ptr<GenerationDrafting> drafting_;
  int next_replan_at_;  // tokens generated
  StopScanner scanner_;
  // The tokens that end the text and never show: the tokenizer's end-of-text ids and the request's own
  // (chat's end-of-turn tokens).
  std::vector<int> stop_ids_;
  Clock::TimePoint last_token_at_;
  int previous_ = 0;
  bool stopped_ = false;
  bool client_gone_ = false;
  bool healthy_ = true;  // false: the connections may hold replies in flight
};

GenerationRunner::GenerationRunner(const GenerationContext& context, const GenerationRequest& request,
                                   RequestTails& tails, const TextSink& emit)
    : context_(context),
      request_(request.request),
      generation_(request),
      tails_(tails),
      emit_(emit),
      layers_(context.model->n_layers()),
      positions_(static_cast<int>(request.ids.size()) + request.request.max_tokens - 1),
      admitted_at_(context.clock.Now()),
      next_replan_at_(context.replan_tokens),
      scanner_(request.request.stop),
      stop_ids_(context.tokenizer.EndOfTextIds()) {
  stop_ids_.insert(stop_ids_.end(), request_.stop_token_ids.begin(), request_.stop_token_ids.end());
  completion_.prompt_tokens = static_cast<int>(request.ids.size());
  completion_.seed = request_.seed.value_or(std::random_device{}());
  completion_.plan = request.first;
  sampling_ = {request_.temperature, request_.top_p, completion_.seed};
}

Result<Completion> GenerationRunner::Run() {
  context_.metrics.plans.Add({{"choice", generation_.first.local() ? "local" : "split"}}).Increment();
  context_.metrics.cut.Set(CutOf(generation_.first, layers_));
  context_.metrics.active.Increment();
  if (generation_.drafts != nullptr && generation_.drafts->spec().kind != DraftKind::kNone) {
    drafting_ = std::make_unique<GenerationDrafting>(
        *generation_.drafts, generation_.draft_tokens, positions_,
        generation_.first.decode_ms * generation_.first.tokens_per_step, &context_.metrics, context_.clock);
    drafting_->ReportTo(generation_.draft_stats);
    completion_.drafter = generation_.drafts->spec().Name();
  }
  split_ = std::make_unique<MovableSplit>(
      context_.model, positions_,
      [this](const scheduler::Candidate& choice) -> Result<std::unique_ptr<TailRunner>> {
        if (!choice.local()) return tails_.Open(choice, sampling_, positions_);
        return std::unique_ptr<TailRunner>(
            std::make_unique<LocalTail>(context_.model, layers_, positions_, sampling_));
      },
      [this](TailRunner& tail) { tails_.Retire(tail); });
  const Status status = GenerateText();
  completion_.choice = split_->choice();
  completion_.moves = split_->moves();
  if (status.ok() && !completion_.choice.local()) {
    if (TailLink* tail = context_.tails.Find(completion_.choice.endpoint)) tail->breaker.RecordSuccess();
  }
  LogCompletion(status);
  // A refusal (busy, bad argument) leaves the connection usable; anything else may have left replies in
  // flight on it.
  if (!status.ok() && status.code() != StatusCode::kResourceExhausted &&
      status.code() != StatusCode::kInvalidArgument) {
    healthy_ = false;
  }
  split_.reset();  // the tail sessions close here, before the connections go back
  return Settle(status);
}

Status GenerationRunner::GenerateText() {
  Status status = split_->Start(generation_.first);
  if (!status.ok()) status = FallBack(status);
  last_token_at_ = context_.clock.Now();
  previous_ = generation_.ids.back();
  if (!status.ok()) return status;
  DraftSource drafts;
  if (drafting_)
    drafts = [this](std::span<const int> context, int max_tokens) { return Draft(context, max_tokens); };
  auto generation = Generate(
      [this](std::span<const int> tokens, std::span<const int> draft) { return Step(tokens, draft); }, drafts,
      context_.model->config().seq_len, generation_.ids,
      GenerateOptions{.steps = positions_, .stop_tokens = stop_ids_},
      [this](int token) { return OnToken(token); });
  if (drafting_) {
    completion_.drafted_tokens = drafting_->drafted();
    completion_.kept_drafts = drafting_->kept();
  }
  if (!generation.ok()) return generation.status();
  completion_.model_steps = generation->timings.model_steps;
  if (const std::string rest = stopped_ || client_gone_ ? "" : scanner_.Flush(); !rest.empty()) emit_(rest);
  completion_.text = scanner_.text();
  const bool hit_length = completion_.completion_tokens == request_.max_tokens;
  completion_.finish_reason = stopped_ || !hit_length ? "stop" : "length";
  completion_.decode_tokens_per_second = generation->timings.decode_tokens_per_second();
  if (client_gone_) {
    Log(LogLevel::kInfo, "edge", "client gone: generation cancelled",
        {{"request_id", generation_.request_id}});
  }
  return Status::Ok();
}

std::vector<int> GenerationRunner::Draft(std::span<const int> context, int max_tokens) {
  if (Status cut = drafting_->UseCut(CutOf(split_->choice(), layers_)); !cut.ok()) {
    Log(LogLevel::kWarn, "edge", "no drafter; this step verifies nothing",
        {{"request_id", generation_.request_id}, {"error", cut.message()}});
    return {};
  }
  return drafting_->Propose(context, max_tokens);
}

Result<VerifyOutcome> GenerationRunner::Step(std::span<const int> tokens, std::span<const int> draft) {
  const int generated = completion_.completion_tokens;
  // Due every --replan-tokens tokens; a step yielding several tokens may pass the mark.
  if (context_.planner != nullptr && !request_.split && context_.replan_tokens > 0 && generated > 0 &&
      generated >= next_replan_at_) {
    next_replan_at_ = generated + context_.replan_tokens;
    if (MaybeMove(request_.max_tokens - generated)) RecordMove("replan");
  }
  const Clock::TimePoint start = context_.clock.Now();
  auto outcome = split_->Step(tokens, draft);
  if (!outcome.ok()) {
    TANDEM_RETURN_IF_ERROR(FallBack(outcome.status()));
    outcome = split_->Step(tokens, draft);
  }
  if (outcome.ok() && drafting_) {
    // The prefill's time is the prompt's, not a decode step's.
    const double step_ms = generated > 0 ? ToMilliseconds(context_.clock.Now() - start) : -1;
    drafting_->Observe(static_cast<int>(draft.size()), *outcome, step_ms);
  }
  return outcome;
}

bool GenerationRunner::OnToken(int token) {
  const Clock::TimePoint now = context_.clock.Now();
  if (completion_.completion_tokens++ == 0) {
    completion_.ttft_ms = ToMilliseconds(now - admitted_at_);
    context_.metrics.ttft.Observe(completion_.ttft_ms / 1000);
  } else {
    context_.metrics.inter_token.Observe(std::chrono::duration<double>(now - last_token_at_).count());
  }
  last_token_at_ = now;
  // The model ended the text (or the turn): not part of it.
  if (std::find(stop_ids_.begin(), stop_ids_.end(), token) != stop_ids_.end()) return false;
  const std::string piece = context_.tokenizer.DecodeAll({previous_, token});
  previous_ = token;
  const std::string final_text = scanner_.Add(piece, stopped_);
  if (!final_text.empty() && !emit_(final_text)) client_gone_ = true;
  return !stopped_ && !client_gone_;
}

bool GenerationRunner::MaybeMove(int remaining) {
  MovableSplit& split = *split_;
  auto advice = context_.planner->AdviseMove(split.choice(), split.positions(), remaining);
  if (!advice.ok() || advice->best.SameChoice(split.choice()) ||
      advice->move_ms >= advice->stay_ms * (1 - context_.hysteresis_gain)) {
    return false;
  }
  const std::string from = split.choice().Describe();
  if (Status moved = split.MoveTo(advice->best); !moved.ok()) {
    Log(LogLevel::kWarn, "edge", "split move failed; staying",
        {{"request_id", generation_.request_id},
         {"to", advice->best.Describe()},
         {"error", moved.message()}});
    return false;
  }
  context_.metrics.moves.Add({{"reason", "replan"}}).Increment();
  Log(LogLevel::kInfo, "edge", "split moved",
      {{"request_id", generation_.request_id},
       {"from", from},
       {"to", advice->best.Describe()},
       {"predicted_stay_ms", std::to_string(advice->stay_ms)},
       {"predicted_move_ms", std::to_string(advice->move_ms)}});
  return true;
}

Status GenerationRunner::FallBack(Status failure) {
  if (request_.split || !context_.failover.Covers(split_->choice(), failure)) return failure;
  healthy_ = false;
  return context_.failover.Recover(split_->choice(), std::move(failure), *this);
}

void GenerationRunner::RecordMove(const char* reason) {
  completion_.move_log.push_back({.at_ms = ToMilliseconds(context_.clock.Now() - admitted_at_),
                                  .to = split_->choice().Describe(),
                                  .cut = CutOf(split_->choice(), layers_),
                                  .reason = reason});
}

// A tail failed a request's step: its circuit breaker counts the failure, and when the tail is
// unreachable its link reads as down until a probe is answered again. A busy or slow tail is not down:
// the probes tell whether a silent one is.
void GenerationRunner::Penalize(const scheduler::Candidate& failed, const Status& failure) {
  TailLink* tail = context_.tails.Find(failed.endpoint);
  if (tail == nullptr) return;
  if (failure.code() == StatusCode::kUnavailable) tail->link.MarkDown();
  if (tail->breaker.RecordFailure()) {
    context_.metrics.circuit_opened.Add({{"cloud", failed.endpoint}}).Increment();
    Log(LogLevel::kWarn, "edge", "circuit breaker opened: no work goes to the tail for a while",
        {{"cloud", failed.endpoint}, {"error", failure.message()}});
  }
}

Result<scheduler::Candidate> GenerationRunner::Alternative(const scheduler::Candidate& failed) {
  // A fixed split keeps its cut and codec: only its tail changes.
  if (context_.planner == nullptr) return MoveFixedSplit(failed, FixedSplitTails(context_.tails, failed));
  const int positions_so_far = split_->positions() > 0 ? split_->positions() : completion_.prompt_tokens;
  return context_.planner->Alternative(failed, positions_so_far,
                                       request_.max_tokens - completion_.completion_tokens);
}

Status GenerationRunner::MoveTo(const scheduler::Candidate& failed, const scheduler::Candidate& next,
                                const Status& failure) {
  Log(LogLevel::kWarn, "edge", "tail failed: moving the generation",
      {{"request_id", generation_.request_id},
       {"from", failed.Describe()},
       {"to", next.Describe()},
       {"error", failure.message()}});
  context_.metrics.moves.Add({{"reason", "fallback"}}).Increment();
  Status moved = split_->MoveTo(next);
  if (moved.ok()) {
    context_.metrics.failovers.Add({{"to", next.local() ? "local" : "tail"}}).Increment();
    RecordMove("fallback");
  }
  return moved;
}

void GenerationRunner::LogCompletion(const Status& status) const {
  Log(LogLevel::kInfo, "edge", "completion",
      {{"request_id", generation_.request_id},
       {"plan", completion_.plan.Describe()},
       {"final", completion_.choice.Describe()},
       {"prompt_tokens", std::to_string(completion_.prompt_tokens)},
       {"completion_tokens", std::to_string(completion_.completion_tokens)},
       {"finish_reason", status.ok() ? completion_.finish_reason : "error"},
       {"ttft_ms", std::to_string(static_cast<int>(completion_.ttft_ms))}});
}

Result<Completion> GenerationRunner::Settle(const Status& status) {
  completion_.wire = tails_.wire();
  context_.metrics.RecordWire(completion_.wire);
  if (!healthy_) tails_.MarkBroken();
  context_.metrics.active.Decrement();
  context_.metrics.prompt_tokens.Increment(completion_.prompt_tokens);
  context_.metrics.completion_tokens.Increment(completion_.completion_tokens);
  if (!status.ok()) {
    Log(LogLevel::kWarn, "edge", "completion failed",
        {{"request_id", generation_.request_id}, {"error", status.message()}});
    return status;
  }
  return std::move(completion_);
}

}  // namespace

Result<Completion> RunGeneration(const GenerationContext& context, const GenerationRequest& request,
                                 RequestTails& tails, const TextSink& emit) {
  return GenerationRunner(context, request, tails, emit).Run();
}

}  // namespace tandem::edge_agent
