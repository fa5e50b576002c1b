// A user-space link emulator: a TCP proxy that delays, rate-limits and interrupts the bytes between the
// edge and the cloud tail, and plays a schedule of link conditions.
//
// Why it exists: this machine's kernel has no sch_netem (`tc qdisc ... netem` fails with "Specified qdisc
// kind is unknown"), and tc needs root anyway. A proxy in user space works on any kernel, in CI and in
// containers without privileges, and knows exactly when each phase began, so an evaluation harness can
// align its measurements to the phase changes it logs.
//
// The model, per direction (the link is full duplex), is LinkModel's (link_model.hpp): bytes are serialized
// at the link rate, then delivered rtt / 2 later, never early. Reads take at most `chunk_bytes` at a time
// so that a large message serializes progressively, like packets.
//
// Changes of conditions: bytes whose serialization has not started yet are re-planned at the new rate;
// bytes on the wire keep the delay they left with. While the link is down nothing is delivered; the data is
// held (as TCP would retransmit after the outage) and serialized again under the conditions in force when
// the link comes back. The emulator never resets a connection by itself: when a real endpoint closes (or
// fails), the other side is shut down once the bytes before the close are delivered. A side whose queued
// bytes exceed `max_queued_bytes` is not read until the queue drains (backpressure reaches the sender
// through TCP flow control).
//
// Not emulated: the TCP handshake (connections are accepted and the target is dialled at once, even while
// the link is down; only their bytes wait), loss and reordering, and any queue limit other than the
// backpressure above (a full queue delays, it never drops).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/netem/link_schedule.hpp"

namespace tandem::netem {

struct LinkProxyOptions {
  // HOST:PORT (or :PORT or PORT, host 127.0.0.1); port 0 picks a free one (see LinkProxy::port()).
  std::string listen = "127.0.0.1:0";
  // Listening on anything but a loopback address exposes the proxied service; refused unless set.
  bool allow_non_loopback = false;
  std::string target;  // HOST:PORT every accepted connection is forwarded to

  // Played from Start(); phase changes are logged (component "link"). Empty: `conditions` for good.
  std::vector<LinkPhase> schedule;
  bool loop = false;  // repeat the schedule; otherwise its last phase stays
  LinkConditions conditions;

  size_t chunk_bytes = size_t{16} * 1024;             // largest read, i.e. the "packet" size
  size_t max_queued_bytes = size_t{4} * 1024 * 1024;  // per direction of a connection, before reads pause
};

// The proxy, running on its own I/O thread from Start() until Stop() (or destruction).
class LinkProxy {
 public:
  // Resolves the target, binds and starts accepting. InvalidArgument for a bad address (or a non-loopback
  // one without allow_non_loopback), Unavailable when the address cannot be bound.
  static Result<std::unique_ptr<LinkProxy>> Start(LinkProxyOptions options);

  ~LinkProxy();
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  uint16_t port() const;
  std::string address() const;  // "127.0.0.1:PORT" as bound

  // Applies `conditions` to every connection now (a running schedule overrides them at its next phase).
  // Returns once they are in force, so bytes sent afterwards see them. Logged like a phase change.
  void SetConditions(const LinkConditions& conditions);
  LinkConditions conditions() const;

  // Closes the listener and every connection and joins the I/O thread. Idempotent.
  void Stop();

 private:
  class Impl;
  explicit LinkProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::netem
