// One completion's generation: the prompt and tokens through a MovableSplit, the text through the stop
// scanner to the client as it becomes final, timings and usage into a Completion. With --split auto the
// split may move mid-generation (re-planning every --replan-tokens), and a tail that fails a step hands
// the generation on as the FailoverPolicy says; a fixed split (--split K) moves only then, to another tail
// at its cut (fixed_split.hpp), and a request's forced split never moves. With a drafter each step
// verifies the tokens drafted here (GenerationDrafting), and may yield several tokens.
//
// Runs on the request's handler thread; everything in GenerationContext is shared with other requests
// and thread-safe. Errors are the generation's Status (the caller turns them into the OpenAI error).
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "tandem/base/clock.hpp"
#include "tandem/edge_agent/completion.hpp"
#include "tandem/edge_agent/completion_request.hpp"
#include "tandem/edge_agent/edge_metrics.hpp"
#include "tandem/edge_agent/failover_policy.hpp"
#include "tandem/edge_agent/generation_drafting.hpp"
#include "tandem/edge_agent/request_tails.hpp"
#include "tandem/edge_agent/split_planner.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/scheduler/draft_planner.hpp"
#include "tandem/text/tokenizer.hpp"

namespace tandem::edge_agent {

class TailSet;

// What every generation of one edge shares; owned by the service, outliving its requests.
struct GenerationContext {
  std::shared_ptr<const Transformer> model;
  const Tokenizer& tokenizer;
  EdgeMetrics& metrics;
  TailSet& tails;         // the tails' breakers and links hear of failures and successes
  SplitPlanner* planner;  // null: a fixed split, which never re-plans
  int replan_tokens = 16;
  float hysteresis_gain = 0.1f;
  FailoverPolicy failover;
  const Clock& clock;
};

struct GenerationRequest {
  const CompletionRequest& request;
  std::span<const int> ids;  // the prompt's tokens, BOS first
  std::string request_id;
  scheduler::Candidate first;  // where the split starts
  // Speculative decoding: the drafter's models (null or kind none: no drafting) and the drafts per step
  // (scheduler::kAutoDraftTokens: planned).
  const DraftModels* drafts = nullptr;
  int draft_tokens = scheduler::kAutoDraftTokens;
  DraftStats* draft_stats = nullptr;  // the default drafter's: what the planner learns from
};

// Gets text as it becomes final; returns false when the client is gone, which ends the generation at once
// (and the tail's session with it).
using TextSink = std::function<bool(const std::string& text)>;

// Generates one completion; `tails` opens the remote sessions its split takes.
Result<Completion> RunGeneration(const GenerationContext& context, const GenerationRequest& request,
                                 RequestTails& tails, const TextSink& emit);

}  // namespace tandem::edge_agent
