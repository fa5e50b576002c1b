// What one completion produced, as the generation runner hands it to the OpenAI formatting: the text and
// usage, and where it ran (first plan, final choice, every move with its reason, the wire figures).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::edge_agent {

// One move of a generation's split.
struct SplitMove {
  double at_ms = 0;  // since the request was admitted
  std::string to;    // the new choice, described
  int cut = 0;
  std::string reason;  // "replan" or "fallback"
};

struct Completion {
  std::string text;
  std::string finish_reason = "length";
  int prompt_tokens = 0;
  int completion_tokens = 0;
  double ttft_ms = 0;
  double decode_tokens_per_second = 0;
  WireStats wire;  // every tail's, summed over moves
  uint64_t seed = 0;
  scheduler::Candidate plan;    // the first choice, with its predictions
  scheduler::Candidate choice;  // where the split ended
  int moves = 0;
  std::vector<SplitMove> move_log;
  // Speculative decoding: the drafter ("none" without), tokens drafted and kept, and model steps (round
  // trips of a split) the generation took.
  std::string drafter = "none";
  int drafted_tokens = 0;
  int kept_drafts = 0;
  int model_steps = 0;
};

// The cut of a choice in a model of `layers` blocks: all-local is a cut at L.
inline int CutOf(const scheduler::Candidate& choice, int layers) {
  return choice.local() ? layers : choice.cut;
}
// Where the tail's blocks end: L, or with private output the first block the edge runs again.
inline int TailEndOf(const scheduler::Candidate& choice, int layers) {
  return choice.private_output() ? choice.end : layers;
}

}  // namespace tandem::edge_agent
