#include "bench_split_report.hpp"

#include <algorithm>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <fstream>
#include <string_view>

#include "cli_support.hpp"

namespace tandem::cli {
namespace {

using nlohmann::json;

// printf into a string, whatever its length.
[[gnu::format(printf, 1, 2)]] std::string Printf(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int length = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string text(static_cast<size_t>(std::max(length, 0)) + 1, '\0');
  std::vsnprintf(text.data(), text.size(), format, again);
  va_end(again);
  text.pop_back();
  return text;
}

// "1.27 s", or "-" for a negative (never).
std::string SecondsOrNever(double seconds) {
  return seconds < 0 ? "-" : FixedPoint(seconds, 2) + " s";
}

Medians MediansOf(const std::vector<const RequestRecord*>& records) {
  std::vector<double> ttft, token, total, predicted_ttft, predicted_token, tokens_per_second, tokens_per_step,
      drafted_tokens;
  int drafted = 0, accepted = 0;
  for (const RequestRecord* record : records) {
    ttft.push_back(record->ttft_ms);
    token.push_back(record->token_ms);
    total.push_back(record->total_ms);
    predicted_ttft.push_back(record->predicted_ttft_ms);
    predicted_token.push_back(record->predicted_token_ms);
    if (record->token_ms > 0) tokens_per_second.push_back(1000 / record->token_ms);
    if (record->model_steps > 0) {
      tokens_per_step.push_back(static_cast<double>(record->completion_tokens) / record->model_steps);
    }
    drafted_tokens.push_back(record->drafted_tokens);
    drafted += record->drafted_tokens;
    accepted += record->accepted_tokens;
  }
  return {.count = static_cast<int>(records.size()),
          .ttft_ms = Median(ttft),
          .token_ms = Median(token),
          .total_ms = Median(total),
          .predicted_ttft_ms = Median(predicted_ttft),
          .predicted_token_ms = Median(predicted_token),
          .tokens_per_second = Median(tokens_per_second),
          .tokens_per_step = Median(tokens_per_step),
          .drafted_tokens = Median(drafted_tokens),
          .acceptance = drafted > 0 ? static_cast<double>(accepted) / drafted : -1};
}

// The phase's steady requests by mode ("adaptive" or a static plan), counting the failed ones.
std::map<std::string, std::vector<const RequestRecord*>> SteadyRequests(
    const PhaseWindow& window, double lead_s, const std::vector<RequestRecord>& records, int& failed) {
  std::map<std::string, std::vector<const RequestRecord*>> steady;
  for (const RequestRecord& r : records) {
    if (r.phase != static_cast<int>(window.index)) continue;
    if (r.status != 200) {
      ++failed;
      continue;
    }
    if (!r.straddles && (r.start_s >= window.start_s + lead_s || !window.conditions.up)) {
      steady[r.mode].push_back(&r);
    }
  }
  return steady;
}

// The plan most of `adaptive` used; of equal counts, the first by name.
std::string MostUsedPlan(const std::vector<const RequestRecord*>& adaptive) {
  std::map<std::string, int> plan_counts;
  for (const RequestRecord* r : adaptive) ++plan_counts[r->plan];
  std::string settled;
  for (const auto& [plan, count] : plan_counts) {
    if (settled.empty() || count > plan_counts[settled]) settled = plan;
  }
  return settled;
}

// When, after the change, the edge's planner first chose `settled` (its current choice, polled).
double SwitchedAfter(const PhaseWindow& window, const PlanChoices& choices, const std::string& settled) {
  for (const auto& [at, choice] : choices) {
    if (at >= window.start_s && at < window.end_s && choice == settled) return at - window.start_s;
  }
  return -1;
}

// When it first acted on `settled`: a request planned with it, or a generation moved to it (including
// requests that began before the change).
double FirstUseAfter(const PhaseWindow& window, const std::vector<RequestRecord>& records,
                     const std::string& settled) {
  const double phase_start = window.start_s;
  double first_use_s = -1;
  const auto acted = [&](double at) {
    if (at >= phase_start && (first_use_s < 0 || at - phase_start < first_use_s))
      first_use_s = at - phase_start;
  };
  for (const RequestRecord& r : records) {
    if (r.mode != "adaptive" || r.status != 200 || r.end_s < phase_start) continue;
    if (r.phase == static_cast<int>(window.index) && r.plan == settled) acted(r.start_s);
    for (const auto& [at, to] : r.move_log) {
      if (!settled.empty() && to.starts_with(settled)) acted(r.start_s + at);
    }
  }
  return first_use_s;
}

// null for the figures a plan does not have (no drafts: no acceptance).
json FigureOrNull(double value, bool has) {
  return has ? json(value) : json(nullptr);
}

json ToJson(const Medians& m) {
  return {{"count", m.count},
          {"ttft_ms", m.ttft_ms},
          {"token_ms", m.token_ms},
          {"total_ms", m.total_ms},
          {"tokens_per_second", m.tokens_per_second},
          {"tokens_per_step", m.tokens_per_step},
          {"drafted_tokens", m.drafted_tokens},
          {"acceptance", FigureOrNull(m.acceptance, m.acceptance >= 0)}};
}

constexpr std::string_view kDraftInfix = " draft=";

// A row of the plan table; speedup 0: "-".
std::string PlanRow(const PhaseSummary& summary, const std::string& mode, const Medians& m, double speedup) {
  return Printf("| %zu | %s | %s | %d | %.1f | %.2f | %.0f | %s | %s | %.1f |\n", summary.window.index,
                DescribeLink(summary.window.conditions).c_str(), mode.c_str(), m.count, m.tokens_per_second,
                m.tokens_per_step, m.drafted_tokens,
                m.acceptance < 0 ? "-" : FixedPoint(m.acceptance, 2).c_str(),
                speedup > 0 ? (FixedPoint(speedup, 2) + "x").c_str() : "-", m.total_ms);
}

}  // namespace

std::string PlanName(const json& cut, const json& codec, int layers) {
  if (!cut.is_number() || cut.get<int>() >= layers) return "local";
  return "k=" + std::to_string(cut.get<int>()) + " " + codec.get<std::string>();
}

std::string DescribeLink(const netem::LinkConditions& link) {
  if (!link.up) return "down";
  return Printf("%.3g Mbit/s %.0f ms", static_cast<double>(link.rate_bps) / 1e6,
                std::chrono::duration<double, std::milli>(link.rtt).count());
}

std::string DrafterLabel(const std::string& drafter) {
  constexpr std::string_view kModel = "model:";
  if (!drafter.starts_with(kModel)) return drafter;
  return std::string(kModel) + std::filesystem::path(drafter.substr(kModel.size())).filename().string();
}

std::string PlanWithDrafter(const std::string& plan, const std::string& drafter) {
  if (drafter.empty() || drafter == "none") return plan;
  return plan + std::string(kDraftInfix) + DrafterLabel(drafter);
}

std::string DrafterOfPlan(const std::string& mode) {
  if (mode == "adaptive") return "";
  const size_t infix = mode.find(kDraftInfix);
  return infix == std::string::npos ? "none" : mode.substr(infix + kDraftInfix.size());
}

PhaseSummary SummarizePhase(const PhaseWindow& window, double lead_s,
                            const std::vector<RequestRecord>& records, const PlanChoices& choices) {
  PhaseSummary summary{.window = window};
  std::map<std::string, std::vector<const RequestRecord*>> steady =
      SteadyRequests(window, lead_s, records, summary.failed);
  summary.settled = MostUsedPlan(steady["adaptive"]);
  summary.switched_s = SwitchedAfter(window, choices, summary.settled);
  summary.first_use_s = FirstUseAfter(window, records, summary.settled);
  summary.adaptive = MediansOf(steady["adaptive"]);
  for (const auto& [mode, list] : steady) {
    if (mode == "adaptive") continue;
    const Medians m = MediansOf(list);
    summary.statics[mode] = m;
    if (summary.best_static.empty() || m.total_ms < summary.statics[summary.best_static].total_ms) {
      summary.best_static = mode;
    }
  }
  const double best_total_ms =
      summary.best_static.empty() ? 0 : summary.statics[summary.best_static].total_ms;
  summary.ratio_to_best_static = best_total_ms > 0 ? summary.adaptive.total_ms / best_total_ms : 0;
  return summary;
}

double SpeedupVsNoDraft(const PhaseSummary& summary, const std::string& mode) {
  const size_t infix = mode.find(kDraftInfix);
  if (infix == std::string::npos) return 0;
  const auto with = summary.statics.find(mode);
  const auto without = summary.statics.find(mode.substr(0, infix));
  if (with == summary.statics.end() || without == summary.statics.end()) return 0;
  const double base = without->second.tokens_per_second;
  return base > 0 ? with->second.tokens_per_second / base : 0;
}

json ToJson(const PhaseSummary& summary) {
  const Medians& mine = summary.adaptive;
  json adaptive = ToJson(mine);
  adaptive["predicted_ttft_ms"] = mine.predicted_ttft_ms;
  adaptive["predicted_token_ms"] = mine.predicted_token_ms;
  json statics = json::object();
  for (const auto& [mode, medians] : summary.statics) {
    statics[mode] = ToJson(medians);
    const double speedup = SpeedupVsNoDraft(summary, mode);
    statics[mode]["speedup_vs_no_draft"] = FigureOrNull(speedup, speedup > 0);
  }
  return {{"phase", summary.window.index},      {"link", DescribeLink(summary.window.conditions)},
          {"adaptive_plan", summary.settled},   {"planner_switched_s", summary.switched_s},
          {"first_use_s", summary.first_use_s}, {"adaptive", std::move(adaptive)},
          {"failed", summary.failed},           {"static", std::move(statics)},
          {"best_static", summary.best_static}, {"ratio_to_best_static", summary.ratio_to_best_static}};
}

std::string PhaseTableHeader() {
  return "| phase | link | adaptive plan | planner switched / first used after | adaptive TTFT / token / "
         "total ms (predicted TTFT / token) | best static: total ms | adaptive / best |\n"
         "|---|---|---|---|---|---|---|\n";
}

std::string PhaseTableRow(const PhaseSummary& summary) {
  const Medians& mine = summary.adaptive;
  const std::string& best = summary.best_static;
  const std::string best_total =
      best.empty() ? "-" : best + ": " + std::to_string(summary.statics.at(best).total_ms).substr(0, 6);
  const std::string ratio = best.empty() ? "-" : std::to_string(summary.ratio_to_best_static).substr(0, 4);
  return Printf("| %zu | %s | %s (%d req, %d failed) | %s | %.1f / %.2f / %.1f (%.1f / %.2f) | %s | %s |\n",
                summary.window.index, DescribeLink(summary.window.conditions).c_str(),
                summary.settled.c_str(), mine.count, summary.failed,
                (SecondsOrNever(summary.switched_s) + " / " + SecondsOrNever(summary.first_use_s)).c_str(),
                mine.ttft_ms, mine.token_ms, mine.total_ms, mine.predicted_ttft_ms, mine.predicted_token_ms,
                best_total.c_str(), ratio.c_str());
}

std::string PlanTableHeader() {
  return "| phase | link | plan | requests | tokens/s | tokens / round trip | drafts / request | acceptance "
         "| "
         "tokens/s vs no draft | total ms |\n"
         "|---|---|---|---|---|---|---|---|---|---|\n";
}

std::string PlanTableRows(const PhaseSummary& summary) {
  std::string rows;
  if (summary.adaptive.count > 0) rows += PlanRow(summary, "adaptive", summary.adaptive, 0);
  for (const auto& [mode, medians] : summary.statics) {
    rows += PlanRow(summary, mode, medians, SpeedupVsNoDraft(summary, mode));
  }
  return rows;
}

void WriteRequestsCsv(const std::filesystem::path& path, const std::vector<RequestRecord>& records,
                      const std::vector<netem::LinkPhase>& phases) {
  std::ofstream out(path);
  out << "start_s,end_s,phase,link,mode,status,plan,final_cut,moves,predicted_ttft_ms,predicted_token_ms,"
         "ttft_ms,token_ms,total_ms,straddles,drafter,completion_tokens,drafted_tokens,accepted_tokens,"
         "model_steps,error\n";
  for (const RequestRecord& r : records) {
    std::string error = r.error;
    std::replace(error.begin(), error.end(), ',', ';');
    std::replace(error.begin(), error.end(), '\n', ' ');
    out << r.start_s << ',' << r.end_s << ',' << r.phase << ',' << DescribeLink(phases[r.phase].conditions)
        << ',' << r.mode << ',' << r.status << ',' << r.plan << ',' << r.final_cut << ',' << r.moves << ','
        << r.predicted_ttft_ms << ',' << r.predicted_token_ms << ',' << r.ttft_ms << ',' << r.token_ms << ','
        << r.total_ms << ',' << (r.straddles ? 1 : 0) << ',' << DrafterLabel(r.drafter) << ','
        << r.completion_tokens << ',' << r.drafted_tokens << ',' << r.accepted_tokens << ',' << r.model_steps
        << ',' << error << '\n';
  }
}

void WritePlansCsv(const std::filesystem::path& path, const std::vector<PhaseSummary>& phases) {
  std::ofstream out(path);
  out << "phase,link,rtt_ms,rate_mbit_s,plan,drafter,requests,tokens_per_second,tokens_per_step,"
         "drafted_tokens,acceptance,speedup_vs_no_draft,ttft_ms,total_ms\n";
  for (const PhaseSummary& phase : phases) {
    const netem::LinkConditions& link = phase.window.conditions;
    const auto row = [&](const std::string& mode, const Medians& m, double speedup) {
      out << phase.window.index << ',' << DescribeLink(link) << ','
          << std::chrono::duration<double, std::milli>(link.rtt).count() << ','
          << static_cast<double>(link.rate_bps) / 1e6 << ',' << mode << ',' << DrafterOfPlan(mode) << ','
          << m.count << ',' << m.tokens_per_second << ',' << m.tokens_per_step << ',' << m.drafted_tokens
          << ',' << m.acceptance << ',' << speedup << ',' << m.ttft_ms << ',' << m.total_ms << '\n';
    };
    if (phase.adaptive.count > 0) row("adaptive", phase.adaptive, 0);
    for (const auto& [mode, medians] : phase.statics) row(mode, medians, SpeedupVsNoDraft(phase, mode));
  }
}

}  // namespace tandem::cli
