// A real Prometheus (Debian's /usr/bin/prometheus) with the project's scrape config
// (deploy/prometheus/prometheus.yml) and alert rules (helm/tandem/files/alerts.yml), scraping a real
// scheduler, tail and edge on 127.0.0.1 through file_sd target files written here: promtool accepts the
// config, the three jobs are up, their series move with traffic (and the heartbeats by themselves), every
// dashboard query evaluates (the core panels with data), and every alert rule loads and evaluates cleanly.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "http_client.hpp"
#include "promql_names.hpp"
#include "service_stack.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using std::chrono::seconds;
using testing::HttpCall;
using testing::HttpResult;
using testing::WaitUntil;

// What the dashboard's Grafana variables stand for here: four scrapes (of 5 s) per rate window.
constexpr const char* kRateInterval = "20s";
constexpr const char* kRange = "5m";
const std::vector<std::string> kJobs = {"tandem-cloud", "tandem-edge", "tandem-scheduler"};
// Panels reading these have data whenever the services are up and have served completions, one of them
// refused (the error rate's series).
const std::set<std::string> kCoreMetrics = {
    "tandem_edge_ttft_seconds_bucket", "tandem_edge_tokens_total",
    "tandem_cloud_tokens_total",       "tandem_edge_cut",
    "tandem_edge_requests_total",      "tandem_cloud_kv_cache_bytes",
    "tandem_cloud_queue_depth",        "tandem_scheduler_tails_alive"};

// /usr/bin/<tool>, else <tool> on PATH; empty when neither.
fs::path FindTool(const std::string& tool) {
  if (fs::exists("/usr/bin/" + tool)) return "/usr/bin/" + tool;
  std::istringstream path(std::getenv("PATH") != nullptr ? std::getenv("PATH") : "");
  for (std::string dir; std::getline(path, dir, ':');) {
    if (!dir.empty() && fs::exists(fs::path(dir) / tool)) return fs::path(dir) / tool;
  }
  return {};
}

std::string UrlEncode(const std::string& text) {
  std::string encoded;
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      encoded += static_cast<char>(c);
    } else {
      char escape[4];
      std::snprintf(escape, sizeof escape, "%%%02X", c);
      encoded += escape;
    }
  }
  return encoded;
}

std::string Replace(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size())) {
    text.replace(at, from.size(), to);
  }
  return text;
}

// A dashboard query as Grafana sends it here: its variables replaced.
std::string WithGrafanaVariables(const std::string& expr) {
  return Replace(Replace(expr, "$__rate_interval", kRateInterval), "$__range", kRange);
}

bool ReadsCoreMetric(const testing::DashboardQuery& query) {
  const std::set<std::string> names = testing::PromqlMetricNames(query.expr);
  return std::any_of(names.begin(), names.end(),
                     [](const std::string& name) { return kCoreMetrics.count(name); });
}

void CopyFile(const fs::path& from, const fs::path& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}

// Prometheus and the services it scrapes, started once for the suite.
class PrometheusTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    prometheus_binary_ = FindTool("prometheus");
    if (prometheus_binary_.empty()) {
      // The one tool the build does not need: scripts/install-deps.sh installs it with the rest.
      const testing::CommandResult install =
          testing::RunProgram((testing::SourceDir() / "scripts/install-deps.sh").string(), {}, 150);
      prometheus_binary_ = FindTool("prometheus");
      if (prometheus_binary_.empty()) {
        failure_ = "prometheus is not installed, and scripts/install-deps.sh (exit " +
                   std::to_string(install.exit_code) + ") did not install it:\n" + install.out + install.err;
        return;
      }
    }
    stack_ = new testing::ServiceStack();
    if (!stack_->ready()) {
      failure_ = "the services did not start:\n" + stack_->log();
      return;
    }
    dir_ = new testing::TempDir();
    WriteConfig();
    const int port = testing::FreePort();
    address_ = "127.0.0.1:" + std::to_string(port);
    prometheus_ = new testing::BackgroundProcess(
        prometheus_binary_.string(),
        {"--config.file=" + config_.string(), "--storage.tsdb.path=" + (dir_->path() / "data").string(),
         "--web.listen-address=" + address_});
    const auto ready = [] { return HttpCall(address_, "GET", "/-/ready").status == 200; };
    if (!WaitUntil([&] { return ready() || !prometheus_->Running(); }, seconds(30)) || !ready()) {
      failure_ = "Prometheus did not get ready on " + address_ + ":\n" + prometheus_->Stderr();
      return;
    }
    // The first scrape of each target comes within one scrape interval (5 s), at an offset of its own.
    if (!WaitUntil([] { return JobsUp() == kJobs.size(); }, seconds(40))) {
      failure_ = "not every job got a healthy target: " + Get("/api/v1/targets").dump();
    }
  }

  static void TearDownTestSuite() {
    if (prometheus_ != nullptr && prometheus_->Stop() != 0) {  // SIGTERM: a clean shutdown exits 0
      ADD_FAILURE() << "Prometheus did not stop cleanly:\n" << prometheus_->Stderr();
    }
    delete prometheus_;
    delete stack_;
    delete dir_;
    prometheus_ = nullptr;
    stack_ = nullptr;
    dir_ = nullptr;
  }

  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  // The project's config and rules copied side by side, with target files naming the services here.
  static void WriteConfig() {
    const fs::path source = testing::SourceDir();
    config_ = dir_->path() / "prometheus.yml";
    CopyFile(source / "deploy/prometheus/prometheus.yml", config_);
    CopyFile(source / "helm/tandem/files/alerts.yml", dir_->path() / "alerts.yml");
    fs::create_directories(dir_->path() / "targets");
    const auto write_targets = [&](const std::string& file, const std::string& address) {
      std::ofstream(dir_->path() / "targets" / file) << "- targets: [\"" << address << "\"]\n";
    };
    write_targets("cloud.yml", stack_->tail_address());
    write_targets("edge.yml", stack_->edge_address());
    write_targets("scheduler.yml", stack_->scheduler_address());
  }

  // A GET of Prometheus's HTTP API, parsed; an empty object when it does not answer with one.
  static json Get(const std::string& target) {
    const HttpResult result = HttpCall(address_, "GET", target, "", {}, seconds(10));
    json body = json::parse(result.body, nullptr, /*allow_exceptions=*/false);
    return body.is_object() ? body : json::object();
  }

  static json Query(const std::string& expr) { return Get("/api/v1/query?query=" + UrlEncode(expr)); }

  // The value of an expression with one result; NaN when it has none (or does not evaluate).
  static double Value(const std::string& expr) {
    const json answer = Query(expr);
    if (answer.value("status", "") != "success" || answer["data"]["result"].size() != 1) return NAN;
    return std::stod(answer["data"]["result"][0]["value"][1].get<std::string>());
  }

  // How many of the three jobs have a target Prometheus scraped successfully.
  static size_t JobsUp() {
    const json targets = Get("/api/v1/targets");
    if (!targets.contains("data")) return 0;
    std::set<std::string> up;
    for (const json& target : targets["data"]["activeTargets"]) {
      if (target["health"] == "up") up.insert(target["labels"].value("job", ""));
    }
    size_t jobs = 0;
    for (const std::string& job : kJobs) jobs += up.count(job);
    return jobs;
  }

  // Until Prometheus has scraped the edge after `completions` more completions: the last two scrapes
  // then straddle them, so that rates over kRateInterval see them. False after 20 s.
  static bool CompleteAndAwaitScrape(int completions, int max_tokens) {
    const std::string generated = R"(sum(tandem_edge_tokens_total{direction="out"}))";
    const double before = Value(generated);
    for (int i = 0; i < completions; ++i) {
      if (stack_->Complete(max_tokens, /*stream=*/i % 2 == 1).status != 200) return false;
    }
    return WaitUntil([&] { return Value(generated) >= before + completions * max_tokens; }, seconds(20));
  }

  static fs::path prometheus_binary_;
  static testing::ServiceStack* stack_;
  static testing::TempDir* dir_;
  static fs::path config_;
  static std::string address_;
  static testing::BackgroundProcess* prometheus_;
  static std::string failure_;
};

fs::path PrometheusTest::prometheus_binary_;
testing::ServiceStack* PrometheusTest::stack_ = nullptr;
testing::TempDir* PrometheusTest::dir_ = nullptr;
fs::path PrometheusTest::config_;
std::string PrometheusTest::address_;
testing::BackgroundProcess* PrometheusTest::prometheus_ = nullptr;
std::string PrometheusTest::failure_;

TEST_F(PrometheusTest, PromtoolAcceptsTheConfigAndItsRules) {
  const fs::path promtool = FindTool("promtool");
  ASSERT_FALSE(promtool.empty()) << "promtool (package prometheus) is not installed";
  const testing::CommandResult check =
      testing::RunProgram(promtool.string(), {"check", "config", config_.string()});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_NE((check.out + check.err).find("SUCCESS: 6 rules found"), std::string::npos)
      << check.out << check.err;
}

TEST_F(PrometheusTest, EveryJobIsUpAndItsSeriesMove) {
  // Each job scrapes the address written into its target file, at /metrics.
  const std::map<std::string, std::string> addresses = {{"tandem-cloud", stack_->tail_address()},
                                                        {"tandem-edge", stack_->edge_address()},
                                                        {"tandem-scheduler", stack_->scheduler_address()}};
  json targets = Get("/api/v1/targets");
  ASSERT_EQ(targets["data"]["activeTargets"].size(), kJobs.size()) << targets.dump();
  for (const json& target : targets["data"]["activeTargets"]) {
    const std::string job = target["labels"].value("job", "");
    ASSERT_EQ(addresses.count(job), 1u) << "a job the config should not have: " << target.dump();
    EXPECT_EQ(target["scrapeUrl"], "http://" + addresses.at(job) + "/metrics");
    EXPECT_EQ(target["health"], "up") << target.dump();
  }
  for (const std::string& job : kJobs) {
    EXPECT_EQ(Value("up{job=\"" + job + "\"}"), 1) << job;
  }

  // Completions move the edge's and the tail's token counters, by as many tokens as they generated; the
  // tail heartbeats to the scheduler every second, traffic or not.
  const std::string edge_tokens = R"(sum(tandem_edge_tokens_total{direction="out"}))";
  const std::string tail_tokens = "sum(tandem_cloud_tokens_total)";
  const std::string heartbeats = "sum(tandem_scheduler_heartbeats_total)";
  const double edge_before = Value(edge_tokens), tail_before = Value(tail_tokens);
  const double heartbeats_before = Value(heartbeats);
  ASSERT_FALSE(std::isnan(edge_before) || std::isnan(tail_before) || std::isnan(heartbeats_before));
  ASSERT_TRUE(CompleteAndAwaitScrape(2, 8));
  EXPECT_TRUE(WaitUntil([&] { return Value(tail_tokens) >= tail_before + 16; }, seconds(10)))
      << "tail tokens " << tail_before << " -> " << Value(tail_tokens);
  EXPECT_GE(Value(edge_tokens), edge_before + 16);
  EXPECT_TRUE(WaitUntil([&] { return Value(heartbeats) > heartbeats_before; }, seconds(15)))
      << "heartbeats " << heartbeats_before << " -> " << Value(heartbeats);
}

TEST_F(PrometheusTest, EveryDashboardQueryEvaluates) {
  std::ifstream in(testing::SourceDir() / "helm/tandem/files/tandem-dashboard.json");
  const std::vector<testing::DashboardQuery> queries = testing::DashboardQueries(json::parse(in));
  ASSERT_FALSE(queries.empty());
  ASSERT_EQ(stack_->CompleteBadly().status, 400);
  ASSERT_TRUE(CompleteAndAwaitScrape(2, 8));
  // rate() needs two samples of a series in its window: the series by status that appeared with these
  // requests get their second at the next scrape.
  const auto has_data = [&](const testing::DashboardQuery& query) {
    return !Query(WithGrafanaVariables(query.expr))["data"]["result"].empty();
  };
  WaitUntil(
      [&] {
        return std::all_of(queries.begin(), queries.end(),
                           [&](const auto& query) { return !ReadsCoreMetric(query) || has_data(query); });
      },
      seconds(15));

  std::vector<std::string> empty;
  for (const testing::DashboardQuery& query : queries) {
    const std::string expr = WithGrafanaVariables(query.expr);
    SCOPED_TRACE(query.panel + ": " + expr);
    const json answer = Query(expr);
    ASSERT_EQ(answer.value("status", ""), "success") << answer.dump();
    if (!answer["data"]["result"].empty()) continue;
    empty.push_back(query.panel + ": " + query.expr);
    EXPECT_FALSE(ReadsCoreMetric(query)) << "a core panel has no data";
  }
  std::string listing;
  for (const std::string& query : empty) listing += "\n  " + query;
  std::cout << "[   INFO   ] " << empty.size() << " of " << queries.size()
            << " dashboard queries have no data here:" << listing << std::endl;

  // With the completions inside the rate window the latency quantiles and rates are numbers, not NaN.
  const double ttft_p50 = Value(WithGrafanaVariables(
      "histogram_quantile(0.5, sum by (le) (rate(tandem_edge_ttft_seconds_bucket[$__rate_interval])))"));
  EXPECT_GT(ttft_p50, 0);
  EXPECT_LT(ttft_p50, 10);
  EXPECT_GT(Value(WithGrafanaVariables(
                R"(sum(rate(tandem_edge_tokens_total{direction="out"}[$__rate_interval])))")),
            0);
  EXPECT_EQ(Value("tandem_scheduler_tails_alive"), 1);
  EXPECT_GE(Value("tandem_edge_cut"), 1);
  EXPECT_EQ(Query(R"(up{job=~"tandem-.*"})")["data"]["result"].size(), kJobs.size());
}

TEST_F(PrometheusTest, EveryAlertRuleLoadsAndEvaluatesCleanly) {
  std::ifstream rules_file(dir_->path() / "alerts.yml");
  const std::string rules_text{std::istreambuf_iterator<char>(rules_file), std::istreambuf_iterator<char>()};
  const std::regex alert_line(R"((^|\n)\s*- alert:)");
  const auto declared = std::distance(std::sregex_iterator(rules_text.begin(), rules_text.end(), alert_line),
                                      std::sregex_iterator());
  EXPECT_EQ(declared, 6);

  // Rules start at health "unknown" and report their first evaluation within evaluation_interval (5 s).
  json rules;
  const auto all_evaluated = [&] {
    rules = json::array();
    const json answer = Get("/api/v1/rules");
    if (!answer.contains("data")) return false;
    for (const json& group : answer["data"]["groups"]) {
      for (const json& rule : group["rules"]) rules.push_back(rule);
    }
    return !rules.empty() && std::all_of(rules.begin(), rules.end(), [](const json& rule) {
      return rule.value("health", "") != "unknown";
    });
  };
  ASSERT_TRUE(WaitUntil(all_evaluated, seconds(20))) << rules.dump();
  EXPECT_EQ(static_cast<long>(rules.size()), declared) << rules.dump();
  for (const json& rule : rules) {
    SCOPED_TRACE(rule.value("name", ""));
    EXPECT_EQ(rule["type"], "alerting");
    EXPECT_EQ(rule["health"], "ok") << rule.value("lastError", "");
    // A healthy stack raises no alert.
    EXPECT_EQ(rule["state"], "inactive") << rule.dump();
  }
}

}  // namespace
}  // namespace tandem
