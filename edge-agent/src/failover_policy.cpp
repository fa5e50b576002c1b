#include "tandem/edge_agent/failover_policy.hpp"

#include <string>

namespace tandem::edge_agent {

bool FailoverPolicy::IsTailFailure(const Status& status) {
  return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded ||
         status.code() == StatusCode::kResourceExhausted;
}

bool FailoverPolicy::Covers(const scheduler::Candidate& current, const Status& failure) const {
  return !current.local() && IsTailFailure(failure);
}

Status FailoverPolicy::Recover(scheduler::Candidate failed, Status failure, FailoverHost& host) const {
  Backoff busy_backoff(busy_retry);
  for (int attempt = 0; attempt < max_moves; ++attempt) {
    host.Penalize(failed, failure);
    Result<scheduler::Candidate> next = host.Alternative(failed);
    if (!next.ok()) {
      if (failure.code() != StatusCode::kResourceExhausted) return next.status();
      host.Pause(busy_backoff.Next());
      next = failed;
    }
    Status moved = host.MoveTo(failed, *next, failure);
    if (moved.ok()) return Status::Ok();
    if (next->local() || !IsTailFailure(moved)) return moved;
    failure = moved;
    failed = *next;
  }
  return failure.WithContext("no tail took the generation after " + std::to_string(max_moves) + " moves");
}

}  // namespace tandem::edge_agent
