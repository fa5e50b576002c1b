// The schedule text tandem-link reads: rates, durations and phases, the good and the rejected ones with
// what their errors name. Pure parsing: no sockets, no clock.
#include "tandem/netem/link_schedule.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

namespace tandem::netem {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;

TEST(LinkParseTest, Rates) {
  const struct {
    std::string text;
    int64_t bps;
  } good[] = {{"1bit", 1},
              {"64kbit", 64'000},
              {"10mbit", 10'000'000},
              {"1.5Mbit", 1'500'000},
              {" 2GBIT ", 2'000'000'000},
              {"100 mbit", 100'000'000}};
  for (const auto& [text, bps] : good) {
    auto rate = ParseLinkRate(text);
    ASSERT_TRUE(rate.ok()) << text << ": " << rate.status().message();
    EXPECT_EQ(*rate, bps) << text;
  }
  for (const std::string text : {"", "mbit", "10", "10mbps", "10MB", "0mbit", "0.0001bit", "-1mbit", "inf",
                                 "1e3kbit", "10 mbit/s", "99999gbit"}) {
    EXPECT_FALSE(ParseLinkRate(text).ok()) << "'" << text << "'";
  }
}

TEST(LinkParseTest, Durations) {
  const struct {
    std::string text;
    int64_t us;
  } good[] = {{"0ms", 0},     {"40ms", 40'000},    {"0.5ms", 500},
              {"250us", 250}, {"30s", 30'000'000}, {"2m", 120'000'000}};
  for (const auto& [text, us] : good) {
    auto duration = ParseLinkDuration(text);
    ASSERT_TRUE(duration.ok()) << text << ": " << duration.status().message();
    EXPECT_EQ(duration->count(), us) << text;
  }
  for (const std::string text : {"", "40", "ms", "-5ms", "5h", "5 sec", "nan ms"}) {
    EXPECT_FALSE(ParseLinkDuration(text).ok()) << "'" << text << "'";
  }
}

TEST(LinkParseTest, GoodSchedules) {
  constexpr LinkConditions kDown{.up = false};
  const struct {
    std::string text;
    std::vector<LinkPhase> phases;
  } cases[] = {
      {"30s:100mbit:5ms", {{std::chrono::seconds(30), {100'000'000, milliseconds(5), true}}}},
      {"30s:100mbit:5ms,30s:10mbit:40ms,30s:1mbit:150ms,20s:down,30s:100mbit:5ms",
       {{std::chrono::seconds(30), {100'000'000, milliseconds(5), true}},
        {std::chrono::seconds(30), {10'000'000, milliseconds(40), true}},
        {std::chrono::seconds(30), {1'000'000, milliseconds(150), true}},
        {std::chrono::seconds(20), kDown},
        {std::chrono::seconds(30), {100'000'000, milliseconds(5), true}}}},
      {" 500ms : 1.5Mbit : 0ms , 1m:DOWN ",
       {{milliseconds(500), {1'500'000, microseconds(0), true}}, {std::chrono::minutes(1), kDown}}},
      {"100us:1gbit:0.5ms", {{microseconds(100), {1'000'000'000, microseconds(500), true}}}},
      {"2s:down", {{std::chrono::seconds(2), kDown}}},
  };
  for (const auto& [text, phases] : cases) {
    auto parsed = ParseLinkSchedule(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().message();
    EXPECT_EQ(*parsed, phases) << text;
  }
}

TEST(LinkParseTest, BadSchedules) {
  const struct {
    std::string text;
    std::string message;  // a part of the error that says what is wrong
  } cases[] = {
      {"", "empty"},
      {"   ", "empty"},
      {",", "phase 0"},
      {"30s:100mbit:5ms,", "phase 1"},
      {"30s", "DURATION:RATE:RTT or DURATION:down"},
      {"30s:100mbit", "DURATION:RATE:RTT or DURATION:down"},
      {"30s:100mbit:5ms:1", "DURATION:RATE:RTT or DURATION:down"},
      {"30s:up", "DURATION:RATE:RTT or DURATION:down"},
      {"0s:100mbit:5ms", "positive"},
      {"30:100mbit:5ms", "unit must be us, ms, s or m"},
      {"30s:100mbps:5ms", "unit must be bit, kbit, mbit or gbit"},
      {"30s:0mbit:5ms", "between"},
      {"30s:-1mbit:5ms", "non-negative number"},
      {"30s:100mbit:-5ms", "non-negative number"},
      {"30s:100mbit:5", "unit must be us, ms, s or m"},
      {"abc:down", "non-negative number"},
      {"30s:100mbit:5ms;10s:down", "phase 0"},
      {"10s:down,10s:1mbit:5ms,5s:1mbit", "phase 2 ('5s:1mbit')"},
  };
  for (const auto& [text, message] : cases) {
    auto parsed = ParseLinkSchedule(text);
    ASSERT_FALSE(parsed.ok()) << "'" << text << "' parsed";
    EXPECT_EQ(parsed.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find(message), std::string::npos)
        << "'" << text << "': " << parsed.status().message();
  }
}

}  // namespace
}  // namespace tandem::netem
