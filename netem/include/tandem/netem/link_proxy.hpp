// A user-space link emulator: a TCP proxy that delays, rate-limits and interrupts the bytes between the
// edge and the cloud tail, and plays a schedule of link conditions.
//
// Why it exists: this machine's kernel has no sch_netem (`tc qdisc ... netem` fails with "Specified qdisc
// kind is unknown"), and tc needs root anyway. A proxy in user space works on any kernel, in CI and in
// containers without privileges, and knows exactly when each phase began, so an evaluation harness can
// align its measurements to the phase changes it logs.
//
// The model, per direction (the link is full duplex): bytes read from one side at time t are serialized at
// the link rate, `start = max(t, link_free)`, `link_free = start + bytes * 8 / rate`, then delivered
// rtt / 2 later. Reads take at most `chunk_bytes` at a time so that a large message serializes
// progressively, like packets. Bytes are never delivered early: every delivery waits on steady_clock.
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
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem::netem {

struct LinkConditions {
  int64_t rate_bps = 0;              // per direction, bits per second; 0 = no rate limit
  std::chrono::microseconds rtt{0};  // each direction delays by rtt / 2
  bool up = true;

  bool operator==(const LinkConditions&) const = default;
};

// One step of a schedule: `conditions` for `duration`.
struct LinkPhase {
  std::chrono::microseconds duration{0};
  LinkConditions conditions;

  bool operator==(const LinkPhase&) const = default;
};

// "10mbit" → 10'000'000. Units bit, kbit, mbit, gbit (decimal, as tc counts them), case-insensitive;
// fractions allowed ("1.5mbit"). The result must be at least 1 bit/s.
Result<int64_t> ParseLinkRate(std::string_view text);

// "40ms" → 40'000 µs. Units us, ms, s, m (minutes); fractions allowed ("0.5s"); no unit is an error, so
// that "40" is never silently read as seconds or milliseconds.
Result<std::chrono::microseconds> ParseLinkDuration(std::string_view text);

// "30s:100mbit:5ms,20s:down,30s:1mbit:150ms": comma-separated phases, each `DURATION:RATE:RTT` or
// `DURATION:down`. Durations must be positive; at least one phase.
Result<std::vector<LinkPhase>> ParseLinkSchedule(std::string_view text);

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

  size_t chunk_bytes = 16 * 1024;             // largest read, i.e. the "packet" size
  size_t max_queued_bytes = 4 * 1024 * 1024;  // per direction of a connection, before reads pause
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

// tandem-link: flags (each also a TANDEM_* environment variable), the proxy, the schedule, and a clean stop
// on SIGTERM/SIGINT. Returns the process exit code: 0 after a clean stop, 1 on a runtime failure (the
// address cannot be bound), 2 on bad usage (flags, schedule text, a non-loopback listen address).
int RunLinkProxy(std::span<const std::string> args);

}  // namespace tandem::netem
