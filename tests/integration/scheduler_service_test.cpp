// tandem-scheduler with real tandem-cloud tails on loopback: the tails register through their heartbeats,
// edges' plans spread over them, a killed tail leaves the registry within dead_after, a tail whose real
// load rises makes edges take more blocks, a draining tail leaves at once; real edges follow its plans,
// with and without a control secret on every service; tails and requests without the secret are refused
// (401) and change nothing; and every bad request to the API is refused with 400 naming the field.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "http_client.hpp"
#include "scheduler_process.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using testing::BackgroundProcess;
using testing::HttpCall;
using testing::HttpResult;
using testing::WaitUntil;

constexpr int kDeadAfterMs = 1500;
constexpr int kHeartbeatMs = 200;
// The synthetic edge is this much slower per block than the tail: splitting at the privacy floor pays
// while the tail is idle, and moving blocks to the edge pays once the tail's load inflates its compute by
// more than this (1 / (1 - u) > 1.5, i.e. u > 1/3).
constexpr double kEdgeSlowdown = 1.5;
constexpr double kLoadedUtilization = 0.45;

// The value of a sample in Prometheus text (-1 when absent); `name` is a regex (escape the braces).
double Sample(const std::string& metrics, const std::string& name) {
  const std::regex line("(^|\n)" + name + " ([-+0-9.eE]+)");
  std::smatch match;
  return std::regex_search(metrics, match, line) ? std::stod(match[2]) : -1;
}

// `args` and more flags.
std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

std::unique_ptr<testing::SchedulerProcess> StartScheduler(const std::vector<std::string>& more = {}) {
  return std::make_unique<testing::SchedulerProcess>(
      With({"--dead-after-ms", std::to_string(kDeadAfterMs),
            // Larger than the default 0.05: the two tails' start-up profiles differ by
            // noise, and four edges must spread over them whatever that noise is.
            "--per-plan-load", "0.25"},
           more));
}

// The tails' compute is stretched 4× (sleeping, so the cores stay with the load's clients): stories260K's
// steps take microseconds, and three clients on a loaded 2-core machine kept a tail under 0.45 busy
// (0.42 in one run) once its kernels got faster; the planner compares the edge with the tail's own profile,
// which is stretched alike.
std::unique_ptr<BackgroundProcess> StartTail(const std::string& scheduler,
                                             const std::vector<std::string>& more = {}) {
  return std::make_unique<BackgroundProcess>(
      "tandem-cloud", With({"--model", testing::Stories260KModel().string(), "--insecure", "--bind",
                            "tcp://127.0.0.1:0", "--http", "", "--workers", "1", "--scheduler", scheduler,
                            "--heartbeat-ms", std::to_string(kHeartbeatMs), "--emulate-slowdown", "4"},
                           more));
}

// A control-secret file of 64 hex digits in `dir`.
std::string WriteControlSecret(const testing::TempDir& dir, const std::string& name, char digit) {
  const std::string path = (dir / name).string();
  std::ofstream(path) << std::string(64, digit) << "\n";
  return path;
}

json Tails(const std::string& scheduler) {
  const HttpResult result = HttpCall(scheduler, "GET", "/v1/tails");
  EXPECT_EQ(result.status, 200) << result.body << result.error;
  return result.status == 200 ? json::parse(result.body)["tails"] : json::array();
}

json FindTail(const json& tails, const std::string& endpoint) {
  for (const json& tail : tails) {
    if (tail["endpoint"] == endpoint) return tail;
  }
  return nullptr;
}

// An edge profile kEdgeSlowdown times slower, block by block, than the slowest of `tails`.
json SlowerEdgeProfile(const json& tails) {
  json profile = tails[0]["profile"];
  const auto raise = [](json& mine, const json& theirs) {
    mine = std::max(mine.get<double>(), theirs.get<double>());
  };
  for (const json& tail : tails) {
    const json& other = tail["profile"];
    for (size_t b = 0; b < profile["decode_block_ms"].size(); ++b) {
      raise(profile["decode_block_ms"][b], other["decode_block_ms"][b]);
      for (size_t i = 0; i < profile["prefill"].size(); ++i) {
        raise(profile["prefill"][i]["block_ms"][b], other["prefill"][i]["block_ms"][b]);
      }
    }
    raise(profile["head_ms"], other["head_ms"]);
  }
  for (json& ms : profile["decode_block_ms"]) ms = ms.get<double>() * kEdgeSlowdown;
  for (json& bucket : profile["prefill"]) {
    for (json& ms : bucket["block_ms"]) ms = ms.get<double>() * kEdgeSlowdown;
  }
  profile["head_ms"] = profile["head_ms"].get<double>() * kEdgeSlowdown;
  return profile;
}

// An edge's plan request: the tails' model, a fast link to each, split only (the privacy floor is 1).
json PlanRequest(const json& tails, const json& edge_profile) {
  json links = json::array();
  for (const json& tail : tails) {
    links.push_back({{"endpoint", tail["endpoint"]}, {"rtt_ms", 0.2}, {"bandwidth_mbit_s", 1000}});
  }
  json model = tails[0]["model"];
  model["kv_bytes_per_position_per_block"] = 256;
  return {{"model", model},
          {"profile", edge_profile},
          {"links", links},
          {"constraints", {{"min_edge_blocks", 1}, {"allowed_codecs", {"fp32"}}, {"allow_local", false}}},
          {"objective", "weighted:1,1"},
          {"prompt_tokens", 16},
          {"expected_tokens", 64}};
}

json Plan(const std::string& scheduler, const json& request) {
  const HttpResult result = HttpCall(scheduler, "POST", "/v1/plan", request.dump());
  EXPECT_EQ(result.status, 200) << result.body << result.error;
  return result.status == 200 ? json::parse(result.body) : json::object();
}

// Waits until `endpoint`'s latest heartbeat came after every plan so far, and `condition` holds for it.
json WaitForFreshHeartbeat(const std::string& scheduler, const std::string& endpoint,
                           const std::function<bool(const json&)>& condition, milliseconds timeout) {
  json found = nullptr;
  WaitUntil(
      [&] {
        const json tail = FindTail(Tails(scheduler), endpoint);
        if (tail.is_null() || tail["plans_since_heartbeat"] != 0 || !condition(tail)) return false;
        found = tail;
        return true;
      },
      timeout);
  return found;
}

class SchedulerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
  }

  // A scheduler and two tails heartbeating to it, each given `more` flags; the endpoints are empty when a
  // tail did not start.
  void StartSchedulerAndTwoTails(const std::vector<std::string>& more = {}) {
    scheduler_process_ = StartScheduler(more);
    scheduler_ = scheduler_process_->address();
    ASSERT_FALSE(scheduler_.empty()) << scheduler_process_->log();
    tail_a_ = StartTail(scheduler_, more);
    tail_b_ = StartTail(scheduler_, more);
    endpoint_a_ = testing::LogField(tail_a_->WaitForLine("msg=serving"), "endpoint");
    endpoint_b_ = testing::LogField(tail_b_->WaitForLine("msg=serving"), "endpoint");
  }

  std::string scheduler_, endpoint_a_, endpoint_b_;
  std::unique_ptr<testing::SchedulerProcess> scheduler_process_;
  std::unique_ptr<BackgroundProcess> tail_a_, tail_b_;
};

TEST_F(SchedulerServiceTest, BalancesEdgesOverRealTails) {
  StartSchedulerAndTwoTails();
  ASSERT_FALSE(endpoint_a_.empty()) << tail_a_->Stderr();
  ASSERT_FALSE(endpoint_b_.empty()) << tail_b_->Stderr();

  // (a) Both tails register through their heartbeats; four edges asking at once spread over them.
  json tails;
  ASSERT_TRUE(WaitUntil(
      [&] {
        tails = Tails(scheduler_);
        return tails.size() == 2;
      },
      milliseconds(20000)))
      << scheduler_process_->log();
  EXPECT_FALSE(FindTail(tails, endpoint_a_).is_null()) << tails.dump();
  EXPECT_FALSE(FindTail(tails, endpoint_b_).is_null()) << tails.dump();
  for (const json& tail : tails) {
    EXPECT_EQ(tail["model"]["n_layers"], 5);
    EXPECT_EQ(tail["workers"], 1);
    EXPECT_LT(tail["last_heartbeat_ms_ago"].get<double>(), kDeadAfterMs);
    EXPECT_EQ(tail["profile"]["decode_block_ms"].size(), 5u);
  }
  EXPECT_EQ(HttpCall(scheduler_, "GET", "/readyz").body, R"({"status":"ready","tails_alive":2})");
  const json request = PlanRequest(tails, SlowerEdgeProfile(tails));
  std::vector<std::future<json>> edges;
  for (int edge = 0; edge < 4; ++edge) {
    edges.push_back(std::async(std::launch::async, [&] { return Plan(scheduler_, request); }));
  }
  std::multiset<std::string> chosen;
  for (auto& edge : edges) {
    const json plan = edge.get();
    ASSERT_TRUE(plan.contains("tail")) << plan.dump();
    EXPECT_FALSE(plan["local"].get<bool>()) << plan.dump();
    EXPECT_GE(plan["cut"].get<int>(), 1);
    EXPECT_EQ(plan["codec"], "fp32");
    EXPECT_EQ(plan["tails_considered"], 2);
    EXPECT_GT(plan["predicted_ttft_ms"].get<double>(), 0);
    EXPECT_GT(plan["predicted_token_ms"].get<double>(), 0);
    EXPECT_GE(plan["candidates"].size(), 1u);
    EXPECT_LE(plan["candidates"].size(), 5u);
    // The cheapest candidate, or a near-tie on a less loaded tail (--balance-margin): listed either way.
    EXPECT_TRUE(std::any_of(plan["candidates"].begin(), plan["candidates"].end(), [&](const json& candidate) {
      return candidate["tail"] == plan["tail"];
    })) << plan.dump();
    chosen.insert(plan["tail"].get<std::string>());
  }
  EXPECT_GE(chosen.count(endpoint_a_), 1u) << "every edge went to " << endpoint_b_;
  EXPECT_GE(chosen.count(endpoint_b_), 1u) << "every edge went to " << endpoint_a_;
  int plans_total = 0;
  for (const json& tail : Tails(scheduler_)) plans_total += tail["plans_total"].get<int>();
  EXPECT_EQ(plans_total, 4);
  std::string metrics = HttpCall(scheduler_, "GET", "/metrics").body;
  EXPECT_EQ(Sample(metrics, R"(tandem_scheduler_plans_total\{choice="split"\})"), 4) << metrics;
  EXPECT_EQ(Sample(metrics, "tandem_scheduler_tails_alive"), 2) << metrics;
  EXPECT_GE(Sample(metrics, "tandem_scheduler_heartbeats_total"), 2) << metrics;
  EXPECT_GE(Sample(metrics, R"(tandem_scheduler_tail_utilization\{tail=")" + endpoint_a_ + R"("\})"), 0)
      << metrics;
  EXPECT_GE(Sample(metrics, R"(tandem_scheduler_tail_sessions\{tail=")" + endpoint_a_ + R"("\})"), 0)
      << metrics;

  // (b) A tail killed outright (no draining heartbeat) leaves within dead_after; every plan then goes to
  // the other.
  const auto killed = std::chrono::steady_clock::now();
  tail_a_->Signal(SIGKILL);
  // The bound is generous (a loaded host runs the sweep late); that it was the heartbeat deadline, not
  // something else, shows in the log line and the expiry counter. tail_registry_test times it on a fake
  // clock.
  ASSERT_TRUE(WaitUntil([&] { return FindTail(Tails(scheduler_), endpoint_a_).is_null(); },
                        milliseconds(kDeadAfterMs + 15000)));
  const auto gone_after = std::chrono::steady_clock::now() - killed;
  EXPECT_GE(gone_after, milliseconds(kDeadAfterMs / 2)) << "left before its heartbeats could have stopped";
  EXPECT_FALSE(scheduler_process_->process()
                   .WaitForLine("msg=\"tail expired: no heartbeat\" tail=" + endpoint_a_, 10000)
                   .empty())
      << scheduler_process_->log();
  metrics = HttpCall(scheduler_, "GET", "/metrics").body;
  EXPECT_EQ(Sample(metrics, "tandem_scheduler_tails_expired_total"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "tandem_scheduler_tails_alive"), 1) << metrics;
  EXPECT_EQ(metrics.find(endpoint_a_), std::string::npos) << "series of the expired tail remain: " << metrics;
  for (int edge = 0; edge < 4; ++edge) {
    const json plan = Plan(scheduler_, request);
    EXPECT_EQ(plan["tail"], endpoint_b_) << plan.dump();
    EXPECT_EQ(plan["tails_considered"], 1);
  }

  // (c) Real load on the remaining tail (benchmarks split through it) raises its reported utilization:
  // edges then take more blocks. Only plans made right after a heartbeat count, so that the shift comes
  // from the load the tail reported, not from the plans counted against it.
  json tail = WaitForFreshHeartbeat(
      scheduler_, endpoint_b_, [](const json&) { return true; }, milliseconds(20000));
  ASSERT_FALSE(tail.is_null());
  const json only_b = json::array({tail});
  const json request_b = PlanRequest(only_b, SlowerEdgeProfile(only_b));
  tail = WaitForFreshHeartbeat(
      scheduler_, endpoint_b_, [](const json& t) { return t["utilization"].get<double>() < 0.1; },
      milliseconds(20000));
  ASSERT_FALSE(tail.is_null()) << "the idle tail reports load: " << Tails(scheduler_).dump();
  const json idle_plan = Plan(scheduler_, request_b);
  const int idle_cut = idle_plan.value("cut", -1);
  EXPECT_EQ(idle_cut, 1) << idle_plan.dump();

  std::vector<std::unique_ptr<BackgroundProcess>> load;
  for (int i = 0; i < 3; ++i) {
    load.push_back(std::make_unique<BackgroundProcess>(
        "tandem",
        std::vector<std::string>{"bench", "--model", testing::Stories260KModel().string(), "--split", "1",
                                 "--cloud", endpoint_b_, "--insecure", "--threads", "1", "--prompt-tokens",
                                 "256", "--gen-tokens", "256", "--warmup", "0", "--repeat", "100000"}));
  }
  json loaded_plan;
  double seen_utilization = 0;
  const bool shifted = WaitUntil(
      [&] {
        const json fresh = WaitForFreshHeartbeat(
            scheduler_, endpoint_b_,
            [&](const json& t) {
              seen_utilization = std::max(seen_utilization, t["utilization"].get<double>());
              return t["utilization"].get<double>() >= kLoadedUtilization;
            },
            milliseconds(500));
        if (fresh.is_null()) return false;
        loaded_plan = Plan(scheduler_, request_b);
        // The planner saw the load (a heartbeat may have come in between with another figure).
        return loaded_plan.value("tail_utilization", 0.0) >= kLoadedUtilization;
      },
      milliseconds(25000));
  ASSERT_TRUE(shifted) << "highest reported utilization " << seen_utilization << "; " << load[0]->Stderr();
  EXPECT_EQ(loaded_plan["tail"], endpoint_b_);
  EXPECT_GT(loaded_plan["cut"].get<int>(), idle_cut) << loaded_plan.dump();
  EXPECT_EQ(loaded_plan["cut"], 4) << loaded_plan.dump();  // every block but the tail's last one

  // The load stops: the tail reports idle again and edges go back to the privacy floor.
  for (auto& bench : load) bench->Stop();
  tail = WaitForFreshHeartbeat(
      scheduler_, endpoint_b_, [](const json& t) { return t["utilization"].get<double>() < 0.1; },
      milliseconds(20000));
  ASSERT_FALSE(tail.is_null()) << Tails(scheduler_).dump();
  EXPECT_EQ(Plan(scheduler_, request_b)["cut"], idle_cut);

  // A tail being stopped says so in a last heartbeat and leaves at once, not by missing its heartbeats:
  // the log says "left: draining" and the expiry counter stays at the one tail killed above.
  tail_b_->Signal(SIGTERM);
  ASSERT_TRUE(WaitUntil([&] { return Tails(scheduler_).empty(); }, milliseconds(kDeadAfterMs + 15000)));
  EXPECT_FALSE(scheduler_process_->process()
                   .WaitForLine("msg=\"tail left: draining\" tail=" + endpoint_b_, 10000)
                   .empty())
      << scheduler_process_->log();
  metrics = HttpCall(scheduler_, "GET", "/metrics").body;
  EXPECT_EQ(Sample(metrics, "tandem_scheduler_tails_expired_total"), 1) << metrics;
  // Sessions the load left open keep it draining: Stop()'s second SIGTERM ends the drain, cleanly.
  EXPECT_EQ(tail_b_->Stop(), 0) << tail_b_->Stderr();

  // No tail left and all-local not allowed: 503 no_tail.
  const HttpResult refused = HttpCall(scheduler_, "POST", "/v1/plan", request_b.dump());
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(json::parse(refused.body)["error"]["code"], "no_tail") << refused.body;
  EXPECT_EQ(scheduler_process_->process().Stop(), 0) << scheduler_process_->log();
}

// Real edges (tandem-edge --split auto --scheduler) over two real tails: their plans come from the
// scheduler and the output stays golden; a killed tail's share moves to the other; with the scheduler
// gone the edges plan by themselves and keep serving. Run twice: without a control secret, and with one
// on every service (every heartbeat and plan request signed, none refused).
class SchedulerWithEdgesTest : public SchedulerServiceTest, public ::testing::WithParamInterface<bool> {
 protected:
  // The flags every service gets: none, or the control secret (written by tandem control-secret, 0600).
  std::vector<std::string> ControlFlags() {
    if (!GetParam()) return {};
    const std::string path = (dir_ / "control.secret").string();
    const testing::CommandResult written = testing::RunProgram("tandem", {"control-secret", "--out", path});
    EXPECT_EQ(written.exit_code, 0) << written.err;
    EXPECT_EQ(std::filesystem::status(path).permissions(),
              std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    return {"--control-secret-file", path};
  }
  testing::TempDir dir_;
};

TEST_P(SchedulerWithEdgesTest, RealEdgesFollowTheSchedulersPlans) {
  const std::vector<std::string> control = ControlFlags();
  StartSchedulerAndTwoTails(control);
  ASSERT_FALSE(endpoint_a_.empty() || endpoint_b_.empty()) << tail_a_->Stderr() << tail_b_->Stderr();
  ASSERT_TRUE(WaitUntil([&] { return Tails(scheduler_).size() == 2; }, milliseconds(20000)));

  // Each edge is a slow device (emulated) that may not run everything itself: it splits.
  std::vector<std::unique_ptr<BackgroundProcess>> edges;
  std::vector<std::string> addresses;
  for (int i = 0; i < 4; ++i) {
    edges.push_back(std::make_unique<BackgroundProcess>(
        "tandem-edge",
        With({"--model", testing::Stories260KModel().string(), "--tokenizer",
              testing::Stories260KTokenizer().string(), "--cloud", endpoint_a_ + "," + endpoint_b_,
              "--insecure", "--listen", "127.0.0.1:0", "--split", "auto", "--scheduler", scheduler_,
              "--emulate-slowdown", "3", "--allow-local=false", "--timeout-ms", "2000"},
             control)));
    addresses.push_back(testing::LogField(edges.back()->WaitForLine("msg=serving"), "listen"));
    ASSERT_FALSE(addresses.back().empty()) << edges.back()->Stderr();
  }
  const json golden = testing::GoldenRecords().front();
  const json request = {{"prompt", golden["prompt"]},
                        {"max_tokens", golden["ids"].size() - golden["prompt_ids"].size()},
                        {"temperature", 0}};
  const std::string continuation =
      golden["text"].get<std::string>().substr(golden["prompt"].get<std::string>().size());
  // Every edge asks at once; returns the tail each completion ran on.
  const auto complete_all = [&] {
    std::vector<std::future<json>> answers;
    for (const std::string& address : addresses) {
      answers.push_back(std::async(std::launch::async, [&, address] {
        const HttpResult result = HttpCall(address, "POST", "/v1/completions", request.dump());
        EXPECT_EQ(result.status, 200) << result.body;
        return result.status == 200 ? json::parse(result.body) : json::object();
      }));
    }
    std::multiset<std::string> used;
    for (auto& answer : answers) {
      const json body = answer.get();
      if (!body.contains("tandem")) continue;
      EXPECT_EQ(body["choices"][0]["text"], continuation);
      EXPECT_LT(body["tandem"]["cut"].get<int>(), 5) << body["tandem"].dump();
      used.insert(body["tandem"]["cloud"].get<std::string>());
    }
    return used;
  };
  // The edges' tail connections come up in the background.
  for (const std::string& address : addresses) {
    ASSERT_TRUE(
        WaitUntil([&] { return HttpCall(address, "GET", "/readyz").status == 200; }, milliseconds(20000)));
  }
  // Each edge measures its own RTT to each tail, and the scheduler_ weighs those: on loopback their noise
  // can outweigh the load balancing, so how the edges spread here is not checked (the synthetic edges of
  // BalancesEdgesOverRealTails, with equal links, check it).
  std::multiset<std::string> used = complete_all();
  EXPECT_EQ(used.size(), 4u);
  const json plan = json::parse(HttpCall(addresses[0], "GET", "/v1/plan").body);
  EXPECT_GE(plan["planner"]["scheduler"]["plans"].get<int>(), 1) << plan.dump();
  EXPECT_EQ(plan["planner"]["scheduler"]["error"], "") << plan.dump();
  const std::string metrics = HttpCall(scheduler_, "GET", "/metrics").body;
  EXPECT_GE(Sample(metrics, R"(tandem_scheduler_plans_total\{choice="split"\})"), 4) << metrics;
  for (const std::string reason : {"missing", "bad_mac", "stale"}) {
    EXPECT_EQ(Sample(metrics, R"(tandem_scheduler_auth_failures_total\{reason=")" + reason + R"("\})"), 0)
        << metrics;
  }

  // The busier tail dies: once the scheduler_ dropped it, every edge's next completion runs on the other.
  const bool a_busier = used.count(endpoint_a_) >= used.count(endpoint_b_);
  auto& victim = a_busier ? tail_a_ : tail_b_;
  const std::string& dead = a_busier ? endpoint_a_ : endpoint_b_;
  const std::string& survivor = a_busier ? endpoint_b_ : endpoint_a_;
  victim->Signal(SIGKILL);
  ASSERT_TRUE(WaitUntil([&] { return FindTail(Tails(scheduler_), dead).is_null(); },
                        milliseconds(kDeadAfterMs + 15000)));
  used = complete_all();
  EXPECT_EQ(used.count(survivor), 4u) << "some edges still used " << dead;

  // The scheduler_ goes away: the edges plan by themselves (the survivor is the tail they can reach) and
  // keep serving.
  EXPECT_EQ(scheduler_process_->process().Stop(), 0);
  used = complete_all();
  EXPECT_EQ(used.count(survivor), 4u);
  const json alone = json::parse(HttpCall(addresses[0], "GET", "/v1/plan").body);
  EXPECT_NE(alone["planner"]["scheduler"]["error"], "") << alone.dump();
}

INSTANTIATE_TEST_SUITE_P(ControlPlane, SchedulerWithEdgesTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Signed" : "Unauthenticated";
                         });

// A minimal valid tail report and plan request (a synthetic tail: no real one is involved here).
json Profile(int layers, double block_ms) {
  return {{"decode_block_ms", std::vector<double>(static_cast<size_t>(layers), block_ms)},
          {"prefill",
           {{{"tokens", 16}, {"block_ms", std::vector<double>(static_cast<size_t>(layers), 8 * block_ms)}}}},
          {"head_ms", 0.1}};
}
json Heartbeat() {
  return {{"endpoint", "tcp://10.0.0.9:5555"},
          {"model", {{"fingerprint", "77"}, {"n_layers", 4}, {"dim", 64}}},
          {"workers", 2},
          {"sessions", 1},
          {"queue_depth", 0},
          {"utilization", 0.1},
          {"free_kv_bytes", 1 << 30},
          {"max_rows", 512},
          {"codecs", {"fp32", "fp16"}},
          {"profile", Profile(4, 0.1)}};
}
json PlanBody() {
  return {{"model", {{"fingerprint", "77"}, {"n_layers", 4}, {"dim", 64}}},
          {"profile", Profile(4, 1.0)},
          {"constraints", {{"allow_local", false}}},
          {"prompt_tokens", 8},
          {"expected_tokens", 8}};
}

TEST_F(SchedulerServiceTest, BadRequestsAreRefusedNamingTheField) {
  const auto process = StartScheduler();
  const std::string scheduler = process->address();
  ASSERT_FALSE(scheduler.empty()) << process->log();

  // Without any tail: 503 no_tail when local is not allowed, the local plan when it is.
  HttpResult result = HttpCall(scheduler, "POST", "/v1/plan", PlanBody().dump());
  EXPECT_EQ(result.status, 503) << result.body;
  EXPECT_EQ(json::parse(result.body)["error"]["code"], "no_tail");
  json local_body = PlanBody();
  local_body["constraints"]["allow_local"] = true;
  result = HttpCall(scheduler, "POST", "/v1/plan", local_body.dump());
  ASSERT_EQ(result.status, 200) << result.body;
  json plan = json::parse(result.body);
  EXPECT_TRUE(plan["tail"].is_null());
  EXPECT_TRUE(plan["local"].get<bool>());
  EXPECT_EQ(plan["cut"], 4);

  // A synthetic tail registers, gets the plan, and leaves with a draining report.
  result = HttpCall(scheduler, "POST", "/v1/tails/heartbeat", Heartbeat().dump());
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(json::parse(result.body)["ok"], true);
  EXPECT_EQ(json::parse(result.body)["dead_after_ms"], kDeadAfterMs);
  result = HttpCall(scheduler, "POST", "/v1/plan", PlanBody().dump());
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(json::parse(result.body)["tail"], "tcp://10.0.0.9:5555");
  json other_model = PlanBody();
  other_model["model"]["fingerprint"] = "78";
  EXPECT_EQ(HttpCall(scheduler, "POST", "/v1/plan", other_model.dump()).status, 503);
  json draining = Heartbeat();
  draining["draining"] = true;
  result = HttpCall(scheduler, "POST", "/v1/tails/heartbeat", draining.dump());
  ASSERT_EQ(result.status, 200) << result.body;
  EXPECT_EQ(json::parse(result.body)["removed"], true);
  EXPECT_TRUE(Tails(scheduler).empty());

  struct Case {
    std::string name;
    std::string path;
    std::string body;
    std::string param;  // "" for a body that is not JSON
  };
  const auto plan_with = [](const std::function<void(json&)>& spoil) {
    json body = PlanBody();
    spoil(body);
    return body.dump();
  };
  const auto heartbeat_with = [](const std::function<void(json&)>& spoil) {
    json body = Heartbeat();
    spoil(body);
    return body.dump();
  };
  const std::vector<Case> cases = {
      {"plan: not JSON", "/v1/plan", "{\"model\":", ""},
      {"plan: not an object", "/v1/plan", "[1,2]", "body"},
      {"plan: no model", "/v1/plan", plan_with([](json& b) { b.erase("model"); }), "model"},
      {"plan: no fingerprint", "/v1/plan", plan_with([](json& b) { b["model"].erase("fingerprint"); }),
       "model.fingerprint"},
      {"plan: layers as text", "/v1/plan", plan_with([](json& b) { b["model"]["n_layers"] = "4"; }),
       "model.n_layers"},
      {"plan: no profile", "/v1/plan", plan_with([](json& b) { b.erase("profile"); }), "profile"},
      {"plan: short profile", "/v1/plan",
       plan_with([](json& b) { b["profile"]["decode_block_ms"].erase(0); }), "profile.decode_block_ms"},
      {"plan: negative time", "/v1/plan", plan_with([](json& b) { b["profile"]["decode_block_ms"][1] = -2; }),
       "profile.decode_block_ms[1]"},
      {"plan: bucket out of order", "/v1/plan",
       plan_with([](json& b) { b["profile"]["prefill"].push_back(b["profile"]["prefill"][0]); }),
       "profile.prefill[1].tokens"},
      {"plan: negative rtt", "/v1/plan", plan_with([](json& b) {
         b["links"] = {{{"endpoint", "tcp://x:1"}, {"rtt_ms", -1}}};
       }),
       "links[0].rtt_ms"},
      {"plan: zero bandwidth", "/v1/plan", plan_with([](json& b) {
         b["links"] = {{{"endpoint", "tcp://x:1"}, {"bandwidth_mbit_s", 0}}};
       }),
       "links[0].bandwidth_mbit_s"},
      {"plan: unknown codec", "/v1/plan", plan_with([](json& b) {
         b["constraints"]["allowed_codecs"] = {"fp32", "fp12"};
       }),
       "constraints.allowed_codecs[1]"},
      {"plan: floor above budget", "/v1/plan", plan_with([](json& b) {
         b["constraints"]["min_edge_blocks"] = 3;
         b["constraints"]["max_edge_blocks"] = 2;
       }),
       "constraints.min_edge_blocks"},
      {"plan: floor above layers", "/v1/plan",
       plan_with([](json& b) { b["constraints"]["min_edge_blocks"] = 5; }), "constraints.min_edge_blocks"},
      {"plan: unknown objective", "/v1/plan", plan_with([](json& b) { b["objective"] = "fastest"; }),
       "objective"},
      {"plan: no prompt", "/v1/plan", plan_with([](json& b) { b["prompt_tokens"] = 0; }), "prompt_tokens"},
      {"plan: fractional tokens", "/v1/plan", plan_with([](json& b) { b["expected_tokens"] = 1.5; }),
       "expected_tokens"},
      {"heartbeat: not JSON", "/v1/tails/heartbeat", "utilization=1", ""},
      {"heartbeat: no endpoint", "/v1/tails/heartbeat", heartbeat_with([](json& b) { b.erase("endpoint"); }),
       "endpoint"},
      {"heartbeat: endpoint without scheme", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["endpoint"] = "10.0.0.9:5555"; }), "endpoint"},
      {"heartbeat: utilization above 1", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["utilization"] = 1.5; }), "utilization"},
      {"heartbeat: no utilization", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b.erase("utilization"); }), "utilization"},
      {"heartbeat: too many layers", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["model"]["n_layers"] = 5000; }), "model.n_layers"},
      {"heartbeat: profile of another size", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["model"]["n_layers"] = 5; }), "profile.decode_block_ms"},
      {"heartbeat: negative head", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["profile"]["head_ms"] = -0.1; }), "profile.head_ms"},
      {"heartbeat: negative sessions", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["sessions"] = -1; }), "sessions"},
      {"heartbeat: unknown codec", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["codecs"] = {"fp8"}; }), "codecs[0]"},
      {"heartbeat: draining as text", "/v1/tails/heartbeat",
       heartbeat_with([](json& b) { b["draining"] = "yes"; }), "draining"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    result = HttpCall(scheduler, "POST", c.path, c.body);
    ASSERT_EQ(result.status, 400) << result.body;
    const json error = json::parse(result.body)["error"];
    EXPECT_EQ(error["type"], "invalid_request_error");
    if (c.param.empty()) {
      EXPECT_EQ(error["code"], "invalid_json");
    } else {
      EXPECT_EQ(error["param"], c.param) << result.body;
      EXPECT_NE(error["message"].get<std::string>().find(c.param), std::string::npos) << result.body;
    }
  }
  EXPECT_TRUE(Tails(scheduler).empty());  // nothing refused was registered

  EXPECT_EQ(HttpCall(scheduler, "GET", "/v1/plan").status, 405);
  EXPECT_EQ(HttpCall(scheduler, "GET", "/v1/nothing").status, 404);
  EXPECT_EQ(HttpCall(scheduler, "GET", "/healthz").status, 200);
  EXPECT_EQ(Sample(HttpCall(scheduler, "GET", "/metrics").body, "tandem_scheduler_heartbeats_total"), 2);
  EXPECT_EQ(process->process().Stop(), 0) << process->log();
}

// With a control secret, a tail without it or with another one is refused at every heartbeat (401, counted
// by reason) and never registers, and so is an unsigned plan request; the scheduler logs the refusals.
TEST_F(SchedulerServiceTest, TailsAndEdgesWithoutTheSecretAreRefused) {
  testing::TempDir dir;
  const auto scheduler_process =
      StartScheduler({"--control-secret-file", WriteControlSecret(dir, "control.secret", '7')});
  const std::string scheduler = scheduler_process->address();
  ASSERT_FALSE(scheduler.empty()) << scheduler_process->log();
  const auto unsigned_tail = StartTail(scheduler);
  const auto intruder =
      StartTail(scheduler, {"--control-secret-file", WriteControlSecret(dir, "other", '8')});
  const auto refused = [&](const std::string& reason) {
    return Sample(HttpCall(scheduler, "GET", "/metrics").body,
                  R"(tandem_scheduler_auth_failures_total\{reason=")" + reason + R"("\})");
  };
  ASSERT_TRUE(
      WaitUntil([&] { return refused("missing") >= 2 && refused("bad_mac") >= 2; }, milliseconds(20000)))
      << scheduler_process->log();
  EXPECT_TRUE(Tails(scheduler).empty());
  EXPECT_EQ(Sample(HttpCall(scheduler, "GET", "/metrics").body, "tandem_scheduler_heartbeats_total"), 0);
  EXPECT_FALSE(unsigned_tail->WaitForLine("msg=\"heartbeat failed; retrying every interval\"").empty());
  EXPECT_FALSE(intruder->WaitForLine("MAC does not match").empty()) << intruder->Stderr();
  EXPECT_FALSE(
      scheduler_process->process().WaitForLine("msg=\"control-plane request refused\"", 10000).empty());

  const HttpResult plan = HttpCall(scheduler, "POST", "/v1/plan", PlanBody().dump());
  EXPECT_EQ(plan.status, 401) << plan.body;
  EXPECT_EQ(json::parse(plan.body)["error"]["code"], "invalid_control_credential") << plan.body;
  EXPECT_EQ(plan.Header("www-authenticate"), "Tandem-HMAC");
  EXPECT_EQ(HttpCall(scheduler, "POST", "/v1/tails/heartbeat", Heartbeat().dump()).status, 401);
  EXPECT_TRUE(Tails(scheduler).empty());
  EXPECT_EQ(Sample(HttpCall(scheduler, "GET", "/metrics").body,
                   "tandem_scheduler_plans_total\\{choice=\"split\"\\}"),
            0);
  EXPECT_EQ(scheduler_process->process().Stop(), 0) << scheduler_process->log();
}

// A control-secret file that is missing, empty or too short stops every service at start-up with exit 2,
// naming the file.
TEST_F(SchedulerServiceTest, ABadControlSecretFileIsAStartUpError) {
  testing::TempDir dir;
  std::ofstream(dir / "short") << "too short\n";
  std::ofstream(dir / "empty");
  for (const std::string name : {"short", "empty", "absent"}) {
    const std::string path = (dir / name).string();
    for (const auto& [program, args] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {"tandem-scheduler", {"--listen", "127.0.0.1:0"}},
             {"tandem-cloud", {"--model", testing::Stories260KModel().string(), "--insecure"}},
             {"tandem-edge",
              {"--model", testing::Stories260KModel().string(), "--tokenizer",
               testing::Stories260KTokenizer().string(), "--cloud", "tcp://127.0.0.1:1", "--insecure"}}}) {
      SCOPED_TRACE(program + " " + name);
      const testing::CommandResult result =
          testing::RunProgram(program, With(args, {"--control-secret-file", path}), 60);
      EXPECT_EQ(result.exit_code, 2) << result.err;
      EXPECT_NE(result.err.find(path), std::string::npos) << result.err;
    }
  }
}

}  // namespace
}  // namespace tandem
