// Link conditions and the text that names them ("10mbit", "40ms", "30s:100mbit:5ms,20s:down"): pure
// parsing without I/O, so that tandem-link's flags and every rejected input are tested on their own.
#pragma once

#include <chrono>
#include <cstdint>
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

}  // namespace tandem::netem
