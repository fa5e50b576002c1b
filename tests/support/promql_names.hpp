// Metric names on both sides of monitoring: those PromQL expressions (a Grafana dashboard's queries, alert
// rules) read, and those the services export in Prometheus text. A dashboard naming a metric no service
// exports shows "No data" forever, so the tests compare the two. Written by hand: no Debian package offers
// a PromQL parser to C++ (promtool checks expressions but does not list their names), and a lexer that
// drops strings, label matchers, clauses and function names is all that comparing names needs; the
// real-Prometheus test then evaluates every query.
#pragma once

#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <string>
#include <vector>

namespace tandem::testing {

// The metric names an expression reads: what is left once string literals, label matchers {...}, range and
// subquery brackets [...], grouping and matching clauses (by, without, on, ignoring, group_left,
// group_right with their label lists), function names (identifiers followed by "("), keywords and binary
// operators (and, or, unless, bool, offset, atan2), numbers and durations, comments and Grafana variables
// ($__rate_interval, ${name}) are taken out. Selectors by {__name__="..."} alone are not seen.
std::set<std::string> PromqlMetricNames(const std::string& expression);

// The metric names a service exports in the Prometheus text format: each sample's name, and each `# TYPE`
// family with the series it stands for (X_bucket, X_sum and X_count for a histogram X; X, X_sum and
// X_count for a summary).
std::set<std::string> ExportedMetricNames(const std::string& exposition);

// One query of a dashboard: the expression of a panel's target, with the panel's title.
struct DashboardQuery {
  std::string panel;
  std::string expr;
};

// Every target's `expr` in a Grafana dashboard, in panel order, the panels nested in rows included.
std::vector<DashboardQuery> DashboardQueries(const nlohmann::json& dashboard);

// The metric names `queries` read that are not in `exported`, each with the titles of the panels reading
// it; empty when every name is exported. Series Prometheus adds itself to every target (`up`, `scrape_*`)
// are not looked for.
std::map<std::string, std::set<std::string>> MissingMetricNames(const std::vector<DashboardQuery>& queries,
                                                                const std::set<std::string>& exported);

// "name (panel, panel); name (panel)": a failure message for MissingMetricNames.
std::string DescribeMissing(const std::map<std::string, std::set<std::string>>& missing);

}  // namespace tandem::testing
