#include "tandem/edge_agent/cloud_pool.hpp"

#include "tandem/base/log.hpp"
#include "tandem/base/retry.hpp"

namespace tandem::edge_agent {
namespace {

// How long one handshake may wait.
constexpr auto kHandshakeTimeout = std::chrono::milliseconds(1000);
// The pauses between failed attempts: quick at first (a tail restarting), then no more than one attempt
// every few seconds per connection while it stays away. Jittered: all connections of all edges lose a
// tail at the same moment, and must not come back to it in step.
constexpr BackoffPolicy kReconnect{.initial = std::chrono::milliseconds(100), .max = std::chrono::seconds(5)};

}  // namespace

CloudPool::CloudPool(CloudOptions options, wire::Hello local, int size)
    : options_(std::move(options)), local_(std::move(local)), size_(size) {
  connector_ = std::thread([this] { RunConnector(); });
}

CloudPool::~CloudPool() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  connector_.join();
  idle_.clear();  // sockets close before the context does
}

std::unique_ptr<CloudConnection> CloudPool::Acquire(std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  if (!changed_.wait_for(lock, wait, [&] { return stopping_ || !idle_.empty(); }) || stopping_)
    return nullptr;
  auto connection = std::move(idle_.front());
  idle_.pop_front();
  return connection;
}

void CloudPool::Release(std::unique_ptr<CloudConnection> connection, bool healthy) {
  const std::lock_guard lock(mutex_);
  if (healthy) {
    idle_.push_back(std::move(connection));
  } else {
    connection.reset();
    --connected_;
  }
  changed_.notify_all();
}

std::string CloudPool::last_error() const {
  const std::lock_guard lock(mutex_);
  return last_error_;
}

void CloudPool::RunConnector() {
  CloudOptions options = options_;
  options.timeout = std::min(options.timeout, std::chrono::milliseconds(kHandshakeTimeout));
  Backoff backoff(kReconnect);
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (connected_.load() >= size_) {
      changed_.wait(lock, [&] { return stopping_ || connected_.load() < size_; });
      continue;
    }
    lock.unlock();
    auto connection = CloudConnection::Connect(context_, options, local_);
    lock.lock();
    if (connection.ok()) {
      // Replies wait as long as the edge was told to (--timeout-ms); only the handshake was short.
      (*connection)->set_timeout(options_.timeout);
      idle_.push_back(std::move(*connection));
      if (++connected_ == size_)
        Log(LogLevel::kInfo, "edge", "connected to the cloud tail", {{"cloud", options_.endpoint}});
      last_error_.clear();
      backoff.Reset();
      changed_.notify_all();
    } else {
      if (last_error_ != connection.status().message()) {
        Log(LogLevel::kWarn, "edge", "cannot reach the cloud tail; retrying",
            {{"cloud", options_.endpoint}, {"error", connection.status().message()}});
      }
      last_error_ = connection.status().message();
      changed_.wait_for(lock, backoff.Next(), [&] { return stopping_; });
    }
  }
}

}  // namespace tandem::edge_agent
