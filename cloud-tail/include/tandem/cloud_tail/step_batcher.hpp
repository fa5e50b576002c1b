// Continuous batching's policy: which of a worker's queued jobs run together next, and how long to wait for
// more. Kept apart from the queue's mutex and condition variable, so that tests drive it with a ManualClock
// and plain deques: when it waits, when it flushes, how large a batch gets.
//
// Threads: one StepBatcher per worker, used by that worker only, with the queue's lock held.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <memory>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/cloud_tail/session_table.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem::cloud_tail {

// A worker's unit of work: a session's OPEN (build its runner and KV cache) or one of its steps
// (ACTIVATIONS, VERIFY).
struct Job {
  std::shared_ptr<Session> session;
  wire::Message message;
  bool opens() const { return message.header.type == wire::MessageType::kOpen; }
};

// Jobs that never share a pass: an OPEN, a prefill (several rows), a VERIFY (its drafts' rows too: a batch
// takes one row per session), and a private-output session's steps (a middle has no head to batch).
bool RunsAlone(const Job& job);

struct BatchPolicy {
  // Decode steps (one row each) of up to this many sessions run together through the weights; 1: alone.
  int max_batch = 32;
  // When fewer are ready than the last batch held, wait up to this long for the rest.
  std::chrono::microseconds max_wait{2000};
};

class StepBatcher {
 public:
  explicit StepBatcher(BatchPolicy policy) : policy_(policy) {}

  // Starts the next batch from `queue` (not empty) at `now`: the oldest job alone when it runs alone,
  // else every decode step that may join (each session's oldest, none behind a job that runs alone).
  void Begin(std::deque<Job>& queue, Clock::TimePoint now);
  // Takes the decode steps queued since into the batch, up to max_batch.
  void Collect(std::deque<Job>& queue);
  // Whether the batch should wait for more: it holds fewer steps than expected and the wait is not over.
  bool ShouldWait(Clock::TimePoint now) const;
  Clock::TimePoint deadline() const { return deadline_; }
  // Hands the batch over. The next batch expects a step from each session that decoded in the last
  // kRecentBatches batches or prefilled (or verified) since; an OPEN changes nothing.
  std::vector<Job> Finish();

  // The steps the next batch waits for: the live sessions of recent_ (at least 1).
  size_t expected() const;
  size_t size() const { return batch_.size(); }

 private:
  size_t Limit() const;

  BatchPolicy policy_;
  // Remembering more than the last batch lets batching recover: were the next batch to expect only as many
  // steps as the last one held, one batch of one (a step that came late) would make every later batch
  // flush alone. A session that stops decoding costs at most kRecentBatches waits.
  static constexpr size_t kRecentBatches = 2;

  // The sessions of the last kRecentBatches decode batches, oldest first; a session that prefilled joins
  // the newest. Each is likely to send its next step in a moment, so the next batch waits (a little) for
  // them. Weak: a closed session is not expected, and its KV cache is not kept alive here.
  std::deque<std::vector<std::weak_ptr<Session>>> recent_;
  size_t wanted_ = 1;  // the steps this batch waits for: expected(), at most max_batch
  std::vector<Job> batch_;
  bool alone_ = false;
  Clock::TimePoint deadline_{};
};

}  // namespace tandem::cloud_tail
