// Where a generation goes when its tail fails a step (gone, silent, overloaded): the failed tail is
// penalized and the generation moves to the best choice without it (another tail, replaying the steps so
// far there, or all-local when allowed). A move that fails too goes on to the next choice, up to
// max_moves; when every tail is busy the same one is asked again after a jittered pause. Any other
// failure (a bad argument, a diverged replay, a local error) is returned as it is.
//
// The policy only decides; the generation it rescues does the work through FailoverHost, so the policy
// is tested with a scripted host. Not thread-safe: one call per failure, on the generation's thread.
#pragma once

#include <chrono>

#include "tandem/base/retry.hpp"
#include "tandem/base/status.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::edge_agent {

// What a failover does to the generation it rescues.
class FailoverHost {
 public:
  virtual ~FailoverHost() = default;
  // The tail of `failed` failed with `failure`: its breaker and link hear of it.
  virtual void Penalize(const scheduler::Candidate& failed, const Status& failure) = 0;
  // The best choice without `failed`'s tail; an error when none is feasible.
  virtual Result<scheduler::Candidate> Alternative(const scheduler::Candidate& failed) = 0;
  // Moves the generation from `failed` to `next` (a replay); `failure` is why.
  virtual Status MoveTo(const scheduler::Candidate& failed, const scheduler::Candidate& next,
                        const Status& failure) = 0;
  // Waits before asking a busy tail again.
  virtual void Pause(Clock::Duration pause) = 0;
};

struct FailoverPolicy {
  // Moves off failed tails one generation may make before it gives up: enough for a replica that dies
  // during the replay onto it, not so many that a broken fleet holds requests for long.
  int max_moves = 3;
  // The pause before asking a busy tail again when no other choice exists.
  BackoffPolicy busy_retry{.initial = std::chrono::milliseconds(50), .max = std::chrono::milliseconds(400)};

  // A failure of the tail, not of the request: unreachable, timed out or overloaded.
  static bool IsTailFailure(const Status& status);
  // Whether `failure` of a generation running at `current` is one to move away from.
  bool Covers(const scheduler::Candidate& current, const Status& failure) const;
  // Moves the generation off `failed`; OK once it runs somewhere else, else the error that stopped it.
  // Call only for a failure it Covers.
  Status Recover(scheduler::Candidate failed, Status failure, FailoverHost& host) const;
};

}  // namespace tandem::edge_agent
