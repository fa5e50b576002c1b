// Retrying without making an outage worse: exponential backoff with jitter between attempts, and a circuit
// breaker that stops sending work to a peer that keeps failing until a cool-down has passed.
//
// Jitter matters because failures are correlated: when a tail dies, every edge and every request on it
// fails at the same moment, and un-jittered retries would arrive at the replacement (or the restarted
// tail) in synchronized waves.
#pragma once

#include <cstdint>
#include <mutex>
#include <random>
#include <string_view>

#include "tandem/base/clock.hpp"

namespace tandem {

struct BackoffPolicy {
  Clock::Duration initial = std::chrono::milliseconds(100);
  Clock::Duration max = std::chrono::seconds(10);
  double multiplier = 2;
  // Each delay is drawn uniformly from [(1 - jitter) * d, d], d being the un-jittered delay.
  double jitter = 0.5;
};

// The delays of one sequence of attempts. Not thread-safe: one per retry loop.
class Backoff {
 public:
  explicit Backoff(BackoffPolicy policy, uint64_t seed = std::random_device{}());
  // The pause before the next attempt; grows with every call up to policy.max.
  Clock::Duration Next();
  void Reset() { attempts_ = 0; }
  int attempts() const { return attempts_; }

 private:
  BackoffPolicy policy_;
  std::mt19937_64 random_;
  int attempts_ = 0;
};

struct CircuitBreakerOptions {
  // Consecutive failures that open the breaker.
  int failure_threshold = 2;
  // How long it stays open the first time; each failed trial doubles it (jittered), up to the policy's max.
  BackoffPolicy open_for{.initial = std::chrono::seconds(1), .max = std::chrono::seconds(30)};
};

// Closed: work flows, failures are counted. Open: no work, until the cool-down ends. Half-open: one
// trial at a time; its success closes the breaker, its failure opens it again for longer. Thread-safe.
class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  CircuitBreaker(const Clock& clock, CircuitBreakerOptions options = {},
                 uint64_t seed = std::random_device{}());

  // Whether work may go now, taking the half-open trial when there is one.
  bool Allow();
  // Whether Allow() would say yes, without taking anything (for planning).
  bool Permits() const;
  void RecordSuccess();
  // True when this failure opened the breaker.
  bool RecordFailure();

  State state() const;
  int opened() const;  // times the breaker opened, for metrics

 private:
  State StateLocked() const;
  bool PermitsLocked() const;

  const Clock& clock_;
  const CircuitBreakerOptions options_;
  mutable std::mutex mutex_;
  Backoff cool_down_;
  bool open_ = false;
  bool trial_out_ = false;
  int consecutive_failures_ = 0;
  int opened_ = 0;
  Clock::TimePoint closed_until_{};   // while open: when the half-open trial may go
  Clock::TimePoint trial_expires_{};  // a trial not reported by then is given up
};

std::string_view CircuitStateName(CircuitBreaker::State state);

}  // namespace tandem
