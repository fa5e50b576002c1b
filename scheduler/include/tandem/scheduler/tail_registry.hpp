// The scheduler's registry of cloud tails: what each live tail last reported in its heartbeat, and how many
// plans were handed out for it since.
//
// A tail joins with its first heartbeat and stays while heartbeats keep coming; one whose last heartbeat is
// `dead_after` old (or older) is dead: Expire() removes it and Snapshot() never lists it, even before
// Expire() ran. A heartbeat flagged `draining` removes the tail at once (a tail being stopped says so
// instead of going silent, so edges stop being sent to it without waiting for dead_after).
//
// Spreading between heartbeats: tails report their load about once a second, while edges may ask for plans
// many times in between; planning on the reported load alone would send every one of them to whichever
// tail looked idlest at its last report. So every plan handed out for a tail counts as `per_plan_load` of
// extra utilization until its next heartbeat (which reports the load those plans really caused):
//
//   effective utilization = min(max_effective_utilization, reported + per_plan_load x plans_since_heartbeat)
//
// with per_plan_load 0.05 and a cap of 0.95 by default: after two plans an idle tail looks 10 % busy, and
// the next edge goes to an equally fast idle tail instead. The cap bounds only what plans add: a tail that
// itself reports more than the cap keeps its reported figure. (The planner inflates a tail's compute by
// 1 / (1 - u), itself capped at u = 0.9.)
//
// Pure: time comes from the Clock given (a ManualClock in tests), nothing is logged or sent. Not
// thread-safe: the owner serializes calls (the scheduler service holds a mutex around it).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/base/status.hpp"
#include "tandem/scheduler/planner.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/compute_profile.hpp"

namespace tandem::scheduler {

// Bounds on what a report may hold, checked before anything is kept.
inline constexpr int kMaxReportLayers = 4096;
inline constexpr int kMaxReportDim = 1 << 20;
inline constexpr size_t kMaxReportBuckets = 16;
inline constexpr size_t kMaxEndpointLength = 256;
inline constexpr size_t kMaxFingerprintLength = 128;

// One heartbeat: who the tail is, which model it serves, its load now and its measured compute.
struct TailReport {
  std::string endpoint;     // where edges connect ("tcp://10.0.0.7:5555"): the tail's identity here
  std::string fingerprint;  // the model's fingerprint (Checkpoint::Fingerprint in decimal); edges must match
  int n_layers = 0;
  int dim = 0;
  int workers = 1;
  int sessions = 0;
  int queue_depth = 0;
  double utilization = 0;               // busy fraction of its workers over the last second, in [0, 1]
  int64_t free_kv_bytes = -1;           // < 0: unknown
  uint32_t max_rows = 0;                // rows per ACTIVATIONS; 0: no limit
  std::vector<ActivationCodec> codecs;  // accepted; empty: every codec
  ComputeProfile profile;               // n_layers decode times, prefill buckets, head
  bool draining = false;                // the tail is stopping: remove it now
};

// InvalidArgument naming the field (e.g. "profile.decode_block_ms[3] is -1; ..."): an empty or overlong
// endpoint or fingerprint, sizes out of bounds, profile arrays not of n_layers entries, prefill buckets not
// ascending, negative or non-finite times, utilization outside [0, 1], negative counts.
Status ValidateTailReport(const TailReport& report);

struct TailRegistryOptions {
  Clock::Duration dead_after = std::chrono::seconds(3);
  double per_plan_load = 0.05;              // utilization added per plan until the next heartbeat
  double max_effective_utilization = 0.95;  // the cap of reported + per-plan load
};

struct TailEntry {
  TailReport report;            // the last heartbeat
  Clock::TimePoint registered;  // its first heartbeat (since it last joined)
  Clock::TimePoint last_heartbeat;
  int64_t heartbeats = 0;             // since it joined
  int64_t plans_since_heartbeat = 0;  // plans handed out for it since its last heartbeat
  int64_t plans_total = 0;            // since it joined
  double effective_utilization = 0;   // reported + per-plan load, capped (see above)
};

struct ExpiredTail {
  std::string endpoint;
  Clock::Duration silent_for{};  // age of its last heartbeat when it was removed
};

class TailRegistry {
 public:
  // InvalidArgument unless dead_after > 0, per_plan_load >= 0 and the cap is in [0, 1] (all finite).
  static Result<TailRegistry> Create(const Clock& clock, TailRegistryOptions options = {});

  struct HeartbeatOutcome {
    bool joined = false;   // the tail was not registered (new, or back after expiring)
    bool removed = false;  // a draining report: the tail left
  };
  // Validates `report` (ValidateTailReport), then adds or updates the tail and resets its plan count. A
  // report for an endpoint that is already registered replaces the old one whole (a tail restarted with
  // another model re-registers with the new identity). A tail already dead by the clock joins anew.
  Result<HeartbeatOutcome> Heartbeat(TailReport report);

  // Removes every tail whose last heartbeat is dead_after old or older; returns them (for logs, metrics).
  std::vector<ExpiredTail> Expire();

  // Live tails, by endpoint, with their effective utilization: what the planner uses.
  std::vector<TailEntry> Snapshot() const;
  // The live tails serving this model, as planner inputs (link left at its default for the caller to
  // fill); by endpoint, like Snapshot.
  std::vector<TailState> PlannerTails(const std::string& fingerprint, int n_layers, int dim) const;

  // Counts one plan handed out for `endpoint`. NotFound when it is not registered (it expired meanwhile).
  Status CountPlan(const std::string& endpoint);

  size_t size() const { return tails_.size(); }  // registered, including dead ones not yet expired
  const TailRegistryOptions& options() const { return options_; }

 private:
  struct Tail {
    TailReport report;
    Clock::TimePoint registered;
    Clock::TimePoint last_heartbeat;
    int64_t heartbeats = 0;
    int64_t plans_since_heartbeat = 0;
    int64_t plans_total = 0;
  };
  TailRegistry(const Clock& clock, TailRegistryOptions options) : clock_(&clock), options_(options) {}
  bool Alive(const Tail& tail, Clock::TimePoint now) const;
  double EffectiveUtilization(const Tail& tail) const;

  const Clock* clock_;
  TailRegistryOptions options_;
  std::map<std::string, Tail> tails_;  // by endpoint
};

}  // namespace tandem::scheduler
