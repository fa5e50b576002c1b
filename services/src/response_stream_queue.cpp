#include "tandem/services/response_stream_queue.hpp"

#include <chrono>
#include <utility>

namespace tandem::services {

ResponseStreamQueue::ResponseStreamQueue(size_t max_queued_bytes, const std::atomic<bool>& server_stopping,
                                         std::function<void()> wake)
    : max_queued_bytes_(max_queued_bytes), server_stopping_(server_stopping), wake_(std::move(wake)) {}

bool ResponseStreamQueue::Write(std::string data) {
  std::unique_lock lock(mutex_);
  // Stop marks every queue gone too; the timed wait is a backstop for server_stopping_, not the mechanism.
  while (queued_bytes_ >= max_queued_bytes_ && !ClientGone()) {
    drained_.wait_for(lock, std::chrono::milliseconds(50));
  }
  if (ClientGone()) return false;
  if (data.empty()) return true;  // an empty chunk would end the body
  queued_bytes_ += data.size();
  pieces_.push_back(std::move(data));
  if (wake_pending_) return true;
  wake_pending_ = true;
  lock.unlock();
  wake_();
  return true;
}

bool ResponseStreamQueue::ClientGone() const {
  return gone_ || server_stopping_;
}

std::optional<std::string> ResponseStreamQueue::TakeNext() {
  std::lock_guard lock(mutex_);
  wake_pending_ = false;
  if (pieces_.empty()) return std::nullopt;
  std::string piece = std::move(pieces_.front());
  pieces_.pop_front();
  return piece;
}

void ResponseStreamQueue::Written(size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    queued_bytes_ -= bytes;
  }
  drained_.notify_all();
}

void ResponseStreamQueue::MarkGone() {
  {
    std::lock_guard lock(mutex_);
    gone_ = true;
  }
  drained_.notify_all();
}

}  // namespace tandem::services
