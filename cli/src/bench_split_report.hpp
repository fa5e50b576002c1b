// What tandem bench-split makes of its measurements, apart from the measuring: per link phase, the
// adaptive plan's steady-state medians against the best static split's, and how soon after the change the
// planner switched to its settled plan and first used it. Pure but for the CSV and summary files, so the
// figures can be tested with hand-made records.
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tandem/netem/link_proxy.hpp"

namespace tandem::cli {

// One completion sent to the edge during the run.
struct RequestRecord {
  double start_s = 0, end_s = 0;  // since the schedule began
  int phase = 0;                  // in force when the request started
  bool straddles = false;         // the link changed while it ran
  std::string mode;               // "adaptive" or the static plan's name
  int status = 0;
  std::string plan;  // the plan the edge used first ("k=1 fp32", "local")
  int final_cut = -1;
  int moves = 0;
  std::vector<std::pair<double, std::string>> move_log;  // seconds after the start, the plan moved to
  double predicted_ttft_ms = 0, predicted_token_ms = 0;
  double ttft_ms = 0, token_ms = 0, total_ms = 0;
  std::string error;
};

// The edge planner's current choice at each poll, in time order: seconds since the schedule began, and the
// plan ("k=1 int8"; "" when it had none).
using PlanChoices = std::vector<std::pair<double, std::string>>;

// A plan's name as the records spell it: "local" for no cut (or a cut at L), else "k=K CODEC".
std::string PlanName(const nlohmann::json& cut, const nlohmann::json& codec, int layers);
// "down", or "10 Mbit/s 40 ms".
std::string DescribeLink(const netem::LinkConditions& link);

// Medians of a set of answered requests.
struct Medians {
  int count = 0;
  double ttft_ms = 0, token_ms = 0, total_ms = 0;
  double predicted_ttft_ms = 0, predicted_token_ms = 0;  // the planner's, for its first choice
};

// One link phase of the schedule, in seconds since it began.
struct PhaseWindow {
  size_t index = 0;
  double start_s = 0, end_s = 0;
  netem::LinkConditions conditions;
};

struct PhaseSummary {
  PhaseWindow window;
  std::string settled;      // the plan most steady adaptive requests used ("" when none)
  double switched_s = -1;   // after the change, when the polled planner first chose it; -1: never
  double first_use_s = -1;  // when a request was planned with it, or a generation moved to it; -1: never
  Medians adaptive;
  int failed = 0;                          // requests of the phase not answered 200
  std::map<std::string, Medians> statics;  // by static plan name
  std::string best_static;                 // lowest median total; "" when none was measured
  double ratio_to_best_static = 0;         // adaptive / best static median total; 0 without a static
};

// Steady state is after the phase's first `lead_s` seconds (or any time while the link is down), not
// straddling a change, and answered.
PhaseSummary SummarizePhase(const PhaseWindow& window, double lead_s,
                            const std::vector<RequestRecord>& records, const PlanChoices& choices);

// summary.json's entry for a phase.
nlohmann::json ToJson(const PhaseSummary& summary);
// The Markdown table printed on stdout: its header, and a phase's row.
std::string PhaseTableHeader();
std::string PhaseTableRow(const PhaseSummary& summary);

// requests.csv: one row per request.
void WriteRequestsCsv(const std::filesystem::path& path, const std::vector<RequestRecord>& records,
                      const std::vector<netem::LinkPhase>& phases);

}  // namespace tandem::cli
