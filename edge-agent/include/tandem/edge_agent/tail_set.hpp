// The cloud tails this edge knows: for each, its connection pool, its link estimates and the monitor that
// feeds them. Tails come from --cloud at start and from the scheduler's plans later; they are never
// removed (a tail that went away just reads as down), so the pointers handed out stay valid while the set
// lives. Thread-safe.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tandem/base/retry.hpp"
#include "tandem/edge_agent/cloud_pool.hpp"
#include "tandem/edge_agent/link_monitor.hpp"
#include "tandem/scheduler/link_estimator.hpp"

namespace tandem::edge_agent {

struct TailLink {
  TailLink(const CloudOptions& options, const wire::Hello& local, int connections,
           const LinkMonitorOptions& monitoring);
  // The link as planning should see it: down while the breaker keeps work away from the tail, unless
  // `honour_breaker` is false (see TailSet::BreakersLeaveATail).
  scheduler::LinkEstimate PlanningEstimate(bool honour_breaker = true) const;

  CloudPool pool;
  scheduler::LinkEstimator link;
  LinkMonitor monitor;  // after `link`, which it feeds
  // Opened by requests that fail on this tail; unlike the link's up/down, which the next answered probe
  // resets, it keeps a tail that answers probes but fails steps out of plans for a growing cool-down.
  CircuitBreaker breaker;
};

class TailSet {
 public:
  // `base` holds the keys, limits and timeout every tail shares (replicas share one server key pair).
  TailSet(CloudOptions base, wire::Hello local, int connections_per_tail, LinkMonitorOptions monitoring,
          size_t max_tails = 16);

  // The tail at `endpoint`, connecting to it on first use; nullptr past max_tails.
  TailLink* Get(const std::string& endpoint);
  // The tail at `endpoint` if known, without connecting.
  TailLink* Find(const std::string& endpoint) const;
  std::vector<std::pair<std::string, TailLink*>> All() const;
  // Whether some tail is up with a breaker that lets work through. When none is, plans ignore the
  // breakers: they exist to move work to the healthier tails, and with none left, refusing all work
  // would turn a partial outage (tails slow or failing some steps) into a total one.
  bool BreakersLeaveATail() const;
  int connected() const;  // handshaken connections, all tails together
  // Each tail's connections, circuit, link and last STATS, in the order the tails came, for GET /v1/plan.
  nlohmann::json Describe() const;

 private:
  const CloudOptions base_;
  const wire::Hello local_;
  const int connections_;
  const LinkMonitorOptions monitoring_;
  const size_t max_tails_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::unique_ptr<TailLink>>> tails_;
};

}  // namespace tandem::edge_agent
