// One direction of an emulated link as a model without I/O: when each chunk read from the sender may be
// handed to the receiver under the conditions in force (rate, RTT, outages). It reads time only through
// a Clock, so tests drive it by hand; the proxy (link_proxy.hpp) drives it with the steady clock and does
// the reads, writes and timers.
//
// The model: a chunk pushed at time t is serialized at the link rate, `start = max(t, link_free)`,
// `link_free = start + bytes * 8 / rate` (rounded up: never early), then delivered rtt / 2 later. A change
// of conditions re-plans the chunks whose serialization has not started; chunks on the wire keep the
// delay they left with. While the link is down nothing is planned nor delivered; the chunks are held (as
// TCP would retransmit after the outage) and serialized again from the moment the link comes back.
//
// Threads: none of its own and no locks; one thread (the proxy's I/O thread) owns it.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/netem/link_schedule.hpp"

namespace tandem::netem {

// The bytes of one read (a "packet"), or the sender's end of stream, on their way across the link.
struct LinkChunk {
  std::vector<char> bytes;
  bool eof = false;  // the sender closed: shut down the receiver's sending side once delivered
};

class LinkModel {
 public:
  // `clock` must outlive the model.
  LinkModel(const Clock& clock, const LinkConditions& conditions);

  // Queues a chunk read now behind the others; it goes on the wire once the link is free and up.
  void Push(LinkChunk chunk);

  // The conditions from now on (see the model above).
  void SetConditions(const LinkConditions& conditions);
  const LinkConditions& conditions() const { return conditions_; }

  // When the head chunk reaches the receiver; nullopt when nothing is queued or the link is down.
  std::optional<Clock::TimePoint> NextDelivery() const;

  // The head chunk, taken off the queue, when its delivery time has come; else nullopt.
  std::optional<LinkChunk> PopDue();

  // The receiver is gone: drops every queued chunk.
  void Clear() { queue_.clear(); }
  bool empty() const { return queue_.empty(); }

 private:
  struct QueuedChunk {
    LinkChunk chunk;
    bool planned = false;        // the times below hold; false while the link is down or after a re-plan
    Clock::TimePoint start{};    // serialization begins
    Clock::TimePoint sent{};     // serialization ends (the link is free again)
    Clock::TimePoint deliver{};  // sent + one-way delay
  };

  // Gives every unplanned chunk its times: serialized back to back after link_free_, then the delay.
  void Plan(Clock::TimePoint now);

  const Clock& clock_;
  LinkConditions conditions_;
  std::deque<QueuedChunk> queue_;
  Clock::TimePoint link_free_{};
};

}  // namespace tandem::netem
