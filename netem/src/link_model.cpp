#include "tandem/netem/link_model.hpp"

#include <algorithm>
#include <chrono>
#include <utility>

namespace tandem::netem {
namespace {

// Time to put `bytes` on a link of `rate_bps`, rounded up so that nothing is ever delivered early.
std::chrono::nanoseconds SerializationTime(size_t bytes, int64_t rate_bps) {
  if (rate_bps <= 0) return std::chrono::nanoseconds(0);
  const int64_t bits = static_cast<int64_t>(bytes) * 8;
  return std::chrono::nanoseconds((bits * 1'000'000'000 + rate_bps - 1) / rate_bps);
}

std::chrono::nanoseconds OneWayDelay(const LinkConditions& conditions) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(conditions.rtt) / 2;
}

}  // namespace

LinkModel::LinkModel(const Clock& clock, const LinkConditions& conditions)
    : clock_(clock), conditions_(conditions) {}

void LinkModel::Push(LinkChunk chunk) {
  queue_.push_back(QueuedChunk{.chunk = std::move(chunk)});
  Plan(clock_.Now());
}

void LinkModel::SetConditions(const LinkConditions& conditions) {
  const bool was_up = conditions_.up;
  conditions_ = conditions;
  const Clock::TimePoint now = clock_.Now();
  if (!conditions.up) {
    // Held: whatever has not reached the receiver is sent again once the link is back.
    for (QueuedChunk& queued : queue_) queued.planned = false;
    return;
  }
  if (!was_up) {
    link_free_ = now;
  } else {
    // Chunks already on the wire keep their times; the rest go out at the new rate.
    Clock::TimePoint kept_until = now;
    for (QueuedChunk& queued : queue_) {
      if (queued.planned && queued.start <= now) {
        kept_until = std::max(kept_until, queued.sent);
      } else {
        queued.planned = false;
      }
    }
    link_free_ = kept_until;
  }
  Plan(now);
}

std::optional<Clock::TimePoint> LinkModel::NextDelivery() const {
  if (queue_.empty() || !queue_.front().planned) return std::nullopt;
  return queue_.front().deliver;
}

std::optional<LinkChunk> LinkModel::PopDue() {
  const std::optional<Clock::TimePoint> deliver = NextDelivery();
  if (!deliver || *deliver > clock_.Now()) return std::nullopt;
  LinkChunk chunk = std::move(queue_.front().chunk);
  queue_.pop_front();
  return chunk;
}

void LinkModel::Plan(Clock::TimePoint now) {
  if (!conditions_.up) return;
  for (QueuedChunk& queued : queue_) {
    if (queued.planned) continue;
    queued.start = std::max(now, link_free_);
    queued.sent = queued.start + SerializationTime(queued.chunk.bytes.size(), conditions_.rate_bps);
    queued.deliver = queued.sent + OneWayDelay(conditions_);
    queued.planned = true;
    link_free_ = queued.sent;
  }
}

}  // namespace tandem::netem
