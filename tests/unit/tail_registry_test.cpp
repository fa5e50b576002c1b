#include "tandem/scheduler/tail_registry.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem::scheduler {
namespace {

using std::chrono::milliseconds;

constexpr int kLayers = 4;

TailReport Report(std::string endpoint, double utilization = 0, double block_ms = 0.5) {
  return {.endpoint = std::move(endpoint),
          .fingerprint = "42",
          .n_layers = kLayers,
          .dim = 64,
          .workers = 1,
          .utilization = utilization,
          .free_kv_bytes = 1 << 20,
          .max_rows = 512,
          .profile = {.decode_block_ms = std::vector<double>(kLayers, block_ms),
                      .prefill = {{.tokens = 16, .block_ms = std::vector<double>(kLayers, 4 * block_ms)}},
                      .head_ms = 0.1}};
}

TailRegistry MakeRegistry(const Clock& clock, TailRegistryOptions options = {}) {
  auto registry = TailRegistry::Create(clock, options);
  EXPECT_TRUE(registry.ok()) << registry.status().ToString();
  return std::move(*registry);
}

std::vector<std::string> Endpoints(const std::vector<TailEntry>& entries) {
  std::vector<std::string> endpoints;
  for (const TailEntry& entry : entries) endpoints.push_back(entry.report.endpoint);
  return endpoints;
}

TEST(TailRegistryTest, HeartbeatRegistersAndUpdates) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock);
  auto first = registry.Heartbeat(Report("tcp://b:1", 0.2));
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_TRUE(first->joined);
  EXPECT_FALSE(first->removed);
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1", 0.1)).ok());

  clock.Advance(milliseconds(500));
  auto again = registry.Heartbeat(Report("tcp://b:1", 0.7));
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->joined);

  const auto entries = registry.Snapshot();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(Endpoints(entries), (std::vector<std::string>{"tcp://a:1", "tcp://b:1"}));  // by endpoint
  EXPECT_DOUBLE_EQ(entries[1].report.utilization, 0.7);
  EXPECT_EQ(entries[1].heartbeats, 2);
  EXPECT_EQ(entries[1].last_heartbeat - entries[1].registered, milliseconds(500));
  EXPECT_EQ(entries[0].heartbeats, 1);
}

TEST(TailRegistryTest, SilentTailExpiresAfterDeadAfter) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock, {.dead_after = milliseconds(3000)});
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1")).ok());
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://b:1")).ok());

  clock.Advance(milliseconds(2000));
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://b:1")).ok());  // b keeps beating, a goes silent
  clock.Advance(milliseconds(999));
  EXPECT_TRUE(registry.Expire().empty());
  EXPECT_EQ(registry.Snapshot().size(), 2u);

  clock.Advance(milliseconds(1));  // a's heartbeat is now exactly dead_after old
  // Snapshot hides a dead tail before Expire removes it.
  EXPECT_EQ(Endpoints(registry.Snapshot()), std::vector<std::string>{"tcp://b:1"});
  EXPECT_EQ(registry.size(), 2u);
  const auto expired = registry.Expire();
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0].endpoint, "tcp://a:1");
  EXPECT_EQ(expired[0].silent_for, milliseconds(3000));
  EXPECT_EQ(registry.size(), 1u);
  EXPECT_FALSE(registry.CountPlan("tcp://a:1").ok());

  clock.Advance(milliseconds(2000));  // b's last beat is 3000 ms old as well
  EXPECT_EQ(registry.Expire().size(), 1u);
  EXPECT_TRUE(registry.Snapshot().empty());
}

TEST(TailRegistryTest, DeadTailComesBackAsNew) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock, {.dead_after = milliseconds(1000)});
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1")).ok());
  ASSERT_TRUE(registry.CountPlan("tcp://a:1").ok());
  clock.Advance(milliseconds(1500));
  // Not expired yet, but dead by the clock: its next beat starts it afresh.
  auto back = registry.Heartbeat(Report("tcp://a:1"));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->joined);
  const auto entries = registry.Snapshot();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].heartbeats, 1);
  EXPECT_EQ(entries[0].plans_total, 0);
  EXPECT_EQ(entries[0].registered, clock.Now());
}

TEST(TailRegistryTest, DrainingReportRemovesAtOnce) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock);
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1")).ok());
  TailReport draining = Report("tcp://a:1");
  draining.draining = true;
  auto outcome = registry.Heartbeat(draining);
  ASSERT_TRUE(outcome.ok());
  EXPECT_TRUE(outcome->removed);
  EXPECT_EQ(registry.size(), 0u);
  // Draining an unknown tail is not an error, and does not register it.
  outcome = registry.Heartbeat(draining);
  ASSERT_TRUE(outcome.ok());
  EXPECT_FALSE(outcome->removed);
  EXPECT_FALSE(outcome->joined);
  EXPECT_EQ(registry.size(), 0u);
}

TEST(TailRegistryTest, PlansRaiseEffectiveUtilizationUntilTheNextHeartbeat) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock, {.per_plan_load = 0.05});
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1", 0.3)).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry.CountPlan("tcp://a:1").ok());
  auto entries = registry.Snapshot();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].plans_since_heartbeat, 3);
  EXPECT_NEAR(entries[0].effective_utilization, 0.45, 1e-12);

  // The cap: 0.3 + 20 x 0.05 = 1.3 -> 0.95.
  for (int i = 0; i < 17; ++i) ASSERT_TRUE(registry.CountPlan("tcp://a:1").ok());
  EXPECT_NEAR(registry.Snapshot()[0].effective_utilization, 0.95, 1e-12);

  // A heartbeat reports the real load and resets the count; the total stays.
  clock.Advance(milliseconds(200));
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1", 0.5)).ok());
  entries = registry.Snapshot();
  EXPECT_EQ(entries[0].plans_since_heartbeat, 0);
  EXPECT_EQ(entries[0].plans_total, 20);
  EXPECT_DOUBLE_EQ(entries[0].effective_utilization, 0.5);

  // A tail reporting more than the cap keeps its own figure.
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1", 0.99)).ok());
  ASSERT_TRUE(registry.CountPlan("tcp://a:1").ok());
  EXPECT_DOUBLE_EQ(registry.Snapshot()[0].effective_utilization, 0.99);
}

// Edges asking between two heartbeats of equally fast idle tails: each plan counts against the tail it
// chose, so the next edge goes to the other one instead of piling onto the first.
TEST(TailRegistryTest, PlansBetweenHeartbeatsSpreadOverTails) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock);
  for (const char* endpoint : {"tcp://a:1", "tcp://b:1", "tcp://c:1"}) {
    ASSERT_TRUE(registry.Heartbeat(Report(endpoint)).ok());
  }
  std::map<std::string, int> chosen;
  for (int edge = 0; edge < 9; ++edge) {
    PlanInputs inputs{.n_layers = kLayers,
                      .dim = 64,
                      .edge = {.decode_block_ms = std::vector<double>(kLayers, 10), .head_ms = 1},
                      .tails = registry.PlannerTails("42", kLayers, 64),
                      .constraints = {.allow_local = false},
                      .prompt_tokens = 8,
                      .expected_tokens = 16};
    for (TailState& tail : inputs.tails) tail.link.rtt_ms = 1;
    auto plan = MakePlan(inputs);
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    ASSERT_FALSE(plan->best.local());
    ++chosen[plan->best.endpoint];
    ASSERT_TRUE(registry.CountPlan(plan->best.endpoint).ok());
  }
  EXPECT_EQ(chosen, (std::map<std::string, int>{{"tcp://a:1", 3}, {"tcp://b:1", 3}, {"tcp://c:1", 3}}));

  // Without the per-plan load every edge would have gone to the first tail.
  TailRegistry plain = MakeRegistry(clock, {.per_plan_load = 0});
  ASSERT_TRUE(plain.Heartbeat(Report("tcp://a:1")).ok());
  ASSERT_TRUE(plain.Heartbeat(Report("tcp://b:1")).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(plain.CountPlan("tcp://a:1").ok());
  for (const TailState& tail : plain.PlannerTails("42", kLayers, 64)) EXPECT_EQ(tail.utilization, 0);
}

TEST(TailRegistryTest, PlannerTailsMatchTheModel) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock);
  ASSERT_TRUE(registry.Heartbeat(Report("tcp://a:1", 0.25)).ok());
  TailReport other_model = Report("tcp://b:1");
  other_model.fingerprint = "43";
  ASSERT_TRUE(registry.Heartbeat(other_model).ok());
  TailReport other_dim = Report("tcp://c:1");
  other_dim.dim = 128;
  ASSERT_TRUE(registry.Heartbeat(other_dim).ok());

  const auto tails = registry.PlannerTails("42", kLayers, 64);
  ASSERT_EQ(tails.size(), 1u);
  EXPECT_EQ(tails[0].endpoint, "tcp://a:1");
  EXPECT_DOUBLE_EQ(tails[0].utilization, 0.25);
  EXPECT_EQ(tails[0].max_rows, 512u);
  EXPECT_EQ(tails[0].free_kv_bytes, 1 << 20);
  EXPECT_EQ(tails[0].profile.decode_block_ms.size(), static_cast<size_t>(kLayers));
  EXPECT_TRUE(registry.PlannerTails("42", kLayers + 1, 64).empty());
  EXPECT_EQ(registry.PlannerTails("43", kLayers, 64).size(), 1u);
}

TEST(TailRegistryTest, BadReportsAreRefusedNamingTheField) {
  ManualClock clock;
  TailRegistry registry = MakeRegistry(clock);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    std::string name;
    std::function<void(TailReport&)> spoil;
    std::string field;
  };
  const std::vector<Case> cases = {
      {"empty endpoint", [](TailReport& r) { r.endpoint.clear(); }, "endpoint"},
      {"endpoint without scheme", [](TailReport& r) { r.endpoint = "10.0.0.1:5555"; }, "endpoint"},
      {"endpoint with a space", [](TailReport& r) { r.endpoint = "tcp://a b:1"; }, "endpoint"},
      {"overlong endpoint", [](TailReport& r) { r.endpoint = "tcp://" + std::string(300, 'a'); }, "endpoint"},
      {"empty fingerprint", [](TailReport& r) { r.fingerprint.clear(); }, "model.fingerprint"},
      {"no layers", [](TailReport& r) { r.n_layers = 0; }, "model.n_layers"},
      {"too many layers", [](TailReport& r) { r.n_layers = kMaxReportLayers + 1; }, "model.n_layers"},
      {"zero dim", [](TailReport& r) { r.dim = 0; }, "model.dim"},
      {"negative workers", [](TailReport& r) { r.workers = -1; }, "workers"},
      {"negative sessions", [](TailReport& r) { r.sessions = -2; }, "sessions"},
      {"negative queue", [](TailReport& r) { r.queue_depth = -1; }, "queue_depth"},
      {"utilization above 1", [](TailReport& r) { r.utilization = 1.01; }, "utilization"},
      {"negative utilization", [](TailReport& r) { r.utilization = -0.1; }, "utilization"},
      {"NaN utilization", [nan](TailReport& r) { r.utilization = nan; }, "utilization"},
      {"short profile", [](TailReport& r) { r.profile.decode_block_ms.pop_back(); },
       "profile.decode_block_ms"},
      {"long profile", [](TailReport& r) { r.profile.decode_block_ms.push_back(1); },
       "profile.decode_block_ms"},
      {"negative time", [](TailReport& r) { r.profile.decode_block_ms[2] = -1; },
       "profile.decode_block_ms[2]"},
      {"infinite time", [inf](TailReport& r) { r.profile.decode_block_ms[0] = inf; },
       "profile.decode_block_ms[0]"},
      {"NaN head", [nan](TailReport& r) { r.profile.head_ms = nan; }, "profile.head_ms"},
      {"bucket size", [](TailReport& r) { r.profile.prefill[0].block_ms.resize(1); },
       "profile.prefill[0].block_ms"},
      {"bucket order", [](TailReport& r) { r.profile.prefill.push_back(r.profile.prefill[0]); },
       "profile.prefill[1].tokens"},
      {"too many buckets",
       [](TailReport& r) {
         r.profile.prefill.clear();
         for (int i = 1; i <= 17; ++i) r.profile.prefill.push_back({i, std::vector<double>(kLayers, 1)});
       },
       "profile.prefill"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    TailReport report = Report("tcp://a:1");
    c.spoil(report);
    auto outcome = registry.Heartbeat(report);
    ASSERT_FALSE(outcome.ok());
    EXPECT_EQ(outcome.status().code(), StatusCode::kInvalidArgument);
    // The message starts with the field's path.
    EXPECT_EQ(outcome.status().message().rfind(c.field, 0), 0u) << outcome.status().message();
  }
  EXPECT_EQ(registry.size(), 0u);  // nothing refused was kept
}

TEST(TailRegistryTest, BadOptionsAreRefused) {
  ManualClock clock;
  EXPECT_FALSE(TailRegistry::Create(clock, {.dead_after = milliseconds(0)}).ok());
  EXPECT_FALSE(TailRegistry::Create(clock, {.per_plan_load = -0.1}).ok());
  EXPECT_FALSE(TailRegistry::Create(clock, {.per_plan_load = std::nan("")}).ok());
  EXPECT_FALSE(TailRegistry::Create(clock, {.max_effective_utilization = 1.5}).ok());
}

}  // namespace
}  // namespace tandem::scheduler
