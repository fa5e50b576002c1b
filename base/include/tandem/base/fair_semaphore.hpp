// A counting semaphore that serves waiters in arrival order.
//
// std::counting_semaphore promises no order: under load a request that has just arrived can take a freed
// slot ahead of one that has waited for seconds, and the unlucky one runs into its timeout while the queue
// is short (seen in the load test as p99 queueing of ~10 s and 503s with 4 slots and 8 clients). Here a
// released slot goes to the longest waiter, so a wait is bounded by the work queued ahead of it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <list>
#include <mutex>

namespace tandem {

class FairSemaphore {
 public:
  explicit FairSemaphore(int count) : free_(count) {}
  FairSemaphore(const FairSemaphore&) = delete;
  FairSemaphore& operator=(const FairSemaphore&) = delete;

  // Takes a slot, waiting behind earlier callers for up to `timeout`; false when none came in time.
  bool AcquireFor(std::chrono::milliseconds timeout);
  void Release();
  int waiting() const;

 private:
  struct Waiter {
    std::condition_variable granted_signal;
    bool granted = false;
  };

  mutable std::mutex mutex_;
  int free_;
  std::list<Waiter*> waiters_;  // front: the longest waiting
};

}  // namespace tandem
