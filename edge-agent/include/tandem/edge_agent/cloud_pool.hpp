// The edge's connections to its cloud tail: a fixed number of CloudConnections, each used by one request
// at a time, opened (and re-opened after a failure) by a background thread, so that the edge can start
// before its tail and recover when the tail comes back.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "tandem/edge_agent/remote_tail.hpp"

namespace tandem::edge_agent {

class CloudPool {
 public:
  // Starts connecting `size` connections to `options.endpoint`, each handshaking with `local`.
  CloudPool(CloudOptions options, wire::Hello local, int size);
  ~CloudPool();  // stops reconnecting; connections close
  CloudPool(const CloudPool&) = delete;
  CloudPool& operator=(const CloudPool&) = delete;

  // An idle connection, waiting up to `wait` for one; nullptr when none became free (or none is up).
  std::unique_ptr<CloudConnection> Acquire(std::chrono::milliseconds wait);
  // Returns a connection; an unhealthy one (its tail failed or timed out) is dropped and replaced.
  void Release(std::unique_ptr<CloudConnection> connection, bool healthy);

  int connected() const { return connected_.load(); }  // handshaken, idle or in use
  int size() const { return size_; }
  const std::string& endpoint() const { return options_.endpoint; }
  std::string last_error() const;

 private:
  void RunConnector();

  const CloudOptions options_;
  const wire::Hello local_;
  const int size_;
  zmq::context_t context_;

  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::unique_ptr<CloudConnection>> idle_;
  std::string last_error_;
  bool stopping_ = false;
  std::atomic<int> connected_{0};
  std::thread connector_;
};

// A connection borrowed from the pool for one generation; it goes back when the lease ends (or is dropped
// and replaced when marked broken).
class CloudLease {
 public:
  CloudLease(CloudPool& pool, std::unique_ptr<CloudConnection> connection)
      : pool_(pool), connection_(std::move(connection)) {}
  ~CloudLease() { pool_.Release(std::move(connection_), healthy_); }
  CloudLease(const CloudLease&) = delete;
  CloudLease& operator=(const CloudLease&) = delete;

  CloudConnection& connection() { return *connection_; }
  void MarkBroken() { healthy_ = false; }

 private:
  CloudPool& pool_;
  std::unique_ptr<CloudConnection> connection_;
  bool healthy_ = true;
};

}  // namespace tandem::edge_agent
