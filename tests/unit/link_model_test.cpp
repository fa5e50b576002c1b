// The link model on a hand-driven clock: exact delivery times for a rate and an RTT (serialization, then
// half the RTT, rounded up, back to back), a change of rate that leaves chunks on the wire alone, and
// outages that hold every chunk and serialize it again from the moment the link is back. No sockets, no
// sleeps: these are the timings link_proxy_test can only bound on a loaded machine.
#include "tandem/netem/link_model.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace tandem::netem {
namespace {

using std::chrono::microseconds;
using std::chrono::milliseconds;
using std::chrono::nanoseconds;

constexpr int64_t kOneBytePerMicrosecond = 8'000'000;  // 8 Mbit/s

LinkConditions Link(int64_t rate_bps, milliseconds rtt) {
  return {.rate_bps = rate_bps, .rtt = rtt, .up = true};
}

LinkChunk Bytes(size_t size, char fill = 'x') {
  return LinkChunk{.bytes = std::vector<char>(size, fill)};
}

class LinkModelTest : public ::testing::Test {
 protected:
  // Time since the test began on the manual clock, for readable expectations.
  std::optional<Clock::Duration> NextDeliveryAfterStart(const LinkModel& link) const {
    const auto deliver = link.NextDelivery();
    if (!deliver) return std::nullopt;
    return *deliver - start_;
  }

  // Moves the clock to `at` after the start (never back).
  void AdvanceTo(Clock::Duration at) { clock_.Advance(start_ + at - clock_.Now()); }

  ManualClock clock_;
  const Clock::TimePoint start_ = clock_.Now();
};

TEST_F(LinkModelTest, DeliversAfterSerializationAndHalfTheRtt) {
  LinkModel link(clock_, Link(kOneBytePerMicrosecond, milliseconds(10)));
  link.Push(Bytes(1000));
  // 1000 bytes take 1 ms on the wire, then 5 ms (rtt / 2) to arrive.
  EXPECT_EQ(NextDeliveryAfterStart(link), microseconds(6000));
  AdvanceTo(microseconds(5999));
  EXPECT_FALSE(link.PopDue().has_value()) << "delivered early";
  AdvanceTo(microseconds(6000));
  const std::optional<LinkChunk> chunk = link.PopDue();
  ASSERT_TRUE(chunk.has_value());
  EXPECT_EQ(chunk->bytes.size(), 1000u);
  EXPECT_TRUE(link.empty());
  EXPECT_FALSE(link.NextDelivery().has_value());
}

TEST_F(LinkModelTest, ChunksSerializeBackToBackAndInOrder) {
  LinkModel link(clock_, Link(kOneBytePerMicrosecond, milliseconds(4)));
  link.Push(Bytes(1000, 'a'));
  link.Push(Bytes(500, 'b'));
  AdvanceTo(microseconds(2000));  // the link is free again at 1.5 ms
  link.Push(Bytes(100, 'c'));

  const struct {
    Clock::Duration deliver;
    char fill;
  } expected[] = {{microseconds(1000 + 2000), 'a'},   // on the wire 0 – 1 ms
                  {microseconds(1500 + 2000), 'b'},   // right behind it, 1 – 1.5 ms
                  {microseconds(2100 + 2000), 'c'}};  // pushed at 2 ms on a free link
  for (const auto& [deliver, fill] : expected) {
    EXPECT_EQ(NextDeliveryAfterStart(link), deliver) << fill;
    AdvanceTo(std::max(deliver, clock_.Now() - start_));
    const std::optional<LinkChunk> chunk = link.PopDue();
    ASSERT_TRUE(chunk.has_value()) << fill;
    EXPECT_EQ(chunk->bytes.front(), fill);
  }
}

TEST_F(LinkModelTest, WithoutRateLimitOnlyTheDelayCounts) {
  LinkModel link(clock_, Link(0, milliseconds(30)));
  link.Push(Bytes(1 << 20));
  EXPECT_EQ(NextDeliveryAfterStart(link), milliseconds(15));
}

TEST_F(LinkModelTest, SerializationTimeIsRoundedUp) {
  LinkModel link(clock_, Link(3, milliseconds(0)));  // 8 bits at 3 bit/s: 2.666... s
  link.Push(Bytes(1));
  EXPECT_EQ(NextDeliveryAfterStart(link), nanoseconds(2'666'666'667));
}

TEST_F(LinkModelTest, EndOfStreamFollowsTheDataBeforeIt) {
  LinkModel link(clock_, Link(kOneBytePerMicrosecond, milliseconds(2)));
  link.Push(Bytes(1000));
  link.Push(LinkChunk{.eof = true});
  AdvanceTo(microseconds(2000));
  const std::optional<LinkChunk> data = link.PopDue();
  ASSERT_TRUE(data.has_value());
  EXPECT_FALSE(data->eof);
  const std::optional<LinkChunk> end = link.PopDue();  // takes no time on the wire
  ASSERT_TRUE(end.has_value());
  EXPECT_TRUE(end->eof);
}

TEST_F(LinkModelTest, ARateChangeReplansOnlyWhatIsNotOnTheWire) {
  LinkModel link(clock_, Link(kOneBytePerMicrosecond, milliseconds(2)));
  link.Push(Bytes(1000, 'a'));  // on the wire 0 – 1 ms, arrives at 2 ms
  link.Push(Bytes(1000, 'b'));  // planned for 1 – 2 ms, not started yet
  AdvanceTo(microseconds(500));
  link.SetConditions(Link(kOneBytePerMicrosecond / 2, milliseconds(10)));
  EXPECT_EQ(link.conditions(), Link(kOneBytePerMicrosecond / 2, milliseconds(10)));
  // 'a' keeps the time it left with; 'b' goes out after it at the new rate (2 ms) and the new delay (5 ms).
  EXPECT_EQ(NextDeliveryAfterStart(link), microseconds(2000));
  AdvanceTo(microseconds(2000));
  ASSERT_TRUE(link.PopDue().has_value());
  EXPECT_EQ(NextDeliveryAfterStart(link), microseconds(1000 + 2000 + 5000));
}

TEST_F(LinkModelTest, AnOutageHoldsEverythingAndResendsFromTheRecovery) {
  LinkModel link(clock_, Link(kOneBytePerMicrosecond, milliseconds(20)));
  link.Push(Bytes(1000));  // would arrive at 11 ms
  AdvanceTo(milliseconds(5));
  link.SetConditions({.up = false});
  EXPECT_FALSE(link.NextDelivery().has_value());
  link.Push(Bytes(200));  // read while down: held as well
  AdvanceTo(milliseconds(500));
  EXPECT_FALSE(link.PopDue().has_value()) << "delivered while the link was down";
  EXPECT_FALSE(link.empty());

  link.SetConditions(Link(kOneBytePerMicrosecond, milliseconds(40)));
  // Both are serialized again from 500 ms, under the new conditions, even the one that was on the wire.
  EXPECT_EQ(NextDeliveryAfterStart(link), milliseconds(500) + microseconds(1000) + milliseconds(20));
  AdvanceTo(milliseconds(521));
  ASSERT_TRUE(link.PopDue().has_value());
  EXPECT_EQ(NextDeliveryAfterStart(link), milliseconds(500) + microseconds(1200) + milliseconds(20));
}

TEST_F(LinkModelTest, ClearDropsTheQueue) {
  LinkModel link(clock_, Link(kOneBytePerMicrosecond, milliseconds(1)));
  link.Push(Bytes(10));
  link.Push(LinkChunk{.eof = true});
  link.Clear();
  EXPECT_TRUE(link.empty());
  AdvanceTo(milliseconds(100));
  EXPECT_FALSE(link.PopDue().has_value());
}

}  // namespace
}  // namespace tandem::netem
