// Backoff delays and the circuit breaker's states, on a manual clock.
#include "tandem/base/retry.hpp"

#include <gtest/gtest.h>

#include <set>

namespace tandem {
namespace {

using std::chrono::milliseconds;

TEST(BackoffTest, DelaysGrowGeometricallyWithinTheJitterBandUpToTheMax) {
  Backoff backoff({.initial = milliseconds(100), .max = milliseconds(1000), .multiplier = 2, .jitter = 0.5},
                  /*seed=*/7);
  const double expected[] = {100, 200, 400, 800, 1000, 1000, 1000};
  for (const double full : expected) {
    const double delay = ToMilliseconds(backoff.Next());
    EXPECT_GE(delay, full * 0.5);
    EXPECT_LE(delay, full);
  }
  EXPECT_EQ(backoff.attempts(), 7);
  backoff.Reset();
  EXPECT_LE(ToMilliseconds(backoff.Next()), 100);
}

TEST(BackoffTest, JitterSpreadsRetriesThatStartTogether) {
  // Many clients failing at the same moment must not retry at the same moment.
  std::set<int64_t> first_delays;
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Backoff backoff({.initial = milliseconds(100)}, seed);
    first_delays.insert(std::chrono::duration_cast<std::chrono::microseconds>(backoff.Next()).count());
  }
  EXPECT_GT(first_delays.size(), 45u);
  Backoff fixed({.initial = milliseconds(100), .jitter = 0});
  EXPECT_EQ(fixed.Next(), milliseconds(100));
  EXPECT_EQ(fixed.Next(), milliseconds(200));
}

class CircuitBreakerTest : public ::testing::Test {
 protected:
  ManualClock clock_;
  // No jitter: the cool-downs are exact.
  CircuitBreaker breaker_{
      clock_,
      {.failure_threshold = 2,
       .open_for = {.initial = milliseconds(1000), .max = milliseconds(4000), .jitter = 0}}};
};

TEST_F(CircuitBreakerTest, OpensAfterConsecutiveFailuresOnly) {
  EXPECT_TRUE(breaker_.Allow());
  EXPECT_FALSE(breaker_.RecordFailure());
  breaker_.RecordSuccess();  // not consecutive
  EXPECT_FALSE(breaker_.RecordFailure());
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(breaker_.Allow());
  EXPECT_TRUE(breaker_.RecordFailure());  // this one opened it
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
  EXPECT_FALSE(breaker_.Allow());
  EXPECT_FALSE(breaker_.Permits());
  EXPECT_EQ(breaker_.opened(), 1);
}

TEST_F(CircuitBreakerTest, AfterTheCoolDownOneTrialGoesAndItsSuccessCloses) {
  breaker_.RecordFailure();
  breaker_.RecordFailure();
  clock_.Advance(milliseconds(999));
  EXPECT_FALSE(breaker_.Allow());
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_TRUE(breaker_.Permits());
  EXPECT_TRUE(breaker_.Allow());   // the trial
  EXPECT_FALSE(breaker_.Allow());  // only one at a time
  EXPECT_FALSE(breaker_.Permits());
  breaker_.RecordSuccess();
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kClosed);
  EXPECT_TRUE(breaker_.Allow());
  EXPECT_TRUE(breaker_.Allow());
}

TEST_F(CircuitBreakerTest, AFailedTrialReopensForLongerUpToTheMax) {
  breaker_.RecordFailure();
  breaker_.RecordFailure();
  const int expected_ms[] = {2000, 4000, 4000};
  clock_.Advance(milliseconds(1000));
  for (const int cool_down : expected_ms) {
    ASSERT_TRUE(breaker_.Allow());
    breaker_.RecordFailure();
    EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
    clock_.Advance(milliseconds(cool_down - 1));
    EXPECT_FALSE(breaker_.Allow()) << cool_down;
    clock_.Advance(milliseconds(1));
  }
  EXPECT_EQ(breaker_.opened(), 4);
  // A success resets the cool-down to its first length.
  ASSERT_TRUE(breaker_.Allow());
  breaker_.RecordSuccess();
  breaker_.RecordFailure();
  breaker_.RecordFailure();
  clock_.Advance(milliseconds(1000));
  EXPECT_TRUE(breaker_.Allow());
}

TEST_F(CircuitBreakerTest, LateOutcomesOfWorkAdmittedBeforeItOpenedChangeNothing) {
  breaker_.RecordFailure();
  breaker_.RecordFailure();
  breaker_.RecordSuccess();                // a request from before the opening
  EXPECT_FALSE(breaker_.RecordFailure());  // already open
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kOpen);
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(breaker_.state(), CircuitBreaker::State::kHalfOpen);
  EXPECT_EQ(breaker_.opened(), 1);
}

TEST_F(CircuitBreakerTest, ATrialThatNeverReportsIsGivenUp) {
  breaker_.RecordFailure();
  breaker_.RecordFailure();
  clock_.Advance(milliseconds(1000));
  ASSERT_TRUE(breaker_.Allow());
  clock_.Advance(milliseconds(3999));
  EXPECT_FALSE(breaker_.Allow());
  clock_.Advance(milliseconds(1));
  EXPECT_TRUE(breaker_.Allow());
}

TEST(CircuitStateNameTest, NamesEveryState) {
  EXPECT_EQ(CircuitStateName(CircuitBreaker::State::kClosed), "closed");
  EXPECT_EQ(CircuitStateName(CircuitBreaker::State::kOpen), "open");
  EXPECT_EQ(CircuitStateName(CircuitBreaker::State::kHalfOpen), "half_open");
}

}  // namespace
}  // namespace tandem
