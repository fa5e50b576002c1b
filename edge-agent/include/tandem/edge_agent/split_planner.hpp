// The planning the edge service asks for, as an interface: EdgePlanner is the real one (its own plans,
// or the scheduler's); tests give the service a scripted one to drive re-planning and failover without a
// tail's measurements. Implementations are thread-safe: every request asks, and a ticker refreshes.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include "tandem/base/status.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::edge_agent {

class SplitPlanner {
 public:
  virtual ~SplitPlanner() = default;

  // The choice for a request of `prompt_tokens` that will decode up to `expected_tokens`, after hysteresis.
  // Unavailable when nothing is feasible (no tail reachable and all-local not allowed).
  virtual Result<scheduler::Candidate> Choose(int prompt_tokens, int expected_tokens) = 0;
  // Re-plans for a request like the last one, so that hysteresis sees the estimates change as it happens
  // rather than at the next request (the edge calls it after every link probe).
  virtual void Refresh() = 0;
  // The best choice for the rest of a generation at `positions` with `remaining` tokens to go, without
  // hysteresis, and the predicted cost of moving there (a replay of `positions`) and of staying.
  struct MoveAdvice {
    scheduler::Candidate best;
    double stay_ms = 0;  // the current choice's decode time for the rest
    double move_ms = 0;  // the best's: replay + decode for the rest
  };
  virtual Result<MoveAdvice> AdviseMove(const scheduler::Candidate& current, int positions,
                                        int remaining) = 0;
  // Where a generation at `positions` goes when `failed`'s tail failed: the best choice on any other tail
  // or all-local. Unavailable when none is feasible.
  virtual Result<scheduler::Candidate> Alternative(const scheduler::Candidate& failed, int positions,
                                                   int remaining) = 0;
  // The last plan, the inputs it came from and the estimates, for GET /v1/plan.
  virtual nlohmann::json Describe() const = 0;
};

}  // namespace tandem::edge_agent
