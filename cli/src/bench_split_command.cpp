// tandem bench-split: the adaptive planner against every static split, on an emulated link.
//
// Puts the link emulator (netem::LinkProxy) between a running tandem-edge and its tail, plays a schedule of
// link conditions, and sends completions to the edge all along: adaptive ones (the planner's choice) and
// static ones (each split of --static, forced through the request's "tandem" field: the oracle; with
// --draft, each once per drafter). Requests go one at a time, so that they never compete for the machine.
// Writes requests.csv (one row per request), estimates.csv (the edge's link estimates and plan, every
// 100 ms), summary.json and plans.csv (per phase and plan, what drafting did), and prints per phase the
// re-plan delay and the adaptive plan's median latency against the best static plan's, then per plan its
// tokens/s, tokens per round trip and acceptance.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <span>
#include <thread>

#include "bench_split_report.hpp"
#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/netem/link_proxy.hpp"
#include "tandem/scheduler/draft_planner.hpp"
#include "tandem/services/http_client.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
constexpr const char* kCommand = "bench-split";

struct BenchSplitFlags {
  std::string edge = "127.0.0.1:8080";
  std::string link_listen;
  std::string link_target;
  std::string schedule = "60s:100mbit:5ms,60s:10mbit:40ms,80s:1mbit:150ms,20s:down,50s:100mbit:5ms";
  std::string statics = "all";
  std::string prompt = "Once upon a time, there was a little girl who loved to play in the park";
  std::string prompts_file;  // JSONL with "prompt" fields, instead of --prompt
  std::string drafters;      // measure each static plan with each of these; "": the edge's default
  std::string draft_tokens;  // "auto" or N on every request; "": the edge's
  int max_tokens = 16;
  int lead_s = 6;
  int timeout_s = 30;
  std::string out = "bench-split-out";
};

// A split forced on a request: {"split": K | "local", "codec": C, "draft": D}; null: the planner decides.
struct Plan {
  std::string name;  // "adaptive", "k=1 fp32", "local", "k=2 fp32 draft=ngram"
  json forced;
};

// Every plan once per drafter of `drafters` (none: all as they are); each forces its drafter.
std::vector<Plan> WithDrafters(const std::vector<Plan>& plans, const std::string& drafters) {
  if (drafters.empty()) return plans;
  std::vector<Plan> drafted;
  for (const Plan& plan : plans) {
    for (const std::string_view drafter : ListItems(drafters)) {
      Plan with{PlanWithDrafter(plan.name, std::string(drafter)), plan.forced};
      with.forced["draft"] = drafter;
      drafted.push_back(std::move(with));
    }
  }
  return drafted;
}

// "all": all-local, cut 1 with int8, and every cut 1..L-1 with fp32 (the oracle of every static split).
Result<std::vector<Plan>> ParseStatics(std::string text, int layers) {
  if (text == "all") {
    // All-local and int8 first: on a slow link a phase may end before the slowest splits come round.
    text = "local,1:int8";
    for (int cut = 1; cut < layers; ++cut) text += "," + std::to_string(cut);
  }
  std::vector<Plan> plans;
  for (const std::string_view piece : ListItems(text)) {
    const std::string item(piece);
    if (item == "local") {
      plans.push_back({"local", {{"split", "local"}}});
      continue;
    }
    const size_t colon = item.find(':');
    const std::string codec = colon == std::string::npos ? "fp32" : item.substr(colon + 1);
    const std::optional<int> cut = ParseInt(std::string_view(item).substr(0, colon));
    if (!cut || *cut < 0) {
      return InvalidArgument("--static takes K, K:CODEC or local items separated by commas, got '" + item +
                             "'");
    }
    TANDEM_RETURN_IF_ERROR(ParseActivationCodec(codec).status());
    plans.push_back({"k=" + std::to_string(*cut) + " " + codec, {{"split", *cut}, {"codec", codec}}});
  }
  return plans;
}

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// The request's "tandem" object: the plan's forced split and drafter, and --draft-tokens.
json TandemField(const BenchSplitFlags& flags, const Plan& plan) {
  json tandem = plan.forced.is_null() ? json::object() : plan.forced;
  if (flags.draft_tokens == "auto") {
    tandem["draft_tokens"] = "auto";
  } else if (const std::optional<int> tokens = ParseInt(flags.draft_tokens)) {
    tandem["draft_tokens"] = *tokens;
  }
  return tandem;
}

// The drafting figures of a response's "tandem" object.
void ReadDraftFigures(const json& response, RequestRecord& record) {
  const json& draft = response["tandem"].value("draft", json::object());
  record.drafter = draft.value("drafter", "");
  record.drafted_tokens = draft.value("drafted_tokens", 0);
  record.accepted_tokens = draft.value("accepted_tokens", 0);
  record.model_steps = draft.value("model_steps", 0);
  record.completion_tokens = response.value("usage", json::object()).value("completion_tokens", 0);
}

// One completion; its figures from the response's "tandem" object, the total as the client saw it.
RequestRecord Complete(const BenchSplitFlags& flags, const Plan& plan, const std::string& prompt,
                       int layers) {
  json body = {{"prompt", prompt}, {"max_tokens", flags.max_tokens}, {"temperature", 0}};
  if (json tandem = TandemField(flags, plan); !tandem.empty()) body["tandem"] = std::move(tandem);
  RequestRecord record;
  record.mode = plan.name;
  const auto start = Clock::now();
  auto reply = services::HttpRequestOnce(flags.edge, "POST", "/v1/completions", body.dump(),
                                         std::chrono::seconds(flags.timeout_s));
  record.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!reply.ok()) {
    record.error = reply.status().message();
    return record;
  }
  record.status = reply->status;
  const json response = json::parse(reply->body, nullptr, /*allow_exceptions=*/false);
  if (reply->status != 200 || !response.contains("tandem")) {
    record.error = response.contains("error") ? response["error"].value("message", "") : reply->body;
    return record;
  }
  const json& tandem = response["tandem"];
  record.plan = PlanName(tandem["plan"]["cut"], tandem["plan"]["codec"], layers);
  record.final_cut = tandem.value("cut", -1);
  record.moves = tandem.value("moves", 0);
  for (const json& move : tandem.value("move_log", json::array())) {
    record.move_log.emplace_back(move.value("at_ms", 0.0) / 1000, move.value("to", ""));
  }
  record.predicted_ttft_ms = tandem["plan"].value("predicted_ttft_ms", 0.0);
  record.predicted_token_ms = tandem["plan"].value("predicted_token_ms", 0.0);
  record.ttft_ms = tandem.value("ttft_ms", 0.0);
  const double tokens_per_second = tandem.value("tokens_per_second", 0.0);
  record.token_ms = tokens_per_second > 0 ? 1000 / tokens_per_second : 0;
  ReadDraftFigures(response, record);
  return record;
}

// Polls the edge's /v1/plan: the link estimates and the planner's current choice over time.
class EstimatePoller {
 public:
  EstimatePoller(std::string edge, int layers, Clock::time_point origin, const std::filesystem::path& path)
      : edge_(std::move(edge)), layers_(layers), origin_(origin), out_(path) {
    out_ << "t_s,link_up,rtt_ms,bandwidth_mbit_s,cut,plan\n";
    thread_ = std::thread([this] { Run(); });
  }
  ~EstimatePoller() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // The planner's choice ("k=1 int8", "local") at each poll, in time order (after Stop).
  const std::vector<std::pair<double, std::string>>& choices() const { return choices_; }

 private:
  void Run() {
    while (!stop_) {
      const auto at = Clock::now();
      auto reply = services::HttpRequestOnce(edge_, "GET", "/v1/plan", "", std::chrono::seconds(1));
      if (reply.ok() && reply->status == 200) {
        const json plan = json::parse(reply->body, nullptr, false);
        if (plan.contains("estimates")) {
          const json& estimates = plan["estimates"];
          const std::string choice =
              plan["codec"].is_string() ? PlanName(plan["cut"], plan["codec"], layers_) : "";
          out_ << Seconds(origin_, at) << ',' << (estimates.value("link_up", false) ? 1 : 0) << ','
               << estimates.value("rtt_ms", 0.0) << ',' << estimates.value("bandwidth_mbit_s", 0.0) << ','
               << (plan["cut"].is_number() ? plan["cut"].get<int>() : -1) << ',' << choice << '\n';
          choices_.emplace_back(Seconds(origin_, at), choice);
        }
      }
      std::this_thread::sleep_until(at + std::chrono::milliseconds(100));
    }
  }

  std::string edge_;
  int layers_;
  Clock::time_point origin_;
  std::ofstream out_;
  std::vector<std::pair<double, std::string>> choices_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Waits until the edge has a report from its tail (so that the planner can consider splits).
Result<int> AwaitPlanner(const std::string& edge) {
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  std::string last;
  while (Clock::now() < deadline) {
    auto reply = services::HttpRequestOnce(edge, "GET", "/v1/plan", "", std::chrono::seconds(2));
    if (reply.ok() && reply->status == 200) {
      const json plan = json::parse(reply->body, nullptr, false);
      if (plan.contains("planner")) {
        for (const json& tail : plan["planner"].value("tails", json::array())) {
          if (tail.contains("stats")) return plan.value("layers", 0);
        }
      }
      if (!plan.contains("planner"))
        return InvalidArgument("the edge at " + edge + " does not run --split auto");
      last = "no report from its tail yet";
    } else {
      last = reply.ok() ? "status " + std::to_string(reply->status) : reply.status().message();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return DeadlineExceeded("the edge at " + edge + " is not ready to plan after 60 s: " + last);
}

// Plays the link phases on the emulator on its own thread, on time, whatever the requests are doing.
class LinkSchedule {
 public:
  LinkSchedule(netem::LinkProxy& proxy, const std::vector<netem::LinkPhase>& phases)
      : proxy_(proxy), phases_(phases), origin_(Clock::now()) {
    for (auto at = origin_; const netem::LinkPhase& phase : phases_) {
      starts_.push_back(at);
      at += phase.duration;
    }
    end_ = starts_.back() + phases_.back().duration;
    thread_ = std::thread([this] { Play(); });
    std::fprintf(stderr, "bench-split: phase 0: %s\n", DescribeLink(phases_[0].conditions).c_str());
  }
  ~LinkSchedule() { Finish(); }
  // Plays no further phase and waits for the thread (the conditions in force stay).
  void Finish() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }

  Clock::time_point origin() const { return origin_; }
  Clock::time_point end() const { return end_; }
  Clock::time_point start(size_t phase) const { return starts_[phase]; }
  const netem::LinkPhase& phase(size_t index) const { return phases_[index]; }
  size_t phases() const { return phases_.size(); }
  // The phase in force now.
  int current() const { return current_; }
  PhaseWindow Window(size_t index) const {
    const double start_s = Seconds(origin_, starts_[index]);
    return {.index = index,
            .start_s = start_s,
            .end_s = start_s + Seconds(starts_[index], starts_[index] + phases_[index].duration),
            .conditions = phases_[index].conditions};
  }

 private:
  void Play() {
    for (size_t i = 1; i < phases_.size() && !done_; ++i) {
      std::this_thread::sleep_until(starts_[i]);
      proxy_.SetConditions(phases_[i].conditions);
      current_ = static_cast<int>(i);
      std::fprintf(stderr, "bench-split: t=%.1fs phase %zu: %s\n", Seconds(origin_, Clock::now()), i,
                   DescribeLink(phases_[i].conditions).c_str());
    }
  }

  netem::LinkProxy& proxy_;
  const std::vector<netem::LinkPhase>& phases_;
  const Clock::time_point origin_;
  std::vector<Clock::time_point> starts_;
  Clock::time_point end_;
  std::atomic<int> current_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Sends completions one at a time until the schedule ends. In every phase, after the lead, one adaptive
// request then two static ones, the static splits in turn from the first: the oracle needs more samples
// than the adaptive plan. Only adaptive ones while the link is down. Each plan takes the prompts in turn,
// so that every plan sees the same ones.
std::vector<RequestRecord> MeasureRequests(const BenchSplitFlags& f, const std::vector<std::string>& prompts,
                                           const Plan& adaptive, const std::vector<Plan>& statics, int layers,
                                           const LinkSchedule& schedule) {
  std::vector<RequestRecord> records;
  std::map<std::string, size_t> sent;  // by plan
  size_t next_static = 0;
  int turn = 0, last_phase = -1;
  while (Clock::now() < schedule.end()) {
    const int phase = schedule.current();
    if (phase != last_phase) next_static = 0, turn = 0, last_phase = phase;
    const bool down = !schedule.phase(static_cast<size_t>(phase)).conditions.up;
    const bool lead =
        Clock::now() < schedule.start(static_cast<size_t>(phase)) + std::chrono::seconds(f.lead_s);
    const Plan* plan = &adaptive;
    if (!down && !lead && turn++ % 3 != 0 && !statics.empty())
      plan = &statics[next_static++ % statics.size()];
    const auto started = Clock::now();
    RequestRecord record = Complete(f, *plan, prompts[sent[plan->name]++ % prompts.size()], layers);
    record.start_s = Seconds(schedule.origin(), started);
    record.end_s = Seconds(schedule.origin(), Clock::now());
    record.phase = phase;
    record.straddles = schedule.current() != phase;
    records.push_back(std::move(record));
  }
  return records;
}

// Per phase, a row of the table on stdout and an entry of summary.json.
void ReportPhases(const std::filesystem::path& out, double lead_s, const LinkSchedule& schedule,
                  const std::vector<RequestRecord>& records, const PlanChoices& choices) {
  json summary = json::array();
  std::vector<PhaseSummary> phases;
  std::printf("%s", PhaseTableHeader().c_str());
  for (size_t p = 0; p < schedule.phases(); ++p) {
    phases.push_back(SummarizePhase(schedule.Window(p), lead_s, records, choices));
    summary.push_back(ToJson(phases.back()));
    std::printf("%s", PhaseTableRow(phases.back()).c_str());
  }
  std::printf("\n%s", PlanTableHeader().c_str());
  for (const PhaseSummary& phase : phases) std::printf("%s", PlanTableRows(phase).c_str());
  std::ofstream(out / "summary.json") << summary.dump(2) << '\n';
  WritePlansCsv(out / "plans.csv", phases);
  std::fflush(stdout);
}

// Parses and checks the flags and the schedule; an exit code when the command ends there.
std::optional<int> ParseBenchSplitFlags(std::span<const std::string> args, BenchSplitFlags& f,
                                        std::vector<netem::LinkPhase>& phases) {
  FlagSet flags(
      "usage: tandem bench-split --edge HOST:PORT --link-listen 127.0.0.1:P --link-target 127.0.0.1:T "
      "[--schedule S] [--static LIST] [--draft LIST] [--draft-tokens N|auto] [--prompts FILE] [--out DIR]\n"
      "The edge must run --split auto with --cloud tcp://127.0.0.1:P (this command's link emulator),\n"
      "which forwards to the tail at T.");
  flags.String("edge", &f.edge, "HOST:PORT of the tandem-edge REST API");
  flags.String("link-listen", &f.link_listen, "where the link emulator listens (the edge's --cloud)");
  flags.String("link-target", &f.link_target, "the tail's HOST:PORT behind the emulated link");
  flags.String("schedule", &f.schedule, "link phases DURATION:RATE:RTT or DURATION:down, comma-separated");
  flags.String("static", &f.statics,
               "the static splits to measure: K, K:CODEC or local, comma-separated; all = every cut with "
               "fp32, cut 1 with int8, and local");
  flags.String("draft", &f.drafters,
               "measure every static split once per drafter of this comma-separated list (as tandem-edge "
               "--draft names them; the edge must have loaded them); the adaptive requests use the edge's "
               "default");
  flags.String("draft-tokens", &f.draft_tokens,
               "drafts per step on every request: N or auto (default: the edge's)");
  flags.String("prompt", &f.prompt, "the prompt of every request");
  flags.String(
      "prompts", &f.prompts_file,
      "a JSONL file whose lines have a \"prompt\" (e.g. a golden file): each plan takes them in turn");
  flags.Int("max-tokens", &f.max_tokens, "tokens per request");
  flags.Int("lead-s", &f.lead_s, "seconds at the start of each phase with adaptive requests only");
  flags.Int("timeout-s", &f.timeout_s, "the longest a request may take");
  flags.String("out", &f.out, "output directory (requests.csv, estimates.csv, summary.json)");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  for (const char* name : {"link-listen", "link-target"}) {
    if (Status status = Require(flags, name); !status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  auto parsed = netem::ParseLinkSchedule(f.schedule);
  if (!parsed.ok()) return Fail(kCommand, parsed.status(), kExitUsage);
  phases = std::move(*parsed);
  if (f.max_tokens < 1 || f.lead_s < 0 || f.timeout_s < 1) {
    return Fail(kCommand, InvalidArgument("--max-tokens, --timeout-s >= 1 and --lead-s >= 0"), kExitUsage);
  }
  for (const std::string_view drafter : ListItems(f.drafters)) {
    if (auto spec = ParseDraftSpec(drafter); !spec.ok()) return Fail(kCommand, spec.status(), kExitUsage);
  }
  if (!f.draft_tokens.empty()) {
    if (auto tokens = scheduler::ParseDraftTokens(f.draft_tokens); !tokens.ok())
      return Fail(kCommand, tokens.status(), kExitUsage);
  }
  return std::nullopt;
}

}  // namespace

int RunBenchSplit(std::span<const std::string> args) {
  BenchSplitFlags f;
  std::vector<netem::LinkPhase> phases;
  if (auto exit = ParseBenchSplitFlags(args, f, phases)) return *exit;
  std::vector<std::string> prompts = {f.prompt};
  if (!f.prompts_file.empty()) {
    auto read = ReadPrompts(f.prompts_file);
    if (!read.ok()) return Fail(kCommand, read.status().WithContext("--prompts"), kExitUsage);
    prompts = std::move(*read);
  }
  const std::filesystem::path out(f.out);
  std::error_code made;
  std::filesystem::create_directories(out, made);
  if (made) return Fail(kCommand, InvalidArgument("cannot create --out " + f.out + ": " + made.message()));

  auto proxy = netem::LinkProxy::Start(
      {.listen = f.link_listen, .target = f.link_target, .conditions = phases[0].conditions});
  if (!proxy.ok()) return Fail(kCommand, proxy.status());
  auto layers = AwaitPlanner(f.edge);
  if (!layers.ok()) return Fail(kCommand, layers.status());
  auto statics = ParseStatics(f.statics, *layers);
  if (!statics.ok()) return Fail(kCommand, statics.status(), kExitUsage);
  const Plan adaptive{"adaptive", nullptr};
  for (int i = 0; i < 2; ++i) Complete(f, adaptive, prompts[0], *layers);  // warm-up, not recorded

  LinkSchedule schedule(**proxy, phases);
  EstimatePoller poller(f.edge, *layers, schedule.origin(), out / "estimates.csv");
  const std::vector<RequestRecord> records =
      MeasureRequests(f, prompts, adaptive, WithDrafters(*statics, f.drafters), *layers, schedule);
  schedule.Finish();
  poller.Stop();
  (*proxy)->Stop();
  WriteRequestsCsv(out / "requests.csv", records, phases);
  ReportPhases(out, f.lead_s, schedule, records, poller.choices());
  return 0;
}

}  // namespace tandem::cli
