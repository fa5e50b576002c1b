#include "tandem/base/fair_semaphore.hpp"

namespace tandem {

bool FairSemaphore::AcquireFor(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  if (free_ > 0 && waiters_.empty()) {
    --free_;
    return true;
  }
  Waiter self;
  const auto position = waiters_.insert(waiters_.end(), &self);
  if (self.granted_signal.wait_for(lock, timeout, [&] { return self.granted; })) return true;
  waiters_.erase(position);
  return false;
}

void FairSemaphore::Release() {
  const std::lock_guard lock(mutex_);
  if (waiters_.empty()) {
    ++free_;
    return;
  }
  // The slot passes straight to the longest waiter: nobody arriving meanwhile can take it.
  Waiter* next = waiters_.front();
  waiters_.pop_front();
  next->granted = true;
  next->granted_signal.notify_one();
}

int FairSemaphore::waiting() const {
  const std::lock_guard lock(mutex_);
  return static_cast<int>(waiters_.size());
}

}  // namespace tandem
