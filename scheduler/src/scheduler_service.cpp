#include "tandem/scheduler/scheduler_service.hpp"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "tandem/base/log.hpp"
#include "tandem/scheduler/scheduler_api.hpp"
#include "tandem/services/health.hpp"

namespace tandem::scheduler {
namespace {

// The plan's best candidate, or among the tails' candidates within `margin` of its cost the one on the
// least loaded tail (utilization with the plans counted since its heartbeat), so that near-equal tails
// share edges. All-local is kept when it is the best.
Candidate BalancedChoice(const Plan& plan, const std::vector<TailState>& tails, double margin) {
  Candidate chosen = plan.best;
  if (chosen.local()) return chosen;
  for (const Candidate& candidate : plan.candidates) {
    if (candidate.local() || candidate.cost > plan.best.cost * (1 + margin)) continue;
    if (tails[static_cast<size_t>(candidate.tail)].utilization <
        tails[static_cast<size_t>(chosen.tail)].utilization) {
      chosen = candidate;
    }
  }
  return chosen;
}

using nlohmann::json;
using services::ErrorResponse;
using services::HttpRequest;
using services::HttpResponse;

constexpr char kComponent[] = "scheduler";
constexpr double kBytesPerMsPerMbit = 1e6 / 8 / 1000;  // 1 Mbit/s = 125 bytes per millisecond

HttpResponse JsonResponse(const json& body, int status = 200) {
  HttpResponse response;
  response.status = status;
  response.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
  return response;
}

HttpResponse BadRequest(const Status& status) {
  return ErrorResponse(400, status.message(), "invalid_request_error", "invalid_field", FieldOf(status));
}

// The body as JSON, or the 400 answer.
Result<json> ParseBody(const HttpRequest& request) {
  json body = json::parse(request.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) return InvalidArgument("the body is not valid JSON");
  return body;
}

HttpResponse InvalidJson(const Status& status) {
  return ErrorResponse(400, status.message(), "invalid_request_error", "invalid_json");
}

// The planner's inputs for an edge's request, all but the tails.
PlanInputs PlanInputsOf(const PlanRequest& ask, double default_bandwidth_mbit) {
  PlanInputs inputs;
  inputs.n_layers = ask.n_layers;
  inputs.dim = ask.dim;
  inputs.kv_bytes_per_position_per_block = ask.kv_bytes_per_position_per_block;
  inputs.edge = ask.profile;
  inputs.edge_int8_blocks = ask.edge_int8_blocks;
  inputs.constraints = ask.constraints;
  inputs.objective = *Objective::Parse(ask.objective);  // checked by PlanRequestFromJson
  inputs.prompt_tokens = ask.prompt_tokens;
  inputs.expected_tokens = ask.expected_tokens;
  inputs.draft = ask.draft;
  inputs.default_bandwidth_bytes_per_ms = default_bandwidth_mbit * kBytesPerMsPerMbit;
  return inputs;
}

// Each tail's link as the edge estimated it; the default RTT (and the planner's default bandwidth) where
// it gave none.
void ApplyLinkReports(const std::vector<LinkReport>& links, double default_rtt_ms,
                      std::vector<TailState>& tails) {
  for (TailState& tail : tails) {
    tail.link.rtt_ms = default_rtt_ms;
    for (const LinkReport& link : links) {
      if (link.endpoint != tail.endpoint) continue;
      if (link.rtt_ms) tail.link.rtt_ms = *link.rtt_ms;
      if (link.bandwidth_mbit_s)
        tail.link.bandwidth_bytes_per_ms = *link.bandwidth_mbit_s * kBytesPerMsPerMbit;
      tail.link.up = link.up;
    }
  }
}

// The 503 for a request no plan can serve: no tail for its model, or none feasible.
HttpResponse NoPlanResponse(const PlanRequest& ask, size_t tails_considered, const Status& why) {
  if (tails_considered == 0) {
    return ErrorResponse(503,
                         "no live tail serves this model (fingerprint " + ask.fingerprint + ", " +
                             std::to_string(ask.n_layers) + " layers, dim " + std::to_string(ask.dim) +
                             ") and all-local is not allowed: " + why.message(),
                         "server_error", "no_tail");
  }
  return ErrorResponse(503, why.message(), "server_error", "no_feasible_plan");
}

}  // namespace

// The scheduler's Prometheus metrics; the per-tail series exist while the tail is registered.
class SchedulerService::Metrics {
 public:
  explicit Metrics(prometheus::Registry& registry)
      : plans_(prometheus::BuildCounter()
                   .Name("tandem_scheduler_plans_total")
                   .Help("Plans handed out, by choice: split (a tail) or local (every block on the edge)")
                   .Register(registry)),
        split_(plans_.Add({{"choice", "split"}})),
        local_(plans_.Add({{"choice", "local"}})),
        refused_(prometheus::BuildCounter()
                     .Name("tandem_scheduler_plans_refused_total")
                     .Help("Plan requests answered 503: no tail for the model and all-local not allowed, or "
                           "no feasible plan")
                     .Register(registry)
                     .Add({})),
        alive_(prometheus::BuildGauge()
                   .Name("tandem_scheduler_tails_alive")
                   .Help("Tails registered with a heartbeat younger than dead_after")
                   .Register(registry)
                   .Add({})),
        utilization_(prometheus::BuildGauge()
                         .Name("tandem_scheduler_tail_utilization")
                         .Help("A tail's reported busy fraction of its workers over the last second")
                         .Register(registry)),
        sessions_(prometheus::BuildGauge()
                      .Name("tandem_scheduler_tail_sessions")
                      .Help("A tail's reported open sessions")
                      .Register(registry)),
        queue_depth_(prometheus::BuildGauge()
                         .Name("tandem_scheduler_tail_queue_depth")
                         .Help("A tail's reported steps waiting for a worker")
                         .Register(registry)),
        heartbeats_(prometheus::BuildCounter()
                        .Name("tandem_scheduler_heartbeats_total")
                        .Help("Heartbeats accepted from tails (draining ones included)")
                        .Register(registry)
                        .Add({})),
        expired_(prometheus::BuildCounter()
                     .Name("tandem_scheduler_tails_expired_total")
                     .Help("Tails removed because their heartbeats stopped for dead_after")
                     .Register(registry)
                     .Add({})),
        auth_failures_(prometheus::BuildCounter()
                           .Name("tandem_scheduler_auth_failures_total")
                           .Help("Heartbeats and plan requests refused (401) for their control-plane "
                                 "credential: missing, bad_mac (malformed or wrong), stale (timestamp out "
                                 "of the window)")
                           .Register(registry)) {
    for (const auto failure :
         {services::AuthFailure::kMissing, services::AuthFailure::kBadMac, services::AuthFailure::kStale}) {
      auth_failures_.Add({{"reason", std::string(services::AuthFailureName(failure))}});
    }
  }

  void Plan(bool local) { (local ? local_ : split_).Increment(); }
  void Refused() { refused_.Increment(); }
  void Alive(size_t tails) { alive_.Set(static_cast<double>(tails)); }
  void Expired(size_t tails) { expired_.Increment(static_cast<double>(tails)); }

  void Heartbeat() { heartbeats_.Increment(); }
  // Counts a refusal; returns how many of this reason so far.
  int64_t AuthFailure(services::AuthFailure failure) {
    prometheus::Counter& counter =
        auth_failures_.Add({{"reason", std::string(services::AuthFailureName(failure))}});
    counter.Increment();
    return static_cast<int64_t>(counter.Value());
  }
  void Report(const TailReport& report) {
    const prometheus::Labels labels = {{"tail", report.endpoint}};
    Series& series = series_[report.endpoint];
    if (series.utilization == nullptr) {
      series = {&utilization_.Add(labels), &sessions_.Add(labels), &queue_depth_.Add(labels)};
    }
    series.utilization->Set(report.utilization);
    series.sessions->Set(report.sessions);
    series.queue_depth->Set(report.queue_depth);
  }

  void Remove(const std::string& endpoint) {
    const auto it = series_.find(endpoint);
    if (it == series_.end()) return;
    utilization_.Remove(it->second.utilization);
    sessions_.Remove(it->second.sessions);
    queue_depth_.Remove(it->second.queue_depth);
    series_.erase(it);
  }

 private:
  struct Series {
    prometheus::Gauge* utilization = nullptr;
    prometheus::Gauge* sessions = nullptr;
    prometheus::Gauge* queue_depth = nullptr;
  };
  prometheus::Family<prometheus::Counter>& plans_;
  prometheus::Counter& split_;
  prometheus::Counter& local_;
  prometheus::Counter& refused_;
  prometheus::Gauge& alive_;
  prometheus::Family<prometheus::Gauge>& utilization_;
  prometheus::Family<prometheus::Gauge>& sessions_;
  prometheus::Family<prometheus::Gauge>& queue_depth_;
  prometheus::Counter& heartbeats_;
  prometheus::Counter& expired_;
  prometheus::Family<prometheus::Counter>& auth_failures_;
  std::map<std::string, Series> series_;  // by endpoint; the owner's mutex guards it
};

Result<std::unique_ptr<SchedulerService>> SchedulerService::Create(
    SchedulerOptions options, const Clock& clock, std::shared_ptr<prometheus::Registry> registry) {
  TANDEM_ASSIGN_OR_RETURN(TailRegistry tails, TailRegistry::Create(clock, options.registry));
  if (!(options.default_rtt_ms >= 0) || !std::isfinite(options.default_rtt_ms)) {
    return InvalidArgument("the default RTT must be a finite number of milliseconds >= 0");
  }
  if (!(options.default_bandwidth_mbit > 0) || !std::isfinite(options.default_bandwidth_mbit)) {
    return InvalidArgument("the default bandwidth must be a finite number of Mbit/s > 0");
  }
  if (options.top_candidates < 1) return InvalidArgument("top_candidates must be >= 1");
  if (registry == nullptr) return InvalidArgument("no metrics registry");
  std::optional<services::RequestVerifier> verifier;
  if (!options.control_secret.empty()) {
    TANDEM_ASSIGN_OR_RETURN(verifier, services::RequestVerifier::Create(options.control_secret));
  }
  return std::unique_ptr<SchedulerService>(new SchedulerService(std::move(options), clock, std::move(tails),
                                                                std::move(registry), std::move(verifier)));
}

SchedulerService::SchedulerService(SchedulerOptions options, const Clock& clock, TailRegistry registry,
                                   std::shared_ptr<prometheus::Registry> prometheus,
                                   std::optional<services::RequestVerifier> verifier)
    : options_(std::move(options)),
      clock_(clock),
      prometheus_(std::move(prometheus)),
      verifier_(std::move(verifier)),
      registry_(std::move(registry)),
      metrics_(std::make_unique<Metrics>(*prometheus_)) {}

SchedulerService::~SchedulerService() = default;

std::vector<services::Route> SchedulerService::Routes() {
  std::vector<services::Route> routes = services::HealthRoutes({}, prometheus_);
  // Ready while serving; the body says how many tails could take edges now.
  for (services::Route& route : routes) {
    if (route.path != "/readyz") continue;
    route.handler = [this](const HttpRequest&) {
      return JsonResponse({{"status", "ready"}, {"tails_alive", tails_alive()}});
    };
  }
  routes.push_back(
      {"POST", "/v1/tails/heartbeat", Authenticated([this](const HttpRequest& r) { return Heartbeat(r); })});
  routes.push_back({"GET", "/v1/tails", [this](const HttpRequest& r) { return ListTails(r); }});
  routes.push_back({"POST", "/v1/plan", Authenticated([this](const HttpRequest& r) { return Plan(r); })});
  return routes;
}

services::HttpHandler SchedulerService::Authenticated(services::HttpHandler handler) {
  if (!verifier_) return handler;
  return [this, handler = std::move(handler)](const HttpRequest& request) {
    const services::Verification verified =
        verifier_->Verify(request.Header("authorization"), request.method, request.path, request.body,
                          services::UnixMillisNow());
    if (verified.ok()) return handler(request);
    int64_t refusals = 0;
    {
      std::lock_guard lock(mutex_);
      refusals = metrics_->AuthFailure(verified.failure);
    }
    // Logged at the 1st, 2nd, 4th, 8th... refusal of each reason: visible, but no flood to fill the disk.
    if ((refusals & (refusals - 1)) == 0) {
      Log(LogLevel::kWarn, kComponent, "control-plane request refused",
          {{"path", request.path},
           {"reason", std::string(services::AuthFailureName(verified.failure))},
           {"sender", verified.sender.empty() ? "?" : verified.sender},
           {"refused_so_far", std::to_string(refusals)}});
    }
    HttpResponse response =
        ErrorResponse(401, verified.message, "invalid_request_error", "invalid_control_credential");
    response.headers.emplace_back("WWW-Authenticate", std::string(services::kControlAuthScheme));
    return response;
  };
}

void SchedulerService::ForgetLocked(const std::string& endpoint) {
  metrics_->Remove(endpoint);
  metrics_->Alive(registry_.size());
}

void SchedulerService::ExpireDead() {
  std::lock_guard lock(mutex_);
  const std::vector<ExpiredTail> expired = registry_.Expire();
  if (expired.empty()) return;
  for (const ExpiredTail& tail : expired) {
    ForgetLocked(tail.endpoint);
    Log(LogLevel::kWarn, kComponent, "tail expired: no heartbeat",
        {{"tail", tail.endpoint},
         {"silent_ms", std::to_string(static_cast<int64_t>(ToMilliseconds(tail.silent_for)))},
         {"tails_alive", std::to_string(registry_.size())}});
  }
  metrics_->Expired(expired.size());
}

size_t SchedulerService::tails_alive() {
  ExpireDead();
  std::lock_guard lock(mutex_);
  return registry_.size();
}

HttpResponse SchedulerService::Heartbeat(const HttpRequest& request) {
  ExpireDead();
  auto body = ParseBody(request);
  if (!body.ok()) return InvalidJson(body.status());
  auto report = TailReportFromJson(*body);
  if (!report.ok()) return BadRequest(report.status());
  const std::string endpoint = report->endpoint;
  const bool draining = report->draining;
  const TailReport copy = *report;
  std::lock_guard lock(mutex_);
  auto outcome = registry_.Heartbeat(std::move(*report));
  if (!outcome.ok()) return BadRequest(outcome.status());
  metrics_->Heartbeat();
  if (draining) {
    ForgetLocked(endpoint);
    if (outcome->removed) {
      Log(LogLevel::kInfo, kComponent, "tail left: draining",
          {{"tail", endpoint}, {"tails_alive", std::to_string(registry_.size())}});
    }
  } else {
    metrics_->Report(copy);
    metrics_->Alive(registry_.size());
    if (outcome->joined) {
      Log(LogLevel::kInfo, kComponent, "tail joined",
          {{"tail", endpoint},
           {"fingerprint", copy.fingerprint},
           {"n_layers", std::to_string(copy.n_layers)},
           {"workers", std::to_string(copy.workers)},
           {"tails_alive", std::to_string(registry_.size())}});
    }
  }
  return JsonResponse(
      {{"ok", true},
       {"dead_after_ms", static_cast<int64_t>(ToMilliseconds(registry_.options().dead_after))},
       {"joined", outcome->joined},
       {"removed", outcome->removed}});
}

HttpResponse SchedulerService::ListTails(const HttpRequest&) {
  ExpireDead();
  std::vector<TailEntry> entries;
  {
    std::lock_guard lock(mutex_);
    entries = registry_.Snapshot();
  }
  const Clock::TimePoint now = clock_.Now();
  json tails = json::array();
  for (const TailEntry& entry : entries) {
    const TailReport& report = entry.report;
    json codecs = json::array();
    for (const ActivationCodec& codec : report.codecs) codecs.push_back(codec.Name());
    double decode_ms = report.profile.head_ms;
    for (double ms : report.profile.decode_block_ms) decode_ms += ms;
    tails.push_back(
        {{"endpoint", report.endpoint},
         {"model", {{"fingerprint", report.fingerprint}, {"n_layers", report.n_layers}, {"dim", report.dim}}},
         {"workers", report.workers},
         {"sessions", report.sessions},
         {"queue_depth", report.queue_depth},
         {"utilization", report.utilization},
         {"effective_utilization", entry.effective_utilization},
         {"free_kv_bytes", report.free_kv_bytes},
         {"max_rows", report.max_rows},
         {"codecs", std::move(codecs)},
         {"decode_ms", RoundedMs(decode_ms)},
         {"profile", ProfileToJson(report.profile)},
         {"last_heartbeat_ms_ago", std::round(ToMilliseconds(now - entry.last_heartbeat) * 1e3) / 1e3},
         {"registered_ms_ago", std::round(ToMilliseconds(now - entry.registered) * 1e3) / 1e3},
         {"heartbeats", entry.heartbeats},
         {"plans_since_heartbeat", entry.plans_since_heartbeat},
         {"plans_total", entry.plans_total}});
  }
  return JsonResponse({{"dead_after_ms", static_cast<int64_t>(ToMilliseconds(options_.registry.dead_after))},
                       {"per_plan_load", options_.registry.per_plan_load},
                       {"tails", std::move(tails)}});
}

HttpResponse SchedulerService::Plan(const HttpRequest& request) {
  ExpireDead();
  auto body = ParseBody(request);
  if (!body.ok()) return InvalidJson(body.status());
  auto parsed = PlanRequestFromJson(*body);
  if (!parsed.ok()) return BadRequest(parsed.status());
  const PlanRequest& ask = *parsed;
  PlanInputs inputs = PlanInputsOf(ask, options_.default_bandwidth_mbit);
  // The snapshot, the plan and the count of the plan against its tail under one lock: edges asking at the
  // same moment see each other's plans and spread.
  std::unique_lock lock(mutex_);
  inputs.tails = registry_.PlannerTails(ask.fingerprint, ask.n_layers, ask.dim);
  ApplyLinkReports(ask.links, options_.default_rtt_ms, inputs.tails);
  auto plan = MakePlan(inputs);
  if (!plan.ok()) {
    lock.unlock();
    if (plan.status().code() == StatusCode::kInvalidArgument) {
      return ErrorResponse(400, plan.status().message(), "invalid_request_error", "invalid_field");
    }
    metrics_->Refused();
    return NoPlanResponse(ask, inputs.tails.size(), plan.status());
  }
  const Candidate best = BalancedChoice(*plan, inputs.tails, options_.balance_margin);
  double chosen_utilization = 0;
  if (!best.local()) {
    chosen_utilization = inputs.tails[static_cast<size_t>(best.tail)].utilization;
    (void)registry_.CountPlan(best.endpoint);
  }
  lock.unlock();
  metrics_->Plan(best.local());

  json answer = CandidateToJson(best);
  answer["tail_utilization"] = std::round(chosen_utilization * 1e6) / 1e6;
  answer["tails_considered"] = inputs.tails.size();
  json candidates = json::array();
  const size_t shown = std::min(plan->candidates.size(), static_cast<size_t>(options_.top_candidates));
  for (size_t i = 0; i < shown; ++i) candidates.push_back(CandidateToJson(plan->candidates[i]));
  answer["candidates"] = std::move(candidates);
  return JsonResponse(answer);
}

}  // namespace tandem::scheduler
