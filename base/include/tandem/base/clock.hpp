// The clock seam: components that time out, expire or smooth measurements over time read a Clock, so
// that tests drive time by hand instead of sleeping.
#pragma once

#include <chrono>

namespace tandem {

class Clock {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~Clock() = default;
  virtual TimePoint Now() const = 0;
};

// The process's monotonic clock.
class SteadyClock final : public Clock {
 public:
  TimePoint Now() const override { return std::chrono::steady_clock::now(); }
  static const SteadyClock& Instance() {
    static const SteadyClock clock;
    return clock;
  }
};

// Moves only when told to. Not thread-safe: for single-threaded tests.
class ManualClock final : public Clock {
 public:
  TimePoint Now() const override { return now_; }
  void Advance(Duration by) { now_ += by; }

 private:
  TimePoint now_{};
};

inline double ToMilliseconds(Clock::Duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

}  // namespace tandem
