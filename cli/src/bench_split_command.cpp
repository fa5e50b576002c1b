// tandem bench-split: the adaptive planner against every static split, on an emulated link.
//
// Puts the link emulator (netem::LinkProxy) between a running tandem-edge and its tail, plays a schedule of
// link conditions, and sends completions to the edge all along: adaptive ones (the planner's choice) and
// static ones (each split of --static, forced through the request's "tandem" field: the oracle). Requests
// go one at a time, so that they never compete for the machine. Writes requests.csv (one row per request),
// estimates.csv (the edge's link estimates and plan, every 100 ms) and summary.json, and prints per phase
// the re-plan delay and the adaptive plan's median latency against the best static plan's.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/netem/link_proxy.hpp"
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
  int max_tokens = 16;
  int lead_s = 6;
  int timeout_s = 30;
  std::string out = "bench-split-out";
};

// A split forced on a request: {"split": K | "local", "codec": C}; null: the planner decides.
struct Plan {
  std::string name;  // "adaptive", "k=1 fp32", "local"
  json forced;
};

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
    try {
      size_t used = 0;
      const int cut = std::stoi(item.substr(0, colon), &used);
      if (used != std::min(colon, item.size()) || cut < 0) throw std::invalid_argument(item);
      TANDEM_RETURN_IF_ERROR(ParseActivationCodec(codec).status());
      plans.push_back({"k=" + std::to_string(cut) + " " + codec, {{"split", cut}, {"codec", codec}}});
    } catch (const std::invalid_argument&) {
      return InvalidArgument("--static takes K, K:CODEC or local items separated by commas, got '" + item +
                             "'");
    }
  }
  return plans;
}

double Seconds(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

struct Record {
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

std::string PlanName(const json& cut, const json& codec, int layers) {
  if (!cut.is_number() || cut.get<int>() >= layers) return "local";
  return "k=" + std::to_string(cut.get<int>()) + " " + codec.get<std::string>();
}

// One completion; its figures from the response's "tandem" object, the total as the client saw it.
Record Complete(const BenchSplitFlags& flags, const Plan& plan, int layers) {
  json body = {{"prompt", flags.prompt}, {"max_tokens", flags.max_tokens}, {"temperature", 0}};
  if (!plan.forced.is_null()) body["tandem"] = plan.forced;
  Record record;
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
  return record;
}

std::string Describe(const netem::LinkConditions& link) {
  if (!link.up) return "down";
  char text[64];
  std::snprintf(text, sizeof(text), "%.3g Mbit/s %.0f ms", link.rate_bps / 1e6,
                std::chrono::duration<double, std::milli>(link.rtt).count());
  return text;
}

struct Medians {
  int count = 0;
  double ttft_ms = 0, token_ms = 0, total_ms = 0;
  double predicted_ttft_ms = 0, predicted_token_ms = 0;  // the planner's, for its first choice
};

// "1.27 s", or "-" for a negative (never).
std::string Fixed(double seconds) {
  if (seconds < 0) return "-";
  char text[32];
  std::snprintf(text, sizeof(text), "%.2f s", seconds);
  return text;
}

Medians MediansOf(const std::vector<const Record*>& records) {
  std::vector<double> ttft, token, total, predicted_ttft, predicted_token;
  for (const Record* record : records) {
    ttft.push_back(record->ttft_ms);
    token.push_back(record->token_ms);
    total.push_back(record->total_ms);
    predicted_ttft.push_back(record->predicted_ttft_ms);
    predicted_token.push_back(record->predicted_token_ms);
  }
  return {.count = static_cast<int>(records.size()),
          .ttft_ms = Median(ttft),
          .token_ms = Median(token),
          .total_ms = Median(total),
          .predicted_ttft_ms = Median(predicted_ttft),
          .predicted_token_ms = Median(predicted_token)};
}

void WriteRequestsCsv(const std::filesystem::path& path, const std::vector<Record>& records,
                      const std::vector<netem::LinkPhase>& phases) {
  std::ofstream out(path);
  out << "start_s,end_s,phase,link,mode,status,plan,final_cut,moves,predicted_ttft_ms,predicted_token_ms,"
         "ttft_ms,token_ms,total_ms,straddles,error\n";
  for (const Record& r : records) {
    std::string error = r.error;
    std::replace(error.begin(), error.end(), ',', ';');
    std::replace(error.begin(), error.end(), '\n', ' ');
    out << r.start_s << ',' << r.end_s << ',' << r.phase << ',' << Describe(phases[r.phase].conditions) << ','
        << r.mode << ',' << r.status << ',' << r.plan << ',' << r.final_cut << ',' << r.moves << ','
        << r.predicted_ttft_ms << ',' << r.predicted_token_ms << ',' << r.ttft_ms << ',' << r.token_ms << ','
        << r.total_ms << ',' << (r.straddles ? 1 : 0) << ',' << error << '\n';
  }
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

}  // namespace

int RunBenchSplit(std::span<const std::string> args) {
  BenchSplitFlags f;
  FlagSet flags(
      "usage: tandem bench-split --edge HOST:PORT --link-listen 127.0.0.1:P --link-target 127.0.0.1:T "
      "[--schedule S] [--static LIST] [--out DIR]\n"
      "The edge must run --split auto with --cloud tcp://127.0.0.1:P (this command's link emulator),\n"
      "which forwards to the tail at T.");
  flags.String("edge", &f.edge, "HOST:PORT of the tandem-edge REST API");
  flags.String("link-listen", &f.link_listen, "where the link emulator listens (the edge's --cloud)");
  flags.String("link-target", &f.link_target, "the tail's HOST:PORT behind the emulated link");
  flags.String("schedule", &f.schedule, "link phases DURATION:RATE:RTT or DURATION:down, comma-separated");
  flags.String("static", &f.statics,
               "the static splits to measure: K, K:CODEC or local, comma-separated; all = every cut with "
               "fp32, cut 1 with int8, and local");
  flags.String("prompt", &f.prompt, "the prompt of every request");
  flags.Int("max-tokens", &f.max_tokens, "tokens per request");
  flags.Int("lead-s", &f.lead_s, "seconds at the start of each phase with adaptive requests only");
  flags.Int("timeout-s", &f.timeout_s, "the longest a request may take");
  flags.String("out", &f.out, "output directory (requests.csv, estimates.csv, summary.json)");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  for (const char* name : {"link-listen", "link-target"}) {
    if (Status status = Require(flags, name); !status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  auto phases = netem::ParseLinkSchedule(f.schedule);
  if (!phases.ok()) return Fail(kCommand, phases.status(), kExitUsage);
  if (f.max_tokens < 1 || f.lead_s < 0 || f.timeout_s < 1) {
    return Fail(kCommand, InvalidArgument("--max-tokens, --timeout-s >= 1 and --lead-s >= 0"), kExitUsage);
  }
  std::error_code made;
  std::filesystem::create_directories(f.out, made);
  if (made) return Fail(kCommand, InvalidArgument("cannot create --out " + f.out + ": " + made.message()));

  auto proxy = netem::LinkProxy::Start(
      {.listen = f.link_listen, .target = f.link_target, .conditions = (*phases)[0].conditions});
  if (!proxy.ok()) return Fail(kCommand, proxy.status());
  auto layers = AwaitPlanner(f.edge);
  if (!layers.ok()) return Fail(kCommand, layers.status());
  auto statics = ParseStatics(f.statics, *layers);
  if (!statics.ok()) return Fail(kCommand, statics.status(), kExitUsage);
  const Plan adaptive{"adaptive", nullptr};
  for (int i = 0; i < 2; ++i) Complete(f, adaptive, *layers);  // warm-up, not recorded

  // The schedule runs on its own thread, on time, whatever the requests are doing.
  const auto origin = Clock::now();
  std::vector<Clock::time_point> starts;
  for (auto at = origin; const netem::LinkPhase& phase : *phases) {
    starts.push_back(at);
    at += phase.duration;
  }
  const auto end = starts.back() + phases->back().duration;
  std::atomic<int> current{0};
  std::atomic<bool> done{false};
  std::thread scheduler([&] {
    for (size_t i = 1; i < phases->size() && !done; ++i) {
      std::this_thread::sleep_until(starts[i]);
      (*proxy)->SetConditions((*phases)[i].conditions);
      current = static_cast<int>(i);
      std::fprintf(stderr, "bench-split: t=%.1fs phase %zu: %s\n", Seconds(origin, Clock::now()), i,
                   Describe((*phases)[i].conditions).c_str());
    }
  });
  std::fprintf(stderr, "bench-split: phase 0: %s\n", Describe((*phases)[0].conditions).c_str());

  std::vector<Record> records;
  EstimatePoller poller(f.edge, *layers, origin, std::filesystem::path(f.out) / "estimates.csv");
  {
    // After the lead, one adaptive request then two static ones, the static splits in turn from the first
    // in every phase: the oracle needs more samples than the adaptive plan.
    size_t next_static = 0;
    int turn = 0, last_phase = -1;
    while (Clock::now() < end) {
      const int phase = current;
      if (phase != last_phase) next_static = 0, turn = 0, last_phase = phase;
      const bool down = !(*phases)[static_cast<size_t>(phase)].conditions.up;
      const bool lead = Clock::now() < starts[static_cast<size_t>(phase)] + std::chrono::seconds(f.lead_s);
      const Plan* plan = &adaptive;
      if (!down && !lead && turn++ % 3 != 0 && !statics->empty()) {
        plan = &(*statics)[next_static++ % statics->size()];
      }
      const auto started = Clock::now();
      Record record = Complete(f, *plan, *layers);
      record.start_s = Seconds(origin, started);
      record.end_s = Seconds(origin, Clock::now());
      record.phase = phase;
      record.straddles = current != phase;
      records.push_back(std::move(record));
    }
  }
  done = true;
  scheduler.join();
  poller.Stop();
  (*proxy)->Stop();
  WriteRequestsCsv(std::filesystem::path(f.out) / "requests.csv", records, *phases);

  // Per phase: steady-state medians (after the lead, not straddling a change, answered), best static,
  // and how long after the change the adaptive plan settled.
  json summary = json::array();
  std::printf(
      "| phase | link | adaptive plan | planner switched / first used after | adaptive TTFT / token / "
      "total ms (predicted TTFT / token) | best static: total ms | adaptive / best |\n"
      "|---|---|---|---|---|---|---|\n");
  for (size_t p = 0; p < phases->size(); ++p) {
    const double phase_start = Seconds(origin, starts[p]);
    std::map<std::string, std::vector<const Record*>> steady;
    int failed = 0;
    for (const Record& r : records) {
      if (r.phase != static_cast<int>(p)) continue;
      if (r.status != 200) {
        ++failed;
        continue;
      }
      if (!r.straddles && (r.start_s >= phase_start + f.lead_s || !(*phases)[p].conditions.up)) {
        steady[r.mode].push_back(&r);
      }
    }
    std::map<std::string, int> plan_counts;
    for (const Record* r : steady["adaptive"]) ++plan_counts[r->plan];
    std::string settled;
    for (const auto& [plan, count] : plan_counts) {
      if (settled.empty() || count > plan_counts[settled]) settled = plan;
    }
    // When the edge's planner switched to the settled plan after the change (its current choice, polled)...
    double switched_s = -1;
    const double phase_end = phase_start + Seconds(starts[p], starts[p] + (*phases)[p].duration);
    for (const auto& [at, choice] : poller.choices()) {
      if (at >= phase_start && at < phase_end && choice == settled) {
        switched_s = at - phase_start;
        break;
      }
    }
    // ... and when it first acted on it: a request planned with it, or a generation moved to it (including
    // requests that began before the change).
    double replan_s = -1;
    const auto acted = [&](double at) {
      if (at >= phase_start && (replan_s < 0 || at - phase_start < replan_s)) replan_s = at - phase_start;
    };
    for (const Record& r : records) {
      if (r.mode != "adaptive" || r.status != 200 || r.end_s < phase_start) continue;
      if (r.phase == static_cast<int>(p) && r.plan == settled) acted(r.start_s);
      for (const auto& [at, to] : r.move_log) {
        if (!settled.empty() && to.starts_with(settled)) acted(r.start_s + at);
      }
    }
    const Medians mine = MediansOf(steady["adaptive"]);
    std::string best_name;
    Medians best;
    json statics_json = json::object();
    for (const auto& [mode, list] : steady) {
      if (mode == "adaptive") continue;
      const Medians m = MediansOf(list);
      statics_json[mode] = {
          {"count", m.count}, {"ttft_ms", m.ttft_ms}, {"token_ms", m.token_ms}, {"total_ms", m.total_ms}};
      if (best_name.empty() || m.total_ms < best.total_ms) {
        best_name = mode;
        best = m;
      }
    }
    const double ratio = best.total_ms > 0 ? mine.total_ms / best.total_ms : 0;
    summary.push_back({{"phase", p},
                       {"link", Describe((*phases)[p].conditions)},
                       {"adaptive_plan", settled},
                       {"planner_switched_s", switched_s},
                       {"first_use_s", replan_s},
                       {"adaptive",
                        {{"count", mine.count},
                         {"ttft_ms", mine.ttft_ms},
                         {"token_ms", mine.token_ms},
                         {"total_ms", mine.total_ms},
                         {"predicted_ttft_ms", mine.predicted_ttft_ms},
                         {"predicted_token_ms", mine.predicted_token_ms}}},
                       {"failed", failed},
                       {"static", statics_json},
                       {"best_static", best_name},
                       {"ratio_to_best_static", ratio}});
    std::printf(
        "| %zu | %s | %s (%d req, %d failed) | %s | %.1f / %.2f / %.1f (%.1f / %.2f) | %s | %s |\n", p,
        Describe((*phases)[p].conditions).c_str(), settled.c_str(), mine.count, failed,
        (Fixed(switched_s) + " / " + Fixed(replan_s)).c_str(), mine.ttft_ms, mine.token_ms, mine.total_ms,
        mine.predicted_ttft_ms, mine.predicted_token_ms,
        best_name.empty() ? "-" : (best_name + ": " + std::to_string(best.total_ms).substr(0, 6)).c_str(),
        best_name.empty() ? "-" : std::to_string(ratio).substr(0, 4).c_str());
  }
  std::ofstream(std::filesystem::path(f.out) / "summary.json") << summary.dump(2) << '\n';
  std::fflush(stdout);
  return 0;
}

}  // namespace tandem::cli
