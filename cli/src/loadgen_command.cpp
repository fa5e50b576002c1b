// tandem loadgen: concurrent clients against tandem-edge's /v1/completions (plain and streamed), with
// latency percentiles, TTFT, throughput and the resident memory of watched processes; a non-zero exit
// on unexpected errors or memory growth makes it usable as a load or soak test.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "cli_support.hpp"
#include "commands.hpp"
#include "rss_sampler.hpp"
#include "sse_check.hpp"
#include "tandem/base/clock.hpp"
#include "tandem/services/http_client.hpp"
#include "tandem/services/service_main.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "loadgen";
constexpr int kMaxClients = 512;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

// Short prompts in the style of TinyStories, so every model in ../shared continues them sensibly.
const std::vector<std::string> kPrompts = {"Once upon a time", "Lily and Tom went to the park",
                                           "The little dog was sad because", "One day, a bird found",
                                           "Tim had a big red ball"};

struct Options {
  std::string url = "http://127.0.0.1:8080";
  int clients = 4;
  int requests = 10;
  float duration_s = 0;
  int warmup = 0;
  float stream_fraction = 0.5f;
  int max_tokens = 32;
  float temperature = 0.8f;
  std::string prompt;
  uint64_t seed = 1;
  std::vector<std::string> watch;
  std::string report;
  int timeout_ms = 60000;
  float max_rss_growth_mb = 50;
  float sample_s = 5;
  std::string api_key;
  services::HttpClientTlsFlags tls{.prefix = "", .peer_flag = "--url"};  // --ca, ... for an https:// --url
};

std::atomic<bool> g_stop{false};
void OnStopSignal(int) {
  g_stop = true;
}

// A uniform number in [0, 1) from (seed, index) (splitmix64), so which requests stream does not depend
// on timing or thread scheduling.
double Unit(uint64_t seed, uint64_t index) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (index + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) / static_cast<double>(uint64_t{1} << 53);
}

// What one request came to. `label` names the kind of failure: "http_502:upstream_error",
// "transport:DEADLINE_EXCEEDED", "stream:no_done", ...
struct Outcome {
  enum class Kind { kOk, kDeliberate, kError } kind = Kind::kError;
  std::string label;
  std::string detail;  // a transport error's message (which names the address and what failed)
  bool streamed = false;
  double total_ms = 0;
  double ttft_ms = -1;  // streamed and ok only
  int64_t tokens = 0;
};

// Request `index`: its prompt and sampling seed follow from the index, so a run's mix is reproducible.
services::HttpClientRequest CompletionRequest(const Options& options, uint64_t index, bool streamed) {
  const std::string& prompt = options.prompt.empty() ? kPrompts[index % kPrompts.size()] : options.prompt;
  const json body = {{"prompt", prompt},
                     {"max_tokens", options.max_tokens},
                     {"temperature", options.temperature},
                     {"seed", (options.seed * 1000003 + index) % 2147483647},
                     {"stream", streamed}};
  services::HttpClientRequest request;
  request.method = "POST";
  request.target = "/v1/completions";
  request.body = body.dump();
  request.timeout = std::chrono::milliseconds(options.timeout_ms);
  if (!options.api_key.empty()) request.headers.emplace_back("Authorization", "Bearer " + options.api_key);
  return request;
}

// Labels an answer other than 200 by its status and error code; a 503 with Retry-After is overload
// shedding by design (queue full, no slot in time, tail busy): deliberate, not an error.
void LabelRefusal(const services::HttpReply& reply, Outcome& outcome) {
  const json error = json::parse(reply.body, nullptr, false);
  std::string code = "unknown";
  if (error.is_object() && error.contains("error") && error["error"].is_object()) {
    code = error["error"].value("code", code);
  }
  outcome.label = "http_" + std::to_string(reply.status) + ":" + code;
  if (reply.status == 503 && reply.Header("retry-after") != nullptr)
    outcome.kind = Outcome::Kind::kDeliberate;
}

// Checks a 200 answer, a complete event stream or a completion object; ok when it is one.
void CheckAnswer(const services::HttpReply& reply, const SseCheck& sse, Clock::time_point start,
                 Outcome& outcome) {
  if (outcome.streamed) {
    outcome.label = sse.Problem();
    if (!outcome.label.empty()) return;
    if (sse.first_content()) outcome.ttft_ms = ToMilliseconds(*sse.first_content() - start);
    outcome.tokens = sse.tokens();
  } else {
    const json answer = json::parse(reply.body, nullptr, false);
    if (!answer.is_object() || !answer.contains("choices") || !answer.contains("usage") ||
        !answer["usage"].is_object()) {
      outcome.label = "bad_json";
      return;
    }
    outcome.tokens = answer["usage"].value("completion_tokens", int64_t{0});
  }
  outcome.kind = Outcome::Kind::kOk;
}

Outcome RunRequest(const Options& options, const std::string& address, uint64_t index) {
  Outcome outcome;
  outcome.streamed = Unit(options.seed, index) < options.stream_fraction;
  services::HttpClientRequest request = CompletionRequest(options, index, outcome.streamed);
  services::HttpReply reply;
  SseCheck sse;
  if (outcome.streamed) {
    // The status is known before the first body piece; error bodies are plain JSON, not events.
    request.on_data = [&](std::string_view piece) {
      if (reply.status == 200) sse.Feed(piece);
      return true;
    };
  }
  const Clock::time_point start = Clock::now();
  request.tls = options.tls.tls;
  const Status status = services::HttpExchange(address, request, reply);
  outcome.total_ms = ToMilliseconds(Clock::now() - start);
  if (!status.ok()) {
    outcome.label = "transport:" + std::string(StatusCodeName(status.code()));
    outcome.detail = status.message();
  } else if (reply.status != 200) {
    LabelRefusal(reply, outcome);
  } else {
    CheckAnswer(reply, sse, start, outcome);
  }
  return outcome;
}

struct Percentiles {
  size_t count = 0;
  double p50 = 0, p90 = 0, p99 = 0, max = 0;
};

// Nearest-rank percentiles.
Percentiles Summarize(std::vector<double> values) {
  Percentiles out;
  out.count = values.size();
  if (values.empty()) return out;
  std::sort(values.begin(), values.end());
  out.p50 = NearestRank(values, 50);
  out.p90 = NearestRank(values, 90);
  out.p99 = NearestRank(values, 99);
  out.max = values.back();
  return out;
}

json ToJson(const Percentiles& p) {
  return {{"count", p.count}, {"p50", p.p50}, {"p90", p.p90}, {"p99", p.p99}, {"max", p.max}};
}

// The outcomes of one phase (warm-up or measured); clients add under the mutex.
struct Tally {
  std::mutex mutex;
  int64_t requests = 0;
  int64_t ok = 0;
  int64_t tokens = 0;
  std::map<std::string, int64_t> deliberate;
  std::map<std::string, int64_t> errors;
  std::string first_transport_error;  // printed so that a run that cannot connect says why
  std::vector<double> total_ms;
  std::vector<double> ttft_ms;

  void Add(const Outcome& outcome) {
    std::lock_guard lock(mutex);
    ++requests;
    switch (outcome.kind) {
      case Outcome::Kind::kOk:
        ++ok;
        tokens += outcome.tokens;
        total_ms.push_back(outcome.total_ms);
        if (outcome.ttft_ms >= 0) ttft_ms.push_back(outcome.ttft_ms);
        break;
      case Outcome::Kind::kDeliberate:
        ++deliberate[outcome.label];
        break;
      case Outcome::Kind::kError:
        ++errors[outcome.label];
        if (first_transport_error.empty()) first_transport_error = outcome.detail;
        break;
    }
  }
  static int64_t Sum(const std::map<std::string, int64_t>& counts) {
    int64_t total = 0;
    for (const auto& [label, count] : counts) total += count;
    return total;
  }
  json Counts() const {
    return {{"requests", requests},
            {"ok", ok},
            {"deliberate_503", {{"total", Sum(deliberate)}, {"by_type", deliberate}}},
            {"errors", {{"total", Sum(errors)}, {"by_type", errors}}}};
  }
};

// Runs `clients` threads, each sending `per_client` requests one after another (or until `deadline`, or a
// stop signal). Request indices interleave the clients, so a run's mix does not depend on timing.
void RunPhase(const Options& options, const std::string& address, uint64_t first_index, int per_client,
              std::optional<Clock::time_point> deadline, Tally& tally) {
  std::vector<std::thread> threads;
  for (int client = 0; client < options.clients; ++client) {
    threads.emplace_back([&, client] {
      for (uint64_t i = 0; !g_stop; ++i) {
        if (deadline ? Clock::now() >= *deadline : i >= static_cast<uint64_t>(per_client)) break;
        tally.Add(RunRequest(options, address, first_index + i * options.clients + client));
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
}

std::string FormatCounts(const std::map<std::string, int64_t>& counts) {
  std::string out;
  for (const auto& [label, count] : counts)
    out += (out.empty() ? "" : ", ") + label + " " + std::to_string(count);
  return out.empty() ? "" : " (" + out + ")";
}

void PrintPercentiles(const char* what, const Percentiles& p) {
  std::printf("%-22s n=%zu p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", what, p.count, p.p50, p.p90, p.p99,
              p.max);
}

Status CheckOptions(const Options& o) {
  if (!o.url.starts_with("http://") && !o.url.starts_with("https://")) {
    return InvalidArgument("--url must start with http:// or https://");
  }
  if (o.clients < 1 || o.clients > kMaxClients) {
    return InvalidArgument("--clients must be in [1, " + std::to_string(kMaxClients) + "]");
  }
  if (o.requests < 0 || o.warmup < 0) return InvalidArgument("--requests and --warmup must be >= 0");
  if (o.duration_s < 0) return InvalidArgument("--duration must be >= 0");
  if (o.stream_fraction < 0 || o.stream_fraction > 1)
    return InvalidArgument("--stream-fraction must be in [0, 1]");
  if (o.max_tokens < 1) return InvalidArgument("--max-tokens must be >= 1");
  if (o.timeout_ms < 1) return InvalidArgument("--timeout-ms must be >= 1");
  if (o.sample_s <= 0) return InvalidArgument("--sample-s must be > 0");
  return Status::Ok();
}

// Declares the flags; `o` holds their values after parsing.
void DeclareFlags(FlagSet& flags, Options& o) {
  flags.String("url", &o.url, "the edge's API (http://HOST:PORT or https://HOST:PORT)");
  flags.Int("clients", &o.clients, "concurrent clients (one connection per request each)");
  flags.Int("requests", &o.requests, "requests per client (ignored with --duration)");
  flags.Float("duration", &o.duration_s, "soak: send for this many seconds instead of --requests (0 = off)");
  flags.Int("warmup", &o.warmup, "requests per client before measuring (and before the RSS baseline)");
  flags.Float("stream-fraction", &o.stream_fraction, "the share of requests sent with stream: true");
  flags.Int("max-tokens", &o.max_tokens, "max_tokens of every request");
  flags.Float("temperature", &o.temperature, "temperature of every request");
  flags.String("prompt", &o.prompt, "the prompt of every request (default: a small built-in set)");
  flags.UInt64("seed", &o.seed, "picks the streamed requests and the requests' sampling seeds");
  flags.Strings("watch", &o.watch, "NAME=PID: report this process's VmRSS before, during and after");
  flags.String("report", &o.report, "write the results as JSON here");
  flags.Int("timeout-ms", &o.timeout_ms, "the longest a request may take, connect to last byte");
  flags.Float("max-rss-growth-mb", &o.max_rss_growth_mb, "fail when a watched process grew more than this");
  flags.Float("sample-s", &o.sample_s, "RSS sampling interval (progress lines with --duration)");
  flags.String("api-key", &o.api_key, "sent as Authorization: Bearer KEY");
  o.tls.Declare(flags);
}

// --url without trailing slashes (http[s]://HOST:PORT), the HTTP client's address.
Result<std::string> AddressOfUrl(const std::string& url) {
  std::string address = url;
  while (address.ends_with('/')) address.pop_back();
  if (address.find('/', address.find("://") + 3) != std::string::npos) {
    return InvalidArgument("--url takes no path: " + url);
  }
  return address;
}

// What the measured phase came to, beside its tally.
struct Measurement {
  double wall_s = 0;
  json rss_series;
};

// The warm-up (if any), the RSS baseline, then the measured phase with the RSS sampler running.
Measurement RunLoad(const Options& o, const std::string& address, std::vector<WatchedProcess>& watched,
                    Tally& warmup, Tally& tally) {
  const bool soak = o.duration_s > 0;
  if (o.warmup > 0) RunPhase(o, address, 0, o.warmup, std::nullopt, warmup);
  for (WatchedProcess& w : watched) w.before_kb = ReadRssKb(w.pid);
  Measurement measured;
  const Clock::time_point start = Clock::now();
  {
    RssSampler sampler(watched, std::chrono::duration<double>(o.sample_s), soak, [&tally] {
      std::lock_guard lock(tally.mutex);
      return RequestCounts{tally.requests, tally.ok};
    });
    const std::optional<Clock::time_point> deadline =
        soak ? std::optional(start + std::chrono::duration_cast<Clock::duration>(
                                         std::chrono::duration<double>(o.duration_s)))
             : std::nullopt;
    RunPhase(o, address, static_cast<uint64_t>(o.warmup) * o.clients, o.requests, deadline, tally);
    sampler.Stop();
    measured.rss_series = sampler.series();
  }
  measured.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  for (WatchedProcess& w : watched) w.after_kb = ReadRssKb(w.pid);
  return measured;
}

// The counts, latency and throughput lines.
void PrintTraffic(const Options& o, const Tally& warmup, const Tally& tally, double wall_s) {
  std::printf("loadgen: %d clients, %s, %.0f%% streamed, max_tokens %d, against %s\n", o.clients,
              o.duration_s > 0 ? (FixedPoint(o.duration_s, 0) + " s").c_str()
                               : (std::to_string(o.requests) + " requests each").c_str(),
              o.stream_fraction * 100.0, o.max_tokens, o.url.c_str());
  if (o.warmup > 0) {
    std::printf("warm-up: %lld requests, ok %lld, deliberate 503 %lld, errors %lld%s\n",
                static_cast<long long>(warmup.requests), static_cast<long long>(warmup.ok),
                static_cast<long long>(Tally::Sum(warmup.deliberate)),
                static_cast<long long>(Tally::Sum(warmup.errors)), FormatCounts(warmup.errors).c_str());
  }
  std::printf("requests %lld in %.1f s (%.1f/s): ok %lld, deliberate 503 %lld%s, errors %lld%s\n",
              static_cast<long long>(tally.requests), wall_s, static_cast<double>(tally.requests) / wall_s,
              static_cast<long long>(tally.ok), static_cast<long long>(Tally::Sum(tally.deliberate)),
              FormatCounts(tally.deliberate).c_str(), static_cast<long long>(Tally::Sum(tally.errors)),
              FormatCounts(tally.errors).c_str());
  const std::string& first_error =
      tally.first_transport_error.empty() ? warmup.first_transport_error : tally.first_transport_error;
  if (!first_error.empty()) std::printf("first transport error: %s\n", first_error.c_str());
  PrintPercentiles("latency ms (ok):", Summarize(tally.total_ms));
  PrintPercentiles("TTFT ms (streamed ok):", Summarize(tally.ttft_ms));
  std::printf("tokens %lld, %.1f tokens/s aggregate\n", static_cast<long long>(tally.tokens),
              static_cast<double>(tally.tokens) / wall_s);
}

// A line per watched process; a process gone or grown past the limit is a failure. The report's "rss".
json CheckMemory(const std::vector<WatchedProcess>& watched, double max_growth_mb,
                 std::vector<std::string>& failures) {
  json rss = json::object();
  for (const WatchedProcess& w : watched) {
    const double growth = KibToMb(w.after_kb) - KibToMb(w.before_kb);
    std::printf("RSS %s (pid %d): %.1f MB after warm-up, %.1f MB at end, growth %+.1f MB, peak %.1f MB\n",
                w.name.c_str(), w.pid, KibToMb(w.before_kb), KibToMb(w.after_kb), growth, KibToMb(w.peak_kb));
    if (w.after_kb < 0) {
      failures.push_back(w.name + " (pid " + std::to_string(w.pid) + ") is gone");
    } else if (growth > max_growth_mb) {
      failures.push_back(w.name + " grew " + FixedPoint(growth, 1) + " MB");
    }
    rss[w.name] = {{"pid", w.pid},
                   {"before_mb", KibToMb(w.before_kb)},
                   {"after_mb", KibToMb(w.after_kb)},
                   {"growth_mb", growth},
                   {"peak_mb", KibToMb(w.peak_kb)}};
  }
  return rss;
}

// The --report file: the counts, the configuration, the figures and the verdict.
Status WriteReport(const Options& o, const Tally& warmup, const Tally& tally, const Measurement& measured,
                   const json& rss, const std::vector<std::string>& failures) {
  json report = tally.Counts();
  report["config"] = {{"url", o.url},
                      {"clients", o.clients},
                      {"requests_per_client", o.duration_s > 0 ? 0 : o.requests},
                      {"duration_s", o.duration_s},
                      {"warmup_per_client", o.warmup},
                      {"stream_fraction", o.stream_fraction},
                      {"max_tokens", o.max_tokens},
                      {"seed", o.seed},
                      {"timeout_ms", o.timeout_ms},
                      {"max_rss_growth_mb", o.max_rss_growth_mb}};
  report["warmup"] = warmup.Counts();
  report["wall_s"] = measured.wall_s;
  report["requests_per_second"] = static_cast<double>(tally.requests) / measured.wall_s;
  report["latency_ms"] = {{"total", ToJson(Summarize(tally.total_ms))},
                          {"ttft", ToJson(Summarize(tally.ttft_ms))}};
  report["tokens"] = tally.tokens;
  report["tokens_per_second"] = static_cast<double>(tally.tokens) / measured.wall_s;
  report["rss"] = rss;
  report["rss_series"] = measured.rss_series;
  report["stopped_early"] = g_stop.load();
  report["passed"] = failures.empty();
  report["failures"] = failures;
  std::ofstream out(o.report);
  out << report.dump(2) << "\n";
  if (!out) return InvalidArgument("cannot write --report " + o.report);
  return Status::Ok();
}

}  // namespace

int RunLoadgen(std::span<const std::string> args) {
  Options o;
  FlagSet flags(
      "usage: tandem loadgen [--url http[s]://127.0.0.1:8080 [--ca FILE]] [--clients N]\n"
      "                      [--requests M | --duration S]\n"
      "                      [--warmup W] [--watch NAME=PID]... [--report FILE] [flags]\n\n"
      "Sends completions from N concurrent clients to tandem-edge: a deterministic mix of plain and\n"
      "streamed requests, every stream checked event by event. Prints counts, latency percentiles,\n"
      "TTFT, tokens/s and the RSS of watched processes. Exit 1 on any error other than a 503 with\n"
      "Retry-After (overload shedding, counted as deliberate), when no request succeeded, or when a\n"
      "watched process grew by more than --max-rss-growth-mb from the end of the warm-up to the end.");
  DeclareFlags(flags, o);
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = CheckOptions(o); !status.ok()) return Fail(kCommand, status, kExitUsage);
  Result<std::vector<WatchedProcess>> watched = ParseWatch(o.watch);
  if (!watched.ok()) return Fail(kCommand, watched.status(), kExitUsage);
  const Result<std::string> address = AddressOfUrl(o.url);
  if (!address.ok()) return Fail(kCommand, address.status(), kExitUsage);
  if (Status loaded = o.tls.Load(*address); !loaded.ok()) return Fail(kCommand, loaded, kExitUsage);

  // A soak stopped early with Ctrl-C (or SIGTERM) still reports what it measured.
  std::signal(SIGINT, OnStopSignal);
  std::signal(SIGTERM, OnStopSignal);
  Tally warmup, tally;
  const Measurement measured = RunLoad(o, *address, *watched, warmup, tally);

  std::vector<std::string> failures;
  const int64_t errors = Tally::Sum(tally.errors) + Tally::Sum(warmup.errors);
  if (errors > 0) failures.push_back(std::to_string(errors) + " unexpected errors");
  if (tally.ok == 0) failures.push_back("no request succeeded");
  PrintTraffic(o, warmup, tally, measured.wall_s);
  const json rss = CheckMemory(*watched, o.max_rss_growth_mb, failures);
  if (g_stop) std::printf("stopped early by a signal\n");
  std::string verdict = failures.empty() ? "PASS" : "FAIL:";
  for (const std::string& failure : failures) verdict += " " + failure + ";";
  std::printf("%s\n", verdict.c_str());
  if (!o.report.empty()) {
    if (Status written = WriteReport(o, warmup, tally, measured, rss, failures); !written.ok()) {
      return Fail(kCommand, written);
    }
  }
  return failures.empty() ? 0 : kExitFailure;
}

}  // namespace tandem::cli
