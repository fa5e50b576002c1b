#include "tandem/scheduler/link_estimator.hpp"

#include <algorithm>
#include <cmath>

namespace tandem::scheduler {
namespace {

// Moves `estimate` toward `sample` by 1 - exp(-dt / tau): the longer since the last sample, the staler
// the estimate and the more the new sample counts. A first sample (no estimate) is taken as is.
void Smooth(std::optional<double>& estimate, Clock::TimePoint& at, double sample, Clock::TimePoint now,
            Clock::Duration time_constant) {
  if (!estimate || time_constant <= Clock::Duration::zero()) {
    estimate = sample;
  } else {
    // A clock that went backwards (or two samples at one instant) gives dt <= 0: weight 0.
    const double dt = std::max(ToMilliseconds(now - at), 0.0);
    const double weight = 1 - std::exp(-dt / ToMilliseconds(time_constant));
    *estimate += weight * (sample - *estimate);
  }
  at = now;
}

bool ValidSample(double value) {
  return std::isfinite(value) && value >= 0;
}

}  // namespace

LinkEstimator::LinkEstimator(const Clock& clock, LinkEstimatorOptions options)
    : clock_(clock), options_(options) {}

void LinkEstimator::RecordRtt(double rtt_ms) {
  if (!ValidSample(rtt_ms)) return;
  const Clock::TimePoint now = clock_.Now();
  std::lock_guard lock(mutex_);
  Smooth(rtt_ms_, rtt_at_, rtt_ms, now, options_.rtt_time_constant);
  missed_probes_ = 0;
  last_sample_ = now;
}

void LinkEstimator::RecordMissedProbe() {
  std::lock_guard lock(mutex_);
  ++missed_probes_;
}

void LinkEstimator::MarkDown() {
  std::lock_guard lock(mutex_);
  missed_probes_ = std::max(missed_probes_, std::max(options_.down_after_missed_probes, 1));
}

void LinkEstimator::RecordTransfer(int64_t bytes, double round_trip_ms, double remote_compute_ms) {
  if (bytes <= 0 || !ValidSample(round_trip_ms) || !ValidSample(remote_compute_ms)) return;
  const Clock::TimePoint now = clock_.Now();
  std::lock_guard lock(mutex_);
  // Without an RTT the transfer time cannot be separated from the latency.
  if (!rtt_ms_) return;
  last_sample_ = now;
  const double transfer_ms = round_trip_ms - remote_compute_ms - *rtt_ms_;
  if (transfer_ms < options_.min_transfer_ms || transfer_ms <= 0 || bytes < options_.min_sample_bytes) {
    // Too short to time (jitter in the RTT or compute could make it anything, even negative), or too small
    // for the per-message overheads of the data path (which PING does not see) to be negligible: all it
    // shows is that the link moved `bytes` within max(transfer, min_transfer_ms). It raises an estimate,
    // never lowers one, and never makes one: without a real sample the planner's default stands.
    const double floor_ms = std::max(transfer_ms, options_.min_transfer_ms);
    if (!(floor_ms > 0)) return;
    const double lower_bound = static_cast<double>(bytes) / floor_ms;
    if (bandwidth_ && *bandwidth_ < lower_bound) {
      bandwidth_ = lower_bound;
      // Only a change refreshes the estimate; a bound it already met says nothing about its age.
      bandwidth_at_ = now;
    }
    return;
  }
  Smooth(bandwidth_, bandwidth_at_, static_cast<double>(bytes) / transfer_ms, now,
         options_.bandwidth_time_constant);
}

LinkEstimate LinkEstimator::Estimate() const {
  std::lock_guard lock(mutex_);
  // A threshold below 1 would declare a link down that has missed nothing.
  const int down_after = std::max(options_.down_after_missed_probes, 1);
  return LinkEstimate{.rtt_ms = rtt_ms_.value_or(0),
                      .bandwidth_bytes_per_ms = bandwidth_.value_or(0),
                      .up = missed_probes_ < down_after};
}

std::optional<Clock::TimePoint> LinkEstimator::last_sample() const {
  std::lock_guard lock(mutex_);
  return last_sample_;
}

}  // namespace tandem::scheduler
