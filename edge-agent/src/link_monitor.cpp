#include "tandem/edge_agent/link_monitor.hpp"

#include "tandem/base/log.hpp"

namespace tandem::edge_agent {

LinkMonitor::LinkMonitor(CloudOptions cloud, wire::Hello local, scheduler::LinkEstimator& estimator,
                         LinkMonitorOptions options)
    : cloud_(std::move(cloud)), local_(std::move(local)), estimator_(estimator), options_(options) {
  thread_ = std::thread([this] { Run(); });
}

LinkMonitor::~LinkMonitor() {
  {
    const std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  stop_.notify_all();
  thread_.join();
}

std::optional<TailSnapshot> LinkMonitor::tail() const {
  const std::lock_guard lock(mutex_);
  return tail_;
}

bool LinkMonitor::Probe(CloudConnection& connection, wire::Message request, wire::MessageType reply_type,
                        std::chrono::milliseconds timeout, wire::Message* reply) {
  const uint64_t sequence = ++next_sequence_;
  request.header.sequence = sequence;
  if (!connection.channel().Send(request).ok()) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    auto message = connection.channel().Receive(left);
    if (!message.ok()) return false;
    // Late replies to earlier, timed-out probes are skipped.
    if (message->header.type == reply_type && message->header.sequence == sequence) {
      *reply = std::move(*message);
      return true;
    }
  }
}

void LinkMonitor::Run() {
  std::unique_ptr<CloudConnection> connection;
  auto next_stats = std::chrono::steady_clock::now();
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    const double rtt_ms = estimator_.Estimate().rtt_ms;
    const auto timeout =
        std::max(options_.min_probe_timeout, std::chrono::milliseconds(static_cast<int64_t>(4 * rtt_ms)));
    if (!connection) {
      CloudOptions options = cloud_;
      options.timeout = timeout;
      auto connected = CloudConnection::Connect(context_, options, local_);
      if (connected.ok()) {
        connection = std::move(*connected);
      } else {
        estimator_.RecordMissedProbe();
      }
    }
    if (connection) {
      wire::Message reply;
      const auto sent = std::chrono::steady_clock::now();
      if (Probe(*connection, wire::MakePing({}), wire::MessageType::kPong, timeout, &reply)) {
        estimator_.RecordRtt(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - sent).count());
      } else {
        estimator_.RecordMissedProbe();
      }
      if (std::chrono::steady_clock::now() >= next_stats) {
        next_stats = std::chrono::steady_clock::now() + options_.stats_interval;
        if (Probe(*connection, wire::MakeStatsRequest(0), wire::MessageType::kStats, timeout, &reply)) {
          if (auto stats = wire::ParseStats(reply); stats.ok()) {
            const std::lock_guard guard(mutex_);
            tail_ = TailSnapshot{connection->remote(), std::move(*stats), SteadyClock::Instance().Now()};
          } else {
            Log(LogLevel::kWarn, "edge", "unreadable STATS from the tail",
                {{"cloud", cloud_.endpoint}, {"error", stats.status().message()}});
          }
        } else {
          // PING is answered before any handshake, STATS only after one: a restarted tail does not know
          // this connection any more. Start over with a fresh HELLO.
          connection.reset();
        }
      }
    }
    lock.lock();
    stop_.wait_for(lock, options_.probe_interval, [&] { return stopping_; });
  }
  lock.unlock();
  connection.reset();  // its socket closes before the context
}

}  // namespace tandem::edge_agent
