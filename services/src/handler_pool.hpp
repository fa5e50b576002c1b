// The threads that run handlers and stream producers off the io threads: Boost.Asio's thread_pool, first
// come first served, plus the shutdown the server needs (queued tasks dropped without running, at once,
// so that the sessions they hold end before the io_context does).
//
// Threads: Submit from any thread; Shutdown not from a pool thread (it joins them). The queue is
// unbounded here; the server bounds it: a connection reads its next request only once the previous
// answer is out, so it holds at most one task per open connection (max_connections).
#pragma once

#include <functional>
#include <mutex>

#include <boost/asio/thread_pool.hpp>

namespace tandem::services {

class HandlerPool {
 public:
  explicit HandlerPool(int threads);
  ~HandlerPool() { Shutdown(); }
  HandlerPool(const HandlerPool&) = delete;
  HandlerPool& operator=(const HandlerPool&) = delete;

  // Runs `task` on a pool thread once one is free. After Shutdown the task is dropped without running.
  void Submit(std::function<void()> task);

  // Drops the queued tasks, waits for the running ones and joins the threads. Idempotent.
  void Shutdown();

 private:
  // thread_pool keeps what was queued when it stopped until the pool is destroyed; shutting its services
  // down (protected in asio::execution_context) destroys it now.
  class Pool : public boost::asio::thread_pool {
   public:
    using thread_pool::thread_pool;
    void DropQueued() { shutdown(); }
  };

  std::mutex mutex_;  // Submit and Shutdown: nothing is queued once the queue has been dropped
  bool stopped_ = false;
  Pool pool_;
};

}  // namespace tandem::services
