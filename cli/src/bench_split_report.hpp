// What tandem bench-split makes of its measurements, apart from the measuring: per link phase, the
// adaptive plan's steady-state medians against the best static split's, how soon after the change the
// planner switched to its settled plan and first used it, and per plan what drafting did (tokens per
// round trip, acceptance, speed-up against the same split without drafting). Pure but for the CSV and
// summary files, so the figures can be tested with hand-made records.
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
  std::string drafter;  // as the response names it ("none", "ngram", "model:PATH")
  int completion_tokens = 0;
  int drafted_tokens = 0, accepted_tokens = 0;  // drafts sent for verification, and those kept
  int model_steps = 0;                          // passes through the model, the prefill's included
  std::string error;
};

// The edge planner's current choice at each poll, in time order: seconds since the schedule began, and the
// plan ("k=1 int8"; "" when it had none).
using PlanChoices = std::vector<std::pair<double, std::string>>;

// A plan's name as the records spell it: "local" for no cut (or a cut at L), else "k=K CODEC".
std::string PlanName(const nlohmann::json& cut, const nlohmann::json& codec, int layers);
// "down", or "10 Mbit/s 40 ms".
std::string DescribeLink(const netem::LinkConditions& link);

// A drafter as plan names and tables show it: model:PATH by its file name only ("model:stories260K.bin").
std::string DrafterLabel(const std::string& drafter);
// A static plan measured with a drafter: "k=2 fp32 draft=ngram"; `plan` itself with none.
std::string PlanWithDrafter(const std::string& plan, const std::string& drafter);
// The drafter label of a plan named so ("none" without one); "" for the adaptive requests.
std::string DrafterOfPlan(const std::string& mode);

// Medians of a set of answered requests.
struct Medians {
  int count = 0;
  double ttft_ms = 0, token_ms = 0, total_ms = 0;
  double predicted_ttft_ms = 0, predicted_token_ms = 0;  // the planner's, for its first choice
  double tokens_per_second = 0;                          // decode, as the edge measured it
  double tokens_per_step = 0;  // completion tokens / model steps: tokens per round trip of a split
  double drafted_tokens = 0;   // per request: 0 when the draft planner found that drafting does not pay
  double acceptance = -1;      // accepted / drafted over all the requests (not a median); -1: no drafts
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

// A plan's median tokens/s over that of the same split without drafting ("k=2 fp32 draft=ngram" against
// "k=2 fp32"); 0 when that was not measured in the phase, or for the adaptive requests.
double SpeedupVsNoDraft(const PhaseSummary& summary, const std::string& mode);

// summary.json's entry for a phase.
nlohmann::json ToJson(const PhaseSummary& summary);
// The Markdown tables printed on stdout: the phases (a row each), and the plans (a row per plan and phase:
// what drafting did).
std::string PhaseTableHeader();
std::string PhaseTableRow(const PhaseSummary& summary);
std::string PlanTableHeader();
std::string PlanTableRows(const PhaseSummary& summary);

// requests.csv: one row per request.
void WriteRequestsCsv(const std::filesystem::path& path, const std::vector<RequestRecord>& records,
                      const std::vector<netem::LinkPhase>& phases);
// plans.csv: one row per plan and phase, the figures of PlanTableRows (for plotting).
void WritePlansCsv(const std::filesystem::path& path, const std::vector<PhaseSummary>& phases);

}  // namespace tandem::cli
