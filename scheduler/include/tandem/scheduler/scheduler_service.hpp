// tandem-scheduler: the service that balances many edges over many cloud tails. Tails report their load
// and measured compute in heartbeats; edges ask for a plan ({tail, cut, codec}) and get the one the
// planner predicts best over every live tail serving their model, with the plans already handed out
// counted as load until the tails' next heartbeats (tail_registry.hpp).
//
// Routes (JSON; errors are OpenAI-style error objects; docs/api.md has the bodies):
//   POST /v1/tails/heartbeat  a tail's report                  -> {"ok": true, "dead_after_ms": N, ...}
//   GET  /v1/tails            the registry
//   POST /v1/plan             an edge's request                -> the plan and the top candidates
//   GET  /healthz, /readyz (ready while serving; the body counts the live tails), /metrics
//
// With a control secret, heartbeats and plan requests must be signed with it (request_signing.hpp): one
// that is not gets 401 (code "invalid_control_credential"), changes nothing and is counted in
// tandem_scheduler_auth_failures_total{reason}. The read-only routes stay open (/metrics already lists the
// tails).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/base/status.hpp"
#include "tandem/scheduler/tail_registry.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/request_signing.hpp"

namespace prometheus {
class Registry;
}

namespace tandem::scheduler {

struct SchedulerOptions {
  TailRegistryOptions registry;         // dead_after, per_plan_load
  double default_rtt_ms = 2;            // for a tail the edge gave no link estimate for
  double default_bandwidth_mbit = 100;  // likewise
  int top_candidates = 5;               // candidates listed in a plan answer
  // Tails whose best candidate costs at most this fraction more than the best are near-ties: the plan goes
  // to the least loaded of them, so that equal tails share edges even when RTT noise separates them.
  double balance_margin = 0.1;
  // The control plane's shared secret (>= 32 bytes); empty: heartbeats and plan requests need no credential.
  std::string control_secret;
};

// The scheduler's logic behind its routes, testable without a socket. Thread-safe: handlers run
// concurrently; the registry is behind one mutex (planning itself runs outside it).
class SchedulerService {
 public:
  // InvalidArgument for bad options (a control secret shorter than 32 bytes among them). `clock` and
  // `registry` must outlive the service.
  static Result<std::unique_ptr<SchedulerService>> Create(SchedulerOptions options, const Clock& clock,
                                                          std::shared_ptr<prometheus::Registry> registry);
  ~SchedulerService();

  // The API routes plus /healthz, /readyz and /metrics.
  std::vector<services::Route> Routes();

  // Removes the tails that missed their heartbeats for dead_after (logged, their metric series removed).
  // Every route calls it first; the service's main calls it periodically too, so that metrics follow
  // without traffic.
  void ExpireDead();
  size_t tails_alive();

  class Metrics;

 private:
  SchedulerService(SchedulerOptions options, const Clock& clock, TailRegistry registry,
                   std::shared_ptr<prometheus::Registry> prometheus,
                   std::optional<services::RequestVerifier> verifier);
  // `handler` behind the control-plane credential (when there is a secret).
  services::HttpHandler Authenticated(services::HttpHandler handler);
  services::HttpResponse Heartbeat(const services::HttpRequest& request);
  services::HttpResponse ListTails(const services::HttpRequest& request);
  services::HttpResponse Plan(const services::HttpRequest& request);
  // Caller holds mutex_.
  void ForgetLocked(const std::string& endpoint);

  const SchedulerOptions options_;
  const Clock& clock_;
  std::shared_ptr<prometheus::Registry> prometheus_;
  const std::optional<services::RequestVerifier> verifier_;
  std::mutex mutex_;
  TailRegistry registry_;
  std::unique_ptr<Metrics> metrics_;
};

// Runs tandem-scheduler until SIGTERM or SIGINT; the process exit code (0 after a clean stop, 1 on a
// runtime failure, 2 on bad usage).
int RunSchedulerService(std::span<const std::string> args);

}  // namespace tandem::scheduler
