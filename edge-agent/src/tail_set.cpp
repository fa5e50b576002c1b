#include "tandem/edge_agent/tail_set.hpp"

#include <nlohmann/json.hpp>

#include "tandem/base/clock.hpp"

namespace tandem::edge_agent {

TailLink::TailLink(const CloudOptions& options, const wire::Hello& local, int connections,
                   const LinkMonitorOptions& monitoring)
    : pool(options, local, connections),
      link(SteadyClock::Instance()),
      monitor(options, local, link, monitoring),
      breaker(SteadyClock::Instance()) {}

scheduler::LinkEstimate TailLink::PlanningEstimate(bool honour_breaker) const {
  scheduler::LinkEstimate estimate = link.Estimate();
  if (honour_breaker && !breaker.Permits()) estimate.up = false;
  return estimate;
}

TailSet::TailSet(CloudOptions base, wire::Hello local, int connections_per_tail,
                 LinkMonitorOptions monitoring, size_t max_tails)
    : base_(std::move(base)),
      local_(std::move(local)),
      connections_(connections_per_tail),
      monitoring_(monitoring),
      max_tails_(max_tails) {}

TailLink* TailSet::Get(const std::string& endpoint) {
  const std::lock_guard lock(mutex_);
  for (const auto& [known, tail] : tails_) {
    if (known == endpoint) return tail.get();
  }
  if (tails_.size() >= max_tails_) return nullptr;
  CloudOptions options = base_;
  options.endpoint = endpoint;
  tails_.emplace_back(endpoint, std::make_unique<TailLink>(options, local_, connections_, monitoring_));
  return tails_.back().second.get();
}

TailLink* TailSet::Find(const std::string& endpoint) const {
  const std::lock_guard lock(mutex_);
  for (const auto& [known, tail] : tails_) {
    if (known == endpoint) return tail.get();
  }
  return nullptr;
}

std::vector<std::pair<std::string, TailLink*>> TailSet::All() const {
  const std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, TailLink*>> all;
  for (const auto& [endpoint, tail] : tails_) all.emplace_back(endpoint, tail.get());
  return all;
}

bool TailSet::BreakersLeaveATail() const {
  for (const auto& [endpoint, tail] : All()) {
    if (tail->PlanningEstimate().up) return true;
  }
  return false;
}

nlohmann::json TailSet::Describe() const {
  nlohmann::json tails = nlohmann::json::array();
  for (const auto& [endpoint, link] : All()) {
    const scheduler::LinkEstimate estimate = link->link.Estimate();
    nlohmann::json tail = {{"cloud", endpoint},
                           {"connections", link->pool.connected()},
                           {"circuit", CircuitStateName(link->breaker.state())},
                           {"link",
                            {{"up", estimate.up},
                             {"rtt_ms", estimate.rtt_ms},
                             {"bandwidth_mbit_s", estimate.bandwidth_bytes_per_ms * 8 / 1000}}}};
    if (const std::optional<TailSnapshot> snapshot = link->monitor.tail()) {
      tail["stats"] = {{"utilization", snapshot->stats.utilization},
                       {"queue_depth", snapshot->stats.queue_depth},
                       {"sessions", snapshot->stats.sessions},
                       {"workers", snapshot->stats.workers},
                       {"free_kv_bytes", snapshot->stats.free_kv_bytes}};
    }
    tails.push_back(std::move(tail));
  }
  return tails;
}

int TailSet::connected() const {
  int total = 0;
  for (const auto& [endpoint, tail] : All()) total += tail->pool.connected();
  return total;
}

}  // namespace tandem::edge_agent
