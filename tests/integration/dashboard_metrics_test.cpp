// The Grafana dashboard (helm/tandem/files/tandem-dashboard.json) against the services it watches: it
// parses, every query panel reads the ${datasource} variable, the panels operators rely on are there, and
// every metric name its queries read is exported by a live tandem-scheduler, tandem-cloud or tandem-edge
// that served a plain, a streamed and a refused completion. A name no service exports is a panel that says
// "No data" forever: a typo, a renamed metric, or a series the service never creates. The PromQL name
// extraction is checked on its own, and the check must catch a metric renamed in a copy of the dashboard.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "promql_names.hpp"
#include "service_stack.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using testing::DashboardQueries;
using testing::DashboardQuery;
using testing::MissingMetricNames;
using testing::PromqlMetricNames;
using Names = std::set<std::string>;

std::filesystem::path DashboardFile() {
  return testing::SourceDir() / "helm/tandem/files/tandem-dashboard.json";
}

// The dashboard, or null when it does not parse (a test failure says why).
json LoadDashboard() {
  std::ifstream in(DashboardFile());
  EXPECT_TRUE(in.is_open()) << "cannot read " << DashboardFile();
  try {
    return json::parse(in);
  } catch (const json::parse_error& error) {
    ADD_FAILURE() << DashboardFile() << " is not JSON: " << error.what();
    return nullptr;
  }
}

// Calls `visit` on every panel, those nested in rows included (`Json`: json or const json).
template <typename Json, typename Visit>
void ForEachPanel(Json& panels, const Visit& visit) {
  if (!panels.is_array()) return;
  for (auto& panel : panels) {
    visit(panel);
    if (panel.contains("panels")) ForEachPanel(panel["panels"], visit);
  }
}

std::string Join(const Names& names) {
  std::string text;
  for (const std::string& name : names) text += (text.empty() ? "" : ", ") + name;
  return text;
}

TEST(PromqlMetricNamesTest, LeavesOnlyTheMetricNames) {
  struct Case {
    std::string expr;
    Names names;
  };
  const std::vector<Case> cases = {
      {R"(sum by (le) (rate(tandem_x_bucket{a="b{c}"}[$__rate_interval])) / scalar(sum(up)))",
       {"tandem_x_bucket", "up"}},
      {"tandem_edge_cut", {"tandem_edge_cut"}},
      {R"(up{job=~"tandem-.*"} == 0)", {"up"}},
      // Clauses name labels, before or after the aggregation's argument, in any case.
      {"sum(rate(a_total[5m])) without (instance, job) / on(job) group_left(version) b_info",
       {"a_total", "b_info"}},
      {"a / ignoring (code) group_right b", {"a", "b"}},
      {"sum(a) BY (le)", {"a"}},
      {"topk by (job) (3, a) + count without(instance)(b)", {"a", "b"}},
      // Keywords, word operators, numbers, durations and modifiers.
      {"a and b or c unless d", {"a", "b", "c", "d"}},
      {"a > bool 0.5 * 1e3 + 0x1f - .5 + Inf + NaN", {"a"}},
      {"a offset 1h30m atan2 b @ start()", {"a", "b"}},
      {"max_over_time(deriv(a[10m:30s])[1h:])", {"a"}},
      // Strings hold no names, whatever they contain; recording rules' names have colons.
      {R"promql(label_replace(job:tandem_tokens:rate5m, "dst", "$1 up", "src", "(.*)"))promql",
       {"job:tandem_tokens:rate5m"}},
      {R"(count_values('value', a{b!~'x\'y'}))", {"a"}},
      {"topk(3, a)", {"a"}},
      // Grafana variables in every form, and a comment.
      {"increase(a[$__range]) / ${divisor} * $scale  # rate of b", {"a"}},
      {"vector(1)", {}},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(PromqlMetricNames(c.expr), c.names) << c.expr;
  }
}

TEST(PromqlMetricNamesTest, ExportedNamesComeFromSamplesAndTypeLines) {
  const std::string exposition =
      "# HELP tandem_a_total A counter\n"
      "# TYPE tandem_a_total counter\n"
      "tandem_a_total{route=\"/v1/completions\",status=\"200\"} 3\n"
      "# TYPE tandem_b_seconds histogram\n"
      "# TYPE tandem_c summary\n"
      "# TYPE tandem_d gauge\n"
      "tandem_e 1.5e-3\n";
  EXPECT_EQ(
      testing::ExportedMetricNames(exposition),
      (Names{"tandem_a_total", "tandem_b_seconds_bucket", "tandem_b_seconds_sum", "tandem_b_seconds_count",
             "tandem_c", "tandem_c_sum", "tandem_c_count", "tandem_d", "tandem_e"}));
}

TEST(DashboardTest, ParsesAndEveryQueryUsesTheDatasourceVariable) {
  ASSERT_FALSE(testing::SourceDir().empty()) << "TANDEM_SOURCE_DIR is not set";
  const json dashboard = LoadDashboard();
  ASSERT_TRUE(dashboard.is_object());

  bool variable_found = false;
  for (const json& variable : dashboard["templating"]["list"]) {
    if (variable.value("name", "") != "datasource") continue;
    variable_found = true;
    EXPECT_EQ(variable.value("type", ""), "datasource") << variable.dump();
    EXPECT_EQ(variable.value("query", ""), "prometheus") << variable.dump();
  }
  EXPECT_TRUE(variable_found) << "templating.list has no variable named datasource";

  const json expected = {{"type", "prometheus"}, {"uid", "${datasource}"}};
  int query_panels = 0;
  ForEachPanel(dashboard["panels"], [&](const json& panel) {
    if (!panel.contains("targets")) return;
    ++query_panels;
    const std::string title = panel.value("title", "(untitled)");
    EXPECT_EQ(panel.value("datasource", json()), expected) << "panel \"" << title << "\"";
    ASSERT_FALSE(panel["targets"].empty()) << "panel \"" << title << "\" has no query";
    for (const json& target : panel["targets"]) {
      EXPECT_FALSE(target.value("expr", "").empty()) << "panel \"" << title << "\": " << target.dump();
      // A target may name its own data source; it must then be the same variable.
      if (target.contains("datasource")) {
        EXPECT_EQ(target["datasource"], expected) << "panel \"" << title << "\"";
      }
    }
  });
  EXPECT_GT(query_panels, 0);
}

TEST(DashboardTest, HasThePanelsOperatorsRelyOn) {
  const json dashboard = LoadDashboard();
  ASSERT_TRUE(dashboard.is_object());
  const std::vector<DashboardQuery> queries = DashboardQueries(dashboard);
  // A query reads metric X when it names X, or one of X's series (a histogram's X_bucket).
  const auto reads = [](const DashboardQuery& query, const std::string& metric) {
    for (const std::string& name : PromqlMetricNames(query.expr)) {
      if (name == metric || name.rfind(metric + "_", 0) == 0) return true;
    }
    return false;
  };
  for (const std::string metric :
       {"tandem_edge_ttft_seconds", "tandem_edge_inter_token_seconds", "tandem_edge_tokens_total",
        "tandem_edge_cut", "tandem_edge_wire_bytes_total", "tandem_edge_rtt_seconds",
        "tandem_edge_bandwidth_bytes_per_second", "tandem_cloud_queue_depth", "tandem_cloud_kv_cache_bytes",
        "tandem_edge_requests_total"}) {
    EXPECT_TRUE(std::any_of(queries.begin(), queries.end(), [&](const auto& q) { return reads(q, metric); }))
        << "no panel reads " << metric;
  }
  // The error rate: completions that were not 200, per status.
  const std::regex by_status(R"(by\s*\(\s*status\s*\))");
  const std::regex not_ok(R"(status\s*(!=|=~|!~)\s*")");
  EXPECT_TRUE(std::any_of(queries.begin(), queries.end(), [&](const DashboardQuery& q) {
    return reads(q, "tandem_edge_requests_total") && std::regex_search(q.expr, by_status) &&
           std::regex_search(q.expr, not_ok);
  })) << "no panel shows the completions' error rate by status";
}

// One stack for the tests below: it starts, serves a plain, a streamed and a refused completion (so that
// the series labelled by status and direction exist), and the names the three then export are kept.
class DashboardMetricsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    stack_ = new testing::ServiceStack();
    if (!stack_->ready()) {
      failure_ = "the services did not start:\n" + stack_->log();
      return;
    }
    const testing::HttpResult plain = stack_->Complete(8, /*stream=*/false);
    const testing::HttpResult streamed = stack_->Complete(8, /*stream=*/true);
    const testing::HttpResult refused = stack_->CompleteBadly();
    if (plain.status != 200 || streamed.status != 200 || refused.status != 400) {
      failure_ = "completions answered " + std::to_string(plain.status) + ", " +
                 std::to_string(streamed.status) + " and " + std::to_string(refused.status) +
                 " (expected 200, 200, 400): " + plain.body + streamed.body + refused.body + "\n" +
                 stack_->log();
      return;
    }
    exported_ = stack_->ExportedNames();
    if (exported_.empty()) failure_ = "a service did not answer GET /metrics:\n" + stack_->log();
  }
  static void TearDownTestSuite() {
    delete stack_;
    stack_ = nullptr;
  }
  void SetUp() override {
    if (stack_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(failure_.empty()) << failure_;
  }

  static testing::ServiceStack* stack_;
  static std::string failure_;
  static Names exported_;
};

testing::ServiceStack* DashboardMetricsTest::stack_ = nullptr;
std::string DashboardMetricsTest::failure_;
Names DashboardMetricsTest::exported_;

TEST_F(DashboardMetricsTest, EveryMetricTheDashboardReadsIsExported) {
  const json dashboard = LoadDashboard();
  ASSERT_TRUE(dashboard.is_object());
  const auto missing = MissingMetricNames(DashboardQueries(dashboard), exported_);
  EXPECT_TRUE(missing.empty()) << "the dashboard reads metrics no live service exports: "
                               << testing::DescribeMissing(missing) << "\nexported: " << Join(exported_);
}

// The check itself: a copy of the dashboard with one query's metric misspelt is reported for exactly that
// name (beyond what the dashboard as committed already reports), with the panel reading it.
TEST_F(DashboardMetricsTest, AMisspeltMetricIsReported) {
  const json dashboard = LoadDashboard();
  ASSERT_TRUE(dashboard.is_object());
  const std::string right = "tandem_edge_ttft_seconds_bucket", wrong = "tandem_edge_ttft_secondz_bucket";
  json broken = dashboard;
  std::string panel;  // the title of the panel whose query was spoilt
  ForEachPanel(broken["panels"], [&](json& visited) {
    if (!panel.empty() || !visited.contains("targets")) return;
    for (json& target : visited["targets"]) {
      std::string expr = target.value("expr", "");
      if (const size_t at = expr.find(right); at != std::string::npos) {
        target["expr"] = expr.replace(at, right.size(), wrong);
        panel = visited.value("title", "");
        return;
      }
    }
  });
  ASSERT_FALSE(panel.empty()) << "no query reads " << right;

  auto expected = MissingMetricNames(DashboardQueries(dashboard), exported_);
  ASSERT_EQ(expected.count(wrong), 0u);
  expected[wrong] = {panel};
  const auto reported = MissingMetricNames(DashboardQueries(broken), exported_);
  EXPECT_EQ(reported, expected) << testing::DescribeMissing(reported);
}

}  // namespace
}  // namespace tandem
