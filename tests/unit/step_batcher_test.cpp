// Continuous batching's policy on a ManualClock, without threads: a lone session never waits, a batch waits
// up to max_wait for a step from each session of the last two batches and flushes when they are in or the
// wait is over, batching recovers after steps came one at a time,
// batches stop at max_batch, each session's steps keep their order, and OPENs, prefills, VERIFY steps and
// private-output steps run alone.
#include "tandem/cloud_tail/step_batcher.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <deque>
#include <memory>
#include <vector>

#include "tandem/base/clock.hpp"

namespace tandem::cloud_tail {
namespace {

using std::chrono::microseconds;

constexpr microseconds kWait{2000};

std::shared_ptr<Session> NewSession(uint64_t id, bool private_output = false) {
  auto session = std::make_shared<Session>();
  session->id = id;
  if (private_output) session->open.end_block = 3;
  return session;
}

Job Decode(const std::shared_ptr<Session>& session, uint32_t rows = 1) {
  wire::Message message = wire::MakeActivations(session->id, 0, 0, rows, 4, {}, Compression::kNone, {});
  return {session, std::move(message)};
}

Job VerifyOf(const std::shared_ptr<Session>& session) {
  const std::vector<int> draft = {5, 6};
  return {session, wire::MakeVerify(session->id, 0, 0, 3, 4, {}, Compression::kNone, draft, {})};
}

Job OpenOf(const std::shared_ptr<Session>& session) {
  return {session, wire::MakeOpen({.session = session->id, .cut = 1})};
}

std::vector<uint64_t> Ids(const std::vector<Job>& jobs) {
  std::vector<uint64_t> ids;
  for (const Job& job : jobs) ids.push_back(job.session->id);
  return ids;
}

class StepBatcherTest : public ::testing::Test {
 protected:
  // One batch as a worker takes it: begun now, waiting (the clock moved by `waited`) while it should.
  std::vector<Job> TakeBatch(StepBatcher& batcher, microseconds waited = microseconds(0)) {
    batcher.Begin(queue_, clock_.Now());
    if (batcher.ShouldWait(clock_.Now())) {
      clock_.Advance(waited);
      batcher.Collect(queue_);
    }
    return batcher.Finish();
  }

  ManualClock clock_;
  std::deque<Job> queue_;
};

TEST_F(StepBatcherTest, ALoneSessionNeverWaits) {
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1);
  queue_.push_back(Decode(a));
  batcher.Begin(queue_, clock_.Now());
  EXPECT_FALSE(batcher.ShouldWait(clock_.Now()));
  EXPECT_EQ(Ids(batcher.Finish()), (std::vector<uint64_t>{1}));
  EXPECT_EQ(batcher.expected(), 1u);
  EXPECT_TRUE(queue_.empty());
}

TEST_F(StepBatcherTest, ABatchWaitsForAsManyAsLastTimeThenFlushes) {
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1), b = NewSession(2), c = NewSession(3);
  for (const auto& session : {a, b, c}) queue_.push_back(Decode(session));
  EXPECT_EQ(TakeBatch(batcher).size(), 3u);
  EXPECT_EQ(batcher.expected(), 3u);

  // Only one of the three is back: wait, until the deadline.
  queue_.push_back(Decode(b));
  batcher.Begin(queue_, clock_.Now());
  EXPECT_TRUE(batcher.ShouldWait(clock_.Now()));
  EXPECT_EQ(batcher.deadline(), clock_.Now() + kWait);
  clock_.Advance(microseconds(500));
  queue_.push_back(Decode(a));
  batcher.Collect(queue_);
  EXPECT_TRUE(batcher.ShouldWait(clock_.Now()));  // two of three
  clock_.Advance(microseconds(500));
  queue_.push_back(Decode(c));
  batcher.Collect(queue_);
  EXPECT_FALSE(batcher.ShouldWait(clock_.Now()));  // all in: flush before the deadline
  EXPECT_EQ(Ids(batcher.Finish()), (std::vector<uint64_t>{2, 1, 3}));

  // Two of three, and the wait runs out: flush with two. b decoded a batch ago, so the next batch still
  // waits for it; after a second batch without b, only two are expected.
  for (int batch = 0; batch < 2; ++batch) {
    EXPECT_EQ(batcher.expected(), 3u);
    queue_.push_back(Decode(a));
    queue_.push_back(Decode(c));
    batcher.Begin(queue_, clock_.Now());
    clock_.Advance(kWait - microseconds(1));
    EXPECT_TRUE(batcher.ShouldWait(clock_.Now()));
    clock_.Advance(microseconds(1));
    EXPECT_FALSE(batcher.ShouldWait(clock_.Now()));
    EXPECT_EQ(batcher.Finish().size(), 2u);
  }
  EXPECT_EQ(batcher.expected(), 2u);
}

TEST_F(StepBatcherTest, BatchingRecoversAfterStepsCameOneAtATime) {
  // Four sessions whose steps came one at a time (each batch flushed alone, expecting one): once two
  // batches remember two sessions, the next waits for a second step, and the batches grow back to four.
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1), b = NewSession(2), c = NewSession(3), d = NewSession(4);
  queue_.push_back(Decode(a));
  EXPECT_EQ(TakeBatch(batcher).size(), 1u);
  EXPECT_EQ(batcher.expected(), 1u);
  queue_.push_back(Decode(b));
  EXPECT_EQ(TakeBatch(batcher).size(), 1u);
  EXPECT_EQ(batcher.expected(), 2u);

  // Each session's next step comes one at a time; a batch takes them while it waits, and flushes when it
  // has as many as it expects.
  std::vector<size_t> sizes;
  for (int round = 0; round < 2; ++round) {
    for (const auto& session : {a, b, c, d}) {
      queue_.push_back(Decode(session));
      if (batcher.size() == 0) {
        batcher.Begin(queue_, clock_.Now());
      } else {
        batcher.Collect(queue_);
      }
      if (!batcher.ShouldWait(clock_.Now())) sizes.push_back(batcher.Finish().size());
    }
  }
  EXPECT_EQ(sizes, (std::vector<size_t>{2, 2, 4}));
  EXPECT_EQ(batcher.expected(), 4u);
}

TEST_F(StepBatcherTest, AClosedSessionIsNotExpected) {
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1);
  auto b = NewSession(2);
  queue_.push_back(Decode(a));
  queue_.push_back(Decode(b));
  EXPECT_EQ(TakeBatch(batcher).size(), 2u);
  EXPECT_EQ(batcher.expected(), 2u);
  b.reset();  // closed: the tail's session table and the batch held the last references
  queue_.push_back(Decode(a));
  batcher.Begin(queue_, clock_.Now());
  EXPECT_FALSE(batcher.ShouldWait(clock_.Now()));
  EXPECT_EQ(batcher.Finish().size(), 1u);
}

TEST_F(StepBatcherTest, ABatchStopsAtMaxBatch) {
  StepBatcher batcher({.max_batch = 4, .max_wait = kWait});
  std::vector<std::shared_ptr<Session>> sessions;
  for (uint64_t id = 1; id <= 6; ++id) {
    sessions.push_back(NewSession(id));
    queue_.push_back(Decode(sessions.back()));
  }
  EXPECT_EQ(Ids(TakeBatch(batcher)), (std::vector<uint64_t>{1, 2, 3, 4}));
  ASSERT_EQ(queue_.size(), 2u);
  // Expecting four, but max_batch caps the wait too: with two more ready, no wait past them.
  for (const auto& session : sessions) queue_.push_back(Decode(session));
  EXPECT_EQ(Ids(TakeBatch(batcher)), (std::vector<uint64_t>{5, 6, 1, 2}));
  // max_batch 1: every step alone, never waiting.
  StepBatcher alone({.max_batch = 1, .max_wait = kWait});
  queue_.clear();
  for (const auto& session : sessions) queue_.push_back(Decode(session));
  for (int i = 0; i < 3; ++i) {
    alone.Begin(queue_, clock_.Now());
    EXPECT_FALSE(alone.ShouldWait(clock_.Now()));
    EXPECT_EQ(alone.Finish().size(), 1u);
  }
}

TEST_F(StepBatcherTest, EachSessionsStepsKeepTheirOrder) {
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1), b = NewSession(2), c = NewSession(3);
  // a's second step waits for its first; c's decode is behind its prefill, which runs alone later.
  queue_.push_back(Decode(a));
  queue_.push_back(Decode(a));
  queue_.push_back(Decode(c, /*rows=*/5));
  queue_.push_back(Decode(c));
  queue_.push_back(Decode(b));
  EXPECT_EQ(Ids(TakeBatch(batcher)), (std::vector<uint64_t>{1, 2}));
  ASSERT_EQ(queue_.size(), 3u);
  EXPECT_EQ(Ids(TakeBatch(batcher, kWait)), (std::vector<uint64_t>{1}));  // a's second, front of queue
  const std::vector<Job> prefill = TakeBatch(batcher);
  ASSERT_EQ(prefill.size(), 1u);
  EXPECT_EQ(prefill.front().message.header.rows, 5u);
  EXPECT_EQ(Ids(TakeBatch(batcher)), (std::vector<uint64_t>{3}));
}

TEST_F(StepBatcherTest, OpensPrefillsAndPrivateOutputStepsRunAlone) {
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1), b = NewSession(2), middle = NewSession(3, /*private_output=*/true);
  queue_.push_back(OpenOf(a));
  queue_.push_back(Decode(b));
  std::vector<Job> open = TakeBatch(batcher);
  ASSERT_EQ(open.size(), 1u);
  EXPECT_TRUE(open.front().opens());
  EXPECT_EQ(batcher.expected(), 1u);  // an OPEN says nothing of the next batch
  EXPECT_EQ(TakeBatch(batcher).size(), 1u);

  // A prefill: its session decodes next, so the next batch expects one more.
  queue_.push_back(Decode(a, /*rows=*/4));
  EXPECT_EQ(TakeBatch(batcher).size(), 1u);
  EXPECT_EQ(batcher.expected(), 2u);

  // A private-output session's step runs alone, and is never taken into a batch.
  queue_.push_back(Decode(a));
  queue_.push_back(Decode(middle));
  queue_.push_back(Decode(b));
  EXPECT_EQ(Ids(TakeBatch(batcher)), (std::vector<uint64_t>{1, 2}));
  const std::vector<Job> alone = TakeBatch(batcher);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_TRUE(RunsAlone(alone.front()));
  EXPECT_EQ(alone.front().session->id, 3u);
}

TEST_F(StepBatcherTest, AVerifyRunsAloneBetweenBatches) {
  StepBatcher batcher({.max_batch = 8, .max_wait = kWait});
  const auto a = NewSession(1), b = NewSession(2), c = NewSession(3);
  queue_.push_back(Decode(a));
  queue_.push_back(VerifyOf(b));
  queue_.push_back(Decode(c));
  EXPECT_EQ(Ids(TakeBatch(batcher)), (std::vector<uint64_t>{1, 3}));
  const std::vector<Job> alone = TakeBatch(batcher);
  ASSERT_EQ(alone.size(), 1u);
  EXPECT_TRUE(RunsAlone(alone.front()));
  EXPECT_EQ(alone.front().message.header.type, wire::MessageType::kVerify);
}

}  // namespace
}  // namespace tandem::cloud_tail
