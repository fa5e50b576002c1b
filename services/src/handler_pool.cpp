#include "handler_pool.hpp"

#include <cstddef>
#include <utility>

#include <boost/asio/post.hpp>

namespace tandem::services {

HandlerPool::HandlerPool(int threads) : pool_(static_cast<std::size_t>(threads)) {}

void HandlerPool::Submit(std::function<void()> task) {
  {
    std::lock_guard lock(mutex_);
    if (!stopped_) {
      boost::asio::post(pool_, std::move(task));
      return;
    }
  }
  task = nullptr;  // outside the lock: dropping a task may end a session
}

void HandlerPool::Shutdown() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
  }
  pool_.stop();
  pool_.join();
  pool_.DropQueued();
}

}  // namespace tandem::services
