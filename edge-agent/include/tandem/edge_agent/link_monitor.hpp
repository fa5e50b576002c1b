// Watches the link to one cloud tail on a connection of its own, so that probes never wait behind a
// generation: PING every probe interval (round trip, and whether the tail answers at all) and STATS every
// stats interval (its load and per-block compute times). Feeds a LinkEstimator; transfers of real
// generations feed the same estimator through RemoteTail's step observer.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>

#include "tandem/base/clock.hpp"
#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/scheduler/link_estimator.hpp"

namespace tandem::edge_agent {

struct LinkMonitorOptions {
  std::chrono::milliseconds probe_interval{200};
  std::chrono::milliseconds stats_interval{1000};
  // A probe is missed after max(this, 4 x the estimated RTT): a slow link is not a dead one.
  std::chrono::milliseconds min_probe_timeout{500};
};

// The tail as last reported.
struct TailSnapshot {
  wire::Hello hello;  // its limits and codecs
  wire::TailStats stats;
  Clock::TimePoint at;
};

class LinkMonitor {
 public:
  LinkMonitor(CloudOptions cloud, wire::Hello local, scheduler::LinkEstimator& estimator,
              LinkMonitorOptions options = {});
  ~LinkMonitor();
  LinkMonitor(const LinkMonitor&) = delete;
  LinkMonitor& operator=(const LinkMonitor&) = delete;

  // Nullopt until the first STATS reply.
  std::optional<TailSnapshot> tail() const;
  const std::string& endpoint() const { return cloud_.endpoint; }

 private:
  void Run();
  // One PING (or STATS request) and its reply; false when none came within the timeout.
  bool Probe(CloudConnection& connection, wire::Message request, wire::MessageType reply_type,
             std::chrono::milliseconds timeout, wire::Message* reply);

  const CloudOptions cloud_;
  const wire::Hello local_;
  scheduler::LinkEstimator& estimator_;
  const LinkMonitorOptions options_;
  zmq::context_t context_;

  mutable std::mutex mutex_;
  std::condition_variable stop_;
  bool stopping_ = false;
  std::optional<TailSnapshot> tail_;
  uint64_t next_sequence_ = 0;
  std::thread thread_;
};

}  // namespace tandem::edge_agent
