// FairSemaphore: slots go to waiters in arrival order; a waiter that times out leaves the queue.
#include "tandem/base/fair_semaphore.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem {
namespace {

using std::chrono::milliseconds;

// Until `waiters` threads are queued.
void AwaitQueue(const FairSemaphore& semaphore, int waiters) {
  while (semaphore.waiting() < waiters) std::this_thread::sleep_for(milliseconds(1));
}

TEST(FairSemaphoreTest, FreeSlotsAreTakenAtOnceAndTheRestTimeOut) {
  FairSemaphore semaphore(2);
  EXPECT_TRUE(semaphore.AcquireFor(milliseconds(0)));
  EXPECT_TRUE(semaphore.AcquireFor(milliseconds(0)));
  EXPECT_FALSE(semaphore.AcquireFor(milliseconds(20)));
  EXPECT_EQ(semaphore.waiting(), 0);  // the timed-out waiter left the queue
  semaphore.Release();
  EXPECT_TRUE(semaphore.AcquireFor(milliseconds(0)));
}

TEST(FairSemaphoreTest, ReleasedSlotsGoToWaitersInArrivalOrder) {
  FairSemaphore semaphore(1);
  ASSERT_TRUE(semaphore.AcquireFor(milliseconds(0)));
  std::mutex order_mutex;
  std::vector<int> order;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 5; ++i) {
    waiters.emplace_back([&, i] {
      ASSERT_TRUE(semaphore.AcquireFor(milliseconds(10000)));
      {
        const std::lock_guard lock(order_mutex);
        order.push_back(i);
      }
      semaphore.Release();
    });
    AwaitQueue(semaphore, i + 1);  // queued in the order 0, 1, 2, ...
  }
  // A newcomer does not jump the queue, even when it arrives right as the slot is freed.
  semaphore.Release();
  for (auto& waiter : waiters) waiter.join();
  EXPECT_EQ(order, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(FairSemaphoreTest, AWaiterThatGaveUpDoesNotHoldUpTheOnesBehindIt) {
  FairSemaphore semaphore(1);
  ASSERT_TRUE(semaphore.AcquireFor(milliseconds(0)));
  std::thread impatient([&] { EXPECT_FALSE(semaphore.AcquireFor(milliseconds(30))); });
  AwaitQueue(semaphore, 1);
  std::atomic<bool> served{false};
  std::thread patient([&] {
    EXPECT_TRUE(semaphore.AcquireFor(milliseconds(10000)));
    served = true;
  });
  impatient.join();
  semaphore.Release();
  patient.join();
  EXPECT_TRUE(served);
  EXPECT_FALSE(semaphore.AcquireFor(milliseconds(0)));  // the patient one holds the only slot
}

}  // namespace
}  // namespace tandem
