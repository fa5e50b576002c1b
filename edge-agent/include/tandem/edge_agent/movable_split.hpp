// One generation over a split that can move between steps: to another cut, codec or tail, or all-local.
//
// A move rebuilds both sides at the new choice by replaying every step so far (the prompt, then each token)
// in its original chunking through the new edge part and the new tail. Same chunks mean the same float32
// sums in the same order, so with a lossless codec the rebuilt KV caches equal the ones an unsplit run
// would hold; the tail's sampler, reseeded and stepped once per replayed step, lands in the same state.
// The replay's tokens are checked against the ones already produced: a mismatch is an error, never a
// silently different continuation. Verify steps (speculative decoding) replay as they ran: the same rows,
// the same drafts, and the drafts not kept dropped again, so the tail's sampler draws the same numbers.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem {
class Transformer;
}

namespace tandem::edge_agent {

class MovableSplit {
 public:
  // Opens the tail of a choice (a RemoteTail on a connection, or a LocalTail for all-local).
  using TailOpener = std::function<Result<std::unique_ptr<TailRunner>>(const scheduler::Candidate& choice)>;
  // Sees a tail before it is dropped (to collect its wire statistics).
  using TailRetired = std::function<void(TailRunner& tail)>;

  MovableSplit(std::shared_ptr<const Transformer> model, int capacity, TailOpener open_tail,
               TailRetired retired = {});
  ~MovableSplit();

  // Opens the first choice; nothing to replay yet.
  Status Start(const scheduler::Candidate& choice);
  // One model step (see VerifyStep): the prompt first, then the last token, each followed by `draft`.
  Result<VerifyOutcome> Step(std::span<const int> tokens, std::span<const int> draft = {});
  // Rebuilds at `choice` by replaying every step so far. On failure the split keeps its old choice when
  // that still works; the caller may try another choice (all-local needs no tail).
  Status MoveTo(const scheduler::Candidate& choice);

  const scheduler::Candidate& choice() const { return choice_; }
  int moves() const { return moves_; }
  int positions() const;
  TailRunner& tail() { return *tail_; }

 private:
  std::shared_ptr<const Transformer> model_;
  int capacity_;
  TailOpener open_tail_;
  TailRetired retired_;
  scheduler::Candidate choice_;
  std::unique_ptr<EdgeRunner> edge_;
  std::unique_ptr<TailRunner> tail_;
  struct LoggedStep {
    std::vector<int> tokens;  // the step's own tokens, then its drafts
    std::vector<int> draft;
    VerifyOutcome outcome;
  };
  std::vector<LoggedStep> steps_;  // in order
  int moves_ = 0;
};

}  // namespace tandem::edge_agent
