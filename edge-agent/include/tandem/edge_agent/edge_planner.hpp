// The edge's planner: puts its own start-up compute profile, each tail's link estimates and last STATS
// into the planner, and keeps the choice stable across requests (hysteresis). With a scheduler it asks
// the scheduler first (POST /v1/plan with the same figures) and plans by itself when the scheduler is
// away. Thread-safe: every request asks it.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "tandem/base/clock.hpp"
#include "tandem/edge_agent/split_planner.hpp"
#include "tandem/edge_agent/tail_set.hpp"
#include "tandem/scheduler/link_estimator.hpp"
#include "tandem/scheduler/planner.hpp"
#include "tandem/services/http_client.hpp"
#include "tandem/services/request_signing.hpp"
#include "tandem/wire/compute_profile.hpp"

namespace tandem::edge_agent {

struct EdgePlannerOptions {
  scheduler::PlanConstraints constraints;
  scheduler::Objective objective;
  scheduler::HysteresisOptions hysteresis;
  double default_bandwidth_bytes_per_ms = 12500;
  std::string objective_text = "weighted:1,1";  // as given, for the scheduler
  std::string scheduler;  // [http[s]://]HOST:PORT of tandem-scheduler; empty: plan alone
  std::chrono::milliseconds scheduler_timeout{300};
  std::optional<services::RequestSigner> scheduler_signer;       // signs plan requests (the control secret)
  std::shared_ptr<const services::HttpClientTls> scheduler_tls;  // checks an https:// scheduler
  // Speculative decoding as the cost model sees it now (the edge's drafter, its acceptance and time per
  // token); none: plans without drafting.
  std::function<scheduler::DraftInputs()> draft;
};

struct ModelShape {
  std::string fingerprint;  // decimal, as HELLO and the scheduler compare it
  int n_layers = 0;
  int dim = 0;
  int64_t kv_bytes_per_position_per_block = 0;
  int edge_int8_blocks = 0;  // the edge's first blocks with int8 weights
};

class EdgePlanner final : public SplitPlanner {
 public:
  // `tails` may learn new tails from the scheduler's plans.
  EdgePlanner(ModelShape shape, ComputeProfile edge_profile, TailSet& tails, EdgePlannerOptions options,
              const Clock& clock);

  Result<scheduler::Candidate> Choose(int prompt_tokens, int expected_tokens) override;
  void Refresh() override;
  Result<MoveAdvice> AdviseMove(const scheduler::Candidate& current, int positions, int remaining) override;
  // This edge's own plan, without the scheduler or hysteresis.
  Result<scheduler::Candidate> Alternative(const scheduler::Candidate& failed, int positions,
                                           int remaining) override;
  // The last plan, the inputs it came from and the estimates, for GET /v1/plan.
  nlohmann::json Describe() const override;
  const ComputeProfile& edge_profile() const { return inputs_.edge; }

 private:
  // The scheduler's plan, or an error when it cannot give one now.
  Result<scheduler::Candidate> AskScheduler(int prompt_tokens, int expected_tokens);
  // Inputs with the latest link estimates and tail reports (caller holds mutex_).
  scheduler::PlanInputs CurrentInputs(int prompt_tokens, int expected_tokens) const;
  // MakePlan and the stabilizer (caller holds mutex_).
  Result<scheduler::Candidate> PlanLocked(int prompt_tokens, int expected_tokens);

  TailSet& tails_;
  const ModelShape shape_;
  const EdgePlannerOptions options_;
  mutable std::mutex mutex_;
  scheduler::PlanInputs inputs_;  // the fixed part: shape, edge profile, constraints, objective
  scheduler::PlanStabilizer stabilizer_;
  std::optional<scheduler::Plan> last_plan_;
  std::optional<scheduler::Candidate> current_;  // the latest choice, the scheduler's or this planner's
  int plans_ = 0;
  int switches_ = 0;
  int last_prompt_tokens_ = 16, last_expected_tokens_ = 16;
  int scheduler_plans_ = 0;
  std::string scheduler_error_;  // the last failure to get a plan from the scheduler, "" once one came
};

}  // namespace tandem::edge_agent
