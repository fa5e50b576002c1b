#include "promql_names.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "tandem/base/strings.hpp"

namespace tandem::testing {
namespace {

bool IsIdentifierStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || c == ':';
}
bool IsIdentifierChar(char c) {
  return IsIdentifierStart(c) || std::isdigit(static_cast<unsigned char>(c));
}

// The index just past the string literal opening at `at`: "..." and '...' with backslash escapes, `...` raw.
size_t SkipString(const std::string& text, size_t at) {
  const char quote = text[at];
  size_t i = at + 1;
  while (i < text.size() && text[i] != quote) i += (text[i] == '\\' && quote != '`') ? 2 : 1;
  return std::min(i + 1, text.size());
}

// The index just past the bracket closing the one at `at` ({...}, [...], (...)), strings inside skipped:
// a label value may hold any bracket.
size_t SkipBalanced(const std::string& text, size_t at) {
  const char open = text[at];
  const char close = open == '{' ? '}' : open == '[' ? ']' : ')';
  int depth = 0;
  for (size_t i = at; i < text.size();) {
    const char c = text[i];
    if (c == '"' || c == '\'' || c == '`') {
      i = SkipString(text, i);
      continue;
    }
    if (c == open) ++depth;
    if (c == close && --depth == 0) return i + 1;
    ++i;
  }
  return text.size();
}

size_t SkipSpaces(const std::string& text, size_t at) {
  while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  return at;
}

// Clauses whose parenthesised list names labels, not series.
const std::set<std::string> kLabelListClauses = {"by",       "without",    "on",
                                                 "ignoring", "group_left", "group_right"};
// Keywords and word operators; PromQL reads them in any case. inf and nan are numbers.
const std::set<std::string> kKeywords = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"};
// What Prometheus records for every target it scrapes.
const std::set<std::string> kScrapeSeries = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                                             "scrape_samples_post_metric_relabeling", "scrape_series_added"};

// Whether `by (...)` or `without (...)` and then "(" start at `at`: the word before is an aggregation
// written with its clause first (`sum by (le) (rate(...))`).
bool AggregationClauseFollows(const std::string& text, size_t at) {
  size_t end = at;
  while (end < text.size() && IsIdentifierChar(text[end])) ++end;
  const std::string word = AsciiLower(text.substr(at, end - at));
  if (word != "by" && word != "without") return false;
  const size_t list = SkipSpaces(text, end);
  if (list >= text.size() || text[list] != '(') return false;
  const size_t after = SkipSpaces(text, SkipBalanced(text, list));
  return after < text.size() && text[after] == '(';
}

void CollectQueries(const nlohmann::json& panels, std::vector<DashboardQuery>& queries) {
  if (!panels.is_array()) return;
  for (const nlohmann::json& panel : panels) {
    const std::string title = panel.value("title", "");
    if (panel.contains("targets") && panel["targets"].is_array()) {
      for (const nlohmann::json& target : panel["targets"]) {
        if (target.contains("expr") && target["expr"].is_string()) queries.push_back({title, target["expr"]});
      }
    }
    if (panel.contains("panels")) CollectQueries(panel["panels"], queries);  // a collapsed row's panels
  }
}

}  // namespace

std::set<std::string> PromqlMetricNames(const std::string& expression) {
  std::set<std::string> names;
  const std::string& text = expression;
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (c == '"' || c == '\'' || c == '`') {
      i = SkipString(text, i);
    } else if (c == '{' || c == '[') {
      i = SkipBalanced(text, i);
    } else if (c == '#') {
      i = std::min(text.find('\n', i), text.size());
    } else if (c == '$') {  // a Grafana variable: $name or ${name:format}
      ++i;
      if (i < text.size() && text[i] == '{') {
        i = SkipBalanced(text, i);
      } else {
        while (i < text.size() && IsIdentifierChar(text[i])) ++i;
      }
    } else if (std::isdigit(static_cast<unsigned char>(c)) ||
               (c == '.' && i + 1 < text.size() && std::isdigit(static_cast<unsigned char>(text[i + 1])))) {
      // A number (1e3, 0x1f, .5) or a duration (5m, 1h30m): none of it is a name.
      while (i < text.size() &&
             (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '.' || text[i] == '_')) {
        ++i;
      }
    } else if (IsIdentifierStart(c)) {
      const size_t begin = i;
      while (i < text.size() && IsIdentifierChar(text[i])) ++i;
      const std::string word = text.substr(begin, i - begin);
      const size_t next = SkipSpaces(text, i);
      const bool call = next < text.size() && (text[next] == '(' || AggregationClauseFollows(text, next));
      const std::string lower = AsciiLower(word);
      if (kLabelListClauses.count(lower) != 0) {
        if (call) i = SkipBalanced(text, next);
      } else if (!call && kKeywords.count(lower) == 0) {
        names.insert(word);
      }
    } else {
      ++i;
    }
  }
  return names;
}

std::set<std::string> ExportedMetricNames(const std::string& exposition) {
  std::set<std::string> names;
  std::istringstream lines(exposition);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      std::istringstream fields(line.substr(7));
      std::string name, type;
      fields >> name >> type;
      if (type == "histogram") {
        names.insert({name + "_bucket", name + "_sum", name + "_count"});
      } else if (type == "summary") {
        names.insert({name, name + "_sum", name + "_count"});
      } else {
        names.insert(name);
      }
      continue;
    }
    if (line.empty() || line[0] == '#') continue;
    const size_t end = line.find_first_of("{ ");
    names.insert(line.substr(0, end));
  }
  return names;
}

std::vector<DashboardQuery> DashboardQueries(const nlohmann::json& dashboard) {
  std::vector<DashboardQuery> queries;
  if (dashboard.contains("panels")) CollectQueries(dashboard["panels"], queries);
  return queries;
}

std::map<std::string, std::set<std::string>> MissingMetricNames(const std::vector<DashboardQuery>& queries,
                                                                const std::set<std::string>& exported) {
  std::map<std::string, std::set<std::string>> missing;
  for (const DashboardQuery& query : queries) {
    for (const std::string& name : PromqlMetricNames(query.expr)) {
      if (exported.count(name) == 0 && kScrapeSeries.count(name) == 0) missing[name].insert(query.panel);
    }
  }
  return missing;
}

std::string DescribeMissing(const std::map<std::string, std::set<std::string>>& missing) {
  std::string text;
  for (const auto& [name, panels] : missing) {
    if (!text.empty()) text += "; ";
    text += name + " (";
    for (auto panel = panels.begin(); panel != panels.end(); ++panel) {
      text += (panel == panels.begin() ? "\"" : ", \"") + *panel + "\"";
    }
    text += ")";
  }
  return text;
}

}  // namespace tandem::testing
