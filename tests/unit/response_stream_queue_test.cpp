// The queue between a streamed response's producer and its connection, without a socket: pieces in
// order, one wake per batch, an empty write sending nothing, Write blocking at the byte limit until the
// writer catches up, and a client gone (or a server stopping) refusing writes and freeing a blocked one.
#include "tandem/services/response_stream_queue.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <optional>
#include <string>

namespace tandem::services {
namespace {

using std::chrono::milliseconds;

// Long enough that a blocked Write that should have returned fails the test rather than hangs it.
constexpr std::chrono::seconds kTimeout{5};

class ResponseStreamQueueTest : public ::testing::Test {
 protected:
  std::atomic<bool> stopping_ = false;
  std::atomic<int> wakes_ = 0;
};

TEST_F(ResponseStreamQueueTest, PiecesComeOutInOrderWithOneWakePerBatch) {
  ResponseStreamQueue queue(1 << 20, stopping_, [this] { ++wakes_; });
  EXPECT_TRUE(queue.Write("a"));
  EXPECT_TRUE(queue.Write("bc"));
  EXPECT_EQ(wakes_, 1) << "the writer is woken once until it takes a piece";
  EXPECT_EQ(queue.TakeNext(), "a");
  EXPECT_EQ(queue.TakeNext(), "bc");
  EXPECT_EQ(queue.TakeNext(), std::nullopt);
  EXPECT_TRUE(queue.Write("d"));
  EXPECT_EQ(wakes_, 2);
  EXPECT_FALSE(queue.ClientGone());
}

TEST_F(ResponseStreamQueueTest, AnEmptyWriteSendsNothing) {
  ResponseStreamQueue queue(1 << 20, stopping_, [this] { ++wakes_; });
  EXPECT_TRUE(queue.Write(""));  // an empty chunk would end the body
  EXPECT_EQ(wakes_, 0);
  EXPECT_EQ(queue.TakeNext(), std::nullopt);
}

TEST_F(ResponseStreamQueueTest, WriteBlocksAtTheLimitUntilThePiecesAreWritten) {
  ResponseStreamQueue queue(4, stopping_, [this] { ++wakes_; });
  EXPECT_TRUE(queue.Write("abcd"));  // the limit is reached, not passed: this one goes in
  std::future<bool> blocked = std::async(std::launch::async, [&queue] { return queue.Write("e"); });
  EXPECT_EQ(blocked.wait_for(milliseconds(100)), std::future_status::timeout) << "Write passed the limit";
  const std::optional<std::string> piece = queue.TakeNext();
  ASSERT_EQ(piece, "abcd");
  EXPECT_EQ(blocked.wait_for(milliseconds(100)), std::future_status::timeout)
      << "a taken piece still counts until it is written";
  queue.Written(piece->size());
  ASSERT_EQ(blocked.wait_for(kTimeout), std::future_status::ready);
  EXPECT_TRUE(blocked.get());
  EXPECT_EQ(queue.TakeNext(), "e");
}

TEST_F(ResponseStreamQueueTest, AClientGoneFreesABlockedWriteAndRefusesMore) {
  ResponseStreamQueue queue(1, stopping_, [this] { ++wakes_; });
  EXPECT_TRUE(queue.Write("x"));
  std::future<bool> blocked = std::async(std::launch::async, [&queue] { return queue.Write("y"); });
  queue.MarkGone();
  ASSERT_EQ(blocked.wait_for(kTimeout), std::future_status::ready);
  EXPECT_FALSE(blocked.get());
  EXPECT_TRUE(queue.ClientGone());
  EXPECT_FALSE(queue.Write("z"));
}

TEST_F(ResponseStreamQueueTest, AStoppingServerLooksLikeAClientGone) {
  ResponseStreamQueue queue(1 << 20, stopping_, [this] { ++wakes_; });
  stopping_ = true;
  EXPECT_TRUE(queue.ClientGone());
  EXPECT_FALSE(queue.Write("late"));
  EXPECT_EQ(wakes_, 0);
}

}  // namespace
}  // namespace tandem::services
