#include "tandem/base/retry.hpp"

#include <algorithm>
#include <cmath>

namespace tandem {

Backoff::Backoff(BackoffPolicy policy, uint64_t seed) : policy_(policy), random_(seed) {}

Clock::Duration Backoff::Next() {
  const double initial = static_cast<double>(policy_.initial.count());
  const double ceiling = static_cast<double>(policy_.max.count());
  const double full = std::min(ceiling, initial * std::pow(policy_.multiplier, attempts_));
  ++attempts_;
  const double jitter = std::clamp(policy_.jitter, 0.0, 1.0);
  std::uniform_real_distribution<double> draw((1 - jitter) * full, full);
  return Clock::Duration(static_cast<Clock::Duration::rep>(draw(random_)));
}

CircuitBreaker::CircuitBreaker(const Clock& clock, CircuitBreakerOptions options, uint64_t seed)
    : clock_(clock), options_(options), cool_down_(options.open_for, seed) {}

CircuitBreaker::State CircuitBreaker::StateLocked() const {
  if (!open_) return State::kClosed;
  return clock_.Now() < closed_until_ ? State::kOpen : State::kHalfOpen;
}

bool CircuitBreaker::PermitsLocked() const {
  switch (StateLocked()) {
    case State::kClosed:
      return true;
    case State::kOpen:
      return false;
    case State::kHalfOpen:
      // A trial whose outcome never came (its request was cancelled) does not block the next one forever.
      return !trial_out_ || clock_.Now() >= trial_expires_;
  }
  return false;
}

bool CircuitBreaker::Allow() {
  const std::lock_guard lock(mutex_);
  if (!PermitsLocked()) return false;
  if (StateLocked() == State::kHalfOpen) {
    trial_out_ = true;
    trial_expires_ = clock_.Now() + options_.open_for.max;
  }
  return true;
}

bool CircuitBreaker::Permits() const {
  const std::lock_guard lock(mutex_);
  return PermitsLocked();
}

void CircuitBreaker::RecordSuccess() {
  const std::lock_guard lock(mutex_);
  // A success while open comes from work admitted before the breaker opened: it proves little.
  if (StateLocked() == State::kOpen) return;
  open_ = false;
  trial_out_ = false;
  consecutive_failures_ = 0;
  cool_down_.Reset();
}

bool CircuitBreaker::RecordFailure() {
  const std::lock_guard lock(mutex_);
  switch (StateLocked()) {
    case State::kOpen:
      return false;  // work admitted before it opened, failing late
    case State::kClosed:
      if (++consecutive_failures_ < options_.failure_threshold) return false;
      break;
    case State::kHalfOpen:
      break;
  }
  open_ = true;
  trial_out_ = false;
  ++opened_;
  closed_until_ = clock_.Now() + cool_down_.Next();
  return true;
}

CircuitBreaker::State CircuitBreaker::state() const {
  const std::lock_guard lock(mutex_);
  return StateLocked();
}

int CircuitBreaker::opened() const {
  const std::lock_guard lock(mutex_);
  return opened_;
}

std::string_view CircuitStateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half_open";
  }
  return "unknown";
}

}  // namespace tandem
