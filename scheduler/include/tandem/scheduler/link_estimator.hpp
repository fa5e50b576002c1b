// Smoothed estimates of one edge -> tail link from timestamped samples: RTT from PING/PONG, bandwidth
// from real transfers (round trip minus the tail's reported compute minus the RTT), and whether the link is
// up (consecutive unanswered probes).
//
// Samples arrive at irregular times, so each update weighs the new sample by 1 - exp(-dt / tau): a sample
// after a long silence counts for more than one right after another. Thread-safe. Negative or non-finite
// samples are ignored.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>

#include "tandem/base/clock.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::scheduler {

struct LinkEstimatorOptions {
  Clock::Duration rtt_time_constant = std::chrono::milliseconds(400);
  Clock::Duration bandwidth_time_constant = std::chrono::milliseconds(1000);
  int down_after_missed_probes = 3;
  // A transfer that took less than this beyond RTT and compute says only that bandwidth is at least
  // bytes / this: too short to measure, it can raise the estimate but not lower it.
  double min_transfer_ms = 0.5;
  // Transfers smaller than this are lower bounds too: the data path's fixed costs per message (encryption,
  // hand-over to a worker) would pass for transfer time.
  int64_t min_sample_bytes = 4096;
};

class LinkEstimator {
 public:
  explicit LinkEstimator(const Clock& clock, LinkEstimatorOptions options = {});

  void RecordRtt(double rtt_ms);  // a probe answered; the link is up
  void RecordMissedProbe();       // a probe timed out
  void MarkDown();                // a real step failed: down now, until a probe is answered again
  // `bytes` crossed the link (both ways) in a step that took `round_trip_ms`, of which the tail computed
  // `remote_compute_ms`.
  void RecordTransfer(int64_t bytes, double round_trip_ms, double remote_compute_ms);

  LinkEstimate Estimate() const;
  // When the last RTT sample or transfer was recorded; nullopt before any.
  std::optional<Clock::TimePoint> last_sample() const;

 private:
  const Clock& clock_;
  LinkEstimatorOptions options_;
  mutable std::mutex mutex_;
  std::optional<double> rtt_ms_;
  std::optional<double> bandwidth_;  // bytes per ms
  Clock::TimePoint rtt_at_{}, bandwidth_at_{};
  int missed_probes_ = 0;
  std::optional<Clock::TimePoint> last_sample_;
};

}  // namespace tandem::scheduler
