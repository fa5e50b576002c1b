// The three services on 127.0.0.1, wired as deployed: a tandem-scheduler, a CURVE tandem-cloud on
// stories260K heartbeating to it, and a tandem-edge (--split auto) asking it for plans and never running
// every block itself, so that every completion goes through the tail. For tests of what the services
// export together (metric names, a real Prometheus scraping them).
#pragma once

#include <memory>
#include <set>
#include <string>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "scheduler_process.hpp"

namespace tandem::testing {

class ServiceStack {
 public:
  // Starts the three and waits until the edge can serve: check ready(), else see log().
  ServiceStack();
  bool ready() const { return ready_; }
  // The logs of the three, for a failure message.
  std::string log() const;

  // The HTTP addresses ("127.0.0.1:PORT"), each serving GET /metrics.
  const std::string& scheduler_address() const { return scheduler_->address(); }
  const std::string& tail_address() const { return tail_->http_address(); }
  const std::string& edge_address() const { return edge_->address(); }

  // A greedy completion of `max_tokens` through the edge, as one JSON answer or as server-sent events.
  HttpResult Complete(int max_tokens, bool stream) const;
  // A completion request the edge refuses with 400 (a prompt that is not a string).
  HttpResult CompleteBadly() const;

  // The metric names the three export now (ExportedMetricNames of each /metrics); empty when one of them
  // does not answer.
  std::set<std::string> ExportedNames() const;

 private:
  std::unique_ptr<SchedulerProcess> scheduler_;
  std::unique_ptr<CloudTailProcess> tail_;
  std::unique_ptr<EdgeProcess> edge_;
  bool ready_ = false;
};

}  // namespace tandem::testing
