#include "tandem/scheduler/tail_registry.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "tandem/base/strings.hpp"

namespace tandem::scheduler {
namespace {

Status CheckTime(double value, const std::string& field) {
  if (!(value >= 0) || !std::isfinite(value)) {  // NaN fails the first test
    return InvalidArgument(field + " is " + ShortNumber(value) + "; must be a finite number >= 0");
  }
  return Status::Ok();
}

Status CheckTimes(const std::vector<double>& values, int n_layers, const std::string& field) {
  if (values.size() != static_cast<size_t>(n_layers)) {
    return InvalidArgument(field + " has " + std::to_string(values.size()) +
                           " entries; must have n_layers = " + std::to_string(n_layers));
  }
  for (size_t b = 0; b < values.size(); ++b) {
    TANDEM_RETURN_IF_ERROR(CheckTime(values[b], field + "[" + std::to_string(b) + "]"));
  }
  return Status::Ok();
}

bool Printable(const std::string& text) {
  return std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isgraph(c); });
}

}  // namespace

Status ValidateTailReport(const TailReport& report) {
  if (report.endpoint.empty() || report.endpoint.size() > kMaxEndpointLength || !Printable(report.endpoint) ||
      report.endpoint.find("://") == std::string::npos) {
    return InvalidArgument("endpoint \"" + report.endpoint.substr(0, kMaxEndpointLength) +
                           "\" must be a ZeroMQ address like tcp://HOST:PORT (at most " +
                           std::to_string(kMaxEndpointLength) + " printable characters)");
  }
  if (report.fingerprint.empty() || report.fingerprint.size() > kMaxFingerprintLength ||
      !Printable(report.fingerprint)) {
    return InvalidArgument("model.fingerprint must be 1 to " + std::to_string(kMaxFingerprintLength) +
                           " printable characters");
  }
  if (report.n_layers < 1 || report.n_layers > kMaxReportLayers) {
    return InvalidArgument("model.n_layers is " + std::to_string(report.n_layers) + "; must be in [1, " +
                           std::to_string(kMaxReportLayers) + "]");
  }
  if (report.dim < 1 || report.dim > kMaxReportDim) {
    return InvalidArgument("model.dim is " + std::to_string(report.dim) + "; must be in [1, " +
                           std::to_string(kMaxReportDim) + "]");
  }
  if (report.workers < 0)
    return InvalidArgument("workers is " + std::to_string(report.workers) + "; must be >= 0");
  if (report.sessions < 0) {
    return InvalidArgument("sessions is " + std::to_string(report.sessions) + "; must be >= 0");
  }
  if (report.queue_depth < 0) {
    return InvalidArgument("queue_depth is " + std::to_string(report.queue_depth) + "; must be >= 0");
  }
  if (!(report.utilization >= 0 && report.utilization <= 1)) {
    return InvalidArgument("utilization is " + ShortNumber(report.utilization) + "; must be in [0, 1]");
  }
  TANDEM_RETURN_IF_ERROR(
      CheckTimes(report.profile.decode_block_ms, report.n_layers, "profile.decode_block_ms"));
  TANDEM_RETURN_IF_ERROR(CheckTime(report.profile.head_ms, "profile.head_ms"));
  if (report.profile.prefill.size() > kMaxReportBuckets) {
    return InvalidArgument("profile.prefill has " + std::to_string(report.profile.prefill.size()) +
                           " buckets; at most " + std::to_string(kMaxReportBuckets));
  }
  int previous_tokens = 0;
  for (size_t i = 0; i < report.profile.prefill.size(); ++i) {
    const auto& bucket = report.profile.prefill[i];
    const std::string field = "profile.prefill[" + std::to_string(i) + "]";
    if (bucket.tokens <= previous_tokens) {
      return InvalidArgument(field + ".tokens is " + std::to_string(bucket.tokens) +
                             "; buckets need tokens >= 1 in strictly ascending order");
    }
    previous_tokens = bucket.tokens;
    TANDEM_RETURN_IF_ERROR(CheckTimes(bucket.block_ms, report.n_layers, field + ".block_ms"));
  }
  return Status::Ok();
}

Result<TailRegistry> TailRegistry::Create(const Clock& clock, TailRegistryOptions options) {
  if (options.dead_after <= Clock::Duration::zero()) return InvalidArgument("dead_after must be > 0");
  if (!(options.per_plan_load >= 0) || !std::isfinite(options.per_plan_load)) {
    return InvalidArgument("per_plan_load is " + ShortNumber(options.per_plan_load) +
                           "; must be finite and >= 0");
  }
  if (!(options.max_effective_utilization >= 0 && options.max_effective_utilization <= 1)) {
    return InvalidArgument("max_effective_utilization is " + ShortNumber(options.max_effective_utilization) +
                           "; must be in [0, 1]");
  }
  return TailRegistry(clock, options);
}

bool TailRegistry::Alive(const Tail& tail, Clock::TimePoint now) const {
  return now - tail.last_heartbeat < options_.dead_after;
}

double TailRegistry::EffectiveUtilization(const Tail& tail) const {
  const double loaded =
      tail.report.utilization + options_.per_plan_load * static_cast<double>(tail.plans_since_heartbeat);
  // A tail reporting more than the cap keeps its own figure: the cap bounds only what plans add.
  return std::max(tail.report.utilization, std::min(options_.max_effective_utilization, loaded));
}

Result<TailRegistry::HeartbeatOutcome> TailRegistry::Heartbeat(TailReport report) {
  TANDEM_RETURN_IF_ERROR(ValidateTailReport(report));
  const Clock::TimePoint now = clock_->Now();
  HeartbeatOutcome outcome;
  auto it = tails_.find(report.endpoint);
  if (report.draining) {
    if (it != tails_.end()) {
      tails_.erase(it);
      outcome.removed = true;
    }
    return outcome;
  }
  if (it == tails_.end() || !Alive(it->second, now)) {
    outcome.joined = true;
    Tail tail;
    tail.registered = now;
    it = tails_.insert_or_assign(report.endpoint, std::move(tail)).first;
  }
  Tail& tail = it->second;
  tail.report = std::move(report);
  tail.last_heartbeat = now;
  ++tail.heartbeats;
  tail.plans_since_heartbeat = 0;
  return outcome;
}

std::vector<ExpiredTail> TailRegistry::Expire() {
  const Clock::TimePoint now = clock_->Now();
  std::vector<ExpiredTail> expired;
  for (auto it = tails_.begin(); it != tails_.end();) {
    if (Alive(it->second, now)) {
      ++it;
      continue;
    }
    expired.push_back({it->first, now - it->second.last_heartbeat});
    it = tails_.erase(it);
  }
  return expired;
}

std::vector<TailEntry> TailRegistry::Snapshot() const {
  const Clock::TimePoint now = clock_->Now();
  std::vector<TailEntry> entries;
  for (const auto& [endpoint, tail] : tails_) {
    if (!Alive(tail, now)) continue;
    entries.push_back({.report = tail.report,
                       .registered = tail.registered,
                       .last_heartbeat = tail.last_heartbeat,
                       .heartbeats = tail.heartbeats,
                       .plans_since_heartbeat = tail.plans_since_heartbeat,
                       .plans_total = tail.plans_total,
                       .effective_utilization = EffectiveUtilization(tail)});
  }
  return entries;
}

std::vector<TailState> TailRegistry::PlannerTails(const std::string& fingerprint, int n_layers,
                                                  int dim) const {
  const Clock::TimePoint now = clock_->Now();
  std::vector<TailState> states;
  for (const auto& [endpoint, tail] : tails_) {
    const TailReport& report = tail.report;
    if (!Alive(tail, now) || report.fingerprint != fingerprint || report.n_layers != n_layers ||
        report.dim != dim) {
      continue;
    }
    states.push_back({.endpoint = endpoint,
                      .profile = report.profile,
                      .utilization = EffectiveUtilization(tail),
                      .max_rows = report.max_rows,
                      .free_kv_bytes = report.free_kv_bytes,
                      .codecs = report.codecs});
  }
  return states;
}

Status TailRegistry::CountPlan(const std::string& endpoint) {
  const auto it = tails_.find(endpoint);
  if (it == tails_.end() || !Alive(it->second, clock_->Now())) {
    return NotFound("tail " + endpoint + " is not registered");
  }
  ++it->second.plans_since_heartbeat;
  ++it->second.plans_total;
  return Status::Ok();
}

}  // namespace tandem::scheduler
