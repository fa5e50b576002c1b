// tandem bench-suite: every throughput figure of issue 9 in one run, written as JSON and Markdown.
//
// Parts, each with its peak resident memory: monolithic prefill/decode (float32, then int8 blocks + head);
// split decode over CURVE-encrypted loopback to an in-process tail for each codec; the tail's aggregate
// decode throughput and per-token latency at 1, 4, 16, 64 concurrent sessions (continuous batching);
// codec encode/decode speed on real boundary rows. The tail runs in this process so that the suite needs
// nothing but a model, and shares the machine's cores with the edge side exactly as a loopback test would.
#include <prometheus/registry.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <barrier>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "bench_support.hpp"
#include "cli_support.hpp"
#include "commands.hpp"
#include "split_setup.hpp"
#include "tandem/cloud_tail/tail_server.hpp"
#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/engine/threading.hpp"
#include "tandem/wire/curve.hpp"

namespace tandem::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kCommand = "bench-suite";

struct SuiteOptions {
  ModelFlags model;  // --model and --threads; int8 settings are the suite's own
  std::string out_dir = "bench-results";
  int prompt_tokens = 128, gen_tokens = 128;            // monolithic runs
  int split_prompt_tokens = 16, split_gen_tokens = 32;  // each codec's split runs
  int repeat = 3, warmup = 1;
  int cut = 1;  // split and tail parts: the tail runs [cut, L)
  std::string codecs = "all";
  std::string sessions = "1,4,16,64";
  int tail_prompt_tokens = 16, tail_decode_steps = 32;
  int max_batch = 64, max_batch_wait_us = 2000;
  uint64_t seed = 1;
};

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The boundary rows of one session at `cut`: a prefill of `prompt` and then one row per token of `decode`.
struct CutWorkload {
  HiddenRows prefill;
  std::vector<HiddenRows> decode;
};

Result<CutWorkload> ComputeWorkload(const LoadedModel& model, int cut, const std::vector<int>& prompt,
                                    const std::vector<int>& decode_tokens) {
  EdgeRunner edge(model.transformer, cut, static_cast<int>(prompt.size() + decode_tokens.size()));
  CutWorkload workload;
  TANDEM_ASSIGN_OR_RETURN(workload.prefill, edge.Forward(prompt));
  for (const int token : decode_tokens) {
    TANDEM_ASSIGN_OR_RETURN(HiddenRows row, edge.Forward(std::span<const int>(&token, 1)));
    workload.decode.push_back(std::move(row));
  }
  return workload;
}

// Runs `part`, reporting its peak resident memory (MB) under "peak_rss_mb" and its duration.
template <typename Part>
Result<json> WithPeakMemory(const char* name, Part&& part) {
  ResetPeakRss();
  const auto start = Clock::now();
  std::fprintf(stderr, "bench-suite: %s...\n", name);
  TANDEM_ASSIGN_OR_RETURN(json result, part());
  result["peak_rss_mb"] = PeakRssMegabytes();
  result["seconds"] = Seconds(start);
  return result;
}

Result<json> MeasureMonolithic(const LoadedModel& model, const SuiteOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(auto tails, TailFactory::Create(model, SplitFlags{}));
  const std::vector<int> prompt =
      RandomPrompt(options.prompt_tokens, model.checkpoint->config().vocab_size, options.seed);
  const int positions = options.prompt_tokens + options.gen_tokens - 1;
  Runs runs;
  for (int run = 0; run < options.warmup + options.repeat; ++run) {
    TANDEM_RETURN_IF_ERROR(
        MeasureRun(model, *tails, prompt, positions, run >= options.warmup ? &runs : nullptr));
  }
  const Transformer& transformer = *model.transformer;
  const double weight_mb = static_cast<double>(transformer.BlockWeightBytes({0, transformer.n_layers()}) +
                                               transformer.ClassifierWeightBytes()) /
                           1e6;
  const Summary decode = Summarize(runs.decode_tok_s);
  return json{{"prefill_tok_s", ToJson(Summarize(runs.prefill_tok_s))},
              {"decode_tok_s", ToJson(decode)},
              {"weight_mb_per_token", weight_mb},
              {"decode_weight_gb_s", decode.median * weight_mb / 1e3},
              {"prompt_tokens", options.prompt_tokens},
              {"gen_tokens", options.gen_tokens}};
}

// A CURVE tail in this process on a free loopback port, and the client options that reach it.
struct InProcessTail {
  std::unique_ptr<cloud_tail::TailServer> server;
  std::shared_ptr<prometheus::Registry> registry;
  edge_agent::CloudOptions client;
};

Result<InProcessTail> StartInProcessTail(const LoadedModel& model, const SuiteOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(const CurveKeyPair server_keys, GenerateCurveKeyPair());
  TANDEM_ASSIGN_OR_RETURN(const CurveKeyPair client_keys, GenerateCurveKeyPair());
  cloud_tail::TailServerOptions server_options;
  server_options.bind = "tcp://127.0.0.1:0";
  server_options.security.own_keys = server_keys;
  server_options.allowed_clients = {client_keys.public_key};
  server_options.max_batch = options.max_batch;
  server_options.max_batch_wait = std::chrono::microseconds(options.max_batch_wait_us);
  InProcessTail tail;
  tail.registry = std::make_shared<prometheus::Registry>();
  TANDEM_ASSIGN_OR_RETURN(tail.server,
                          cloud_tail::TailServer::Start(model.transformer, model.fingerprint,
                                                        std::move(server_options), tail.registry));
  tail.client.endpoint = tail.server->endpoint();
  tail.client.security.own_keys = client_keys;
  tail.client.security.server_public_key = server_keys.public_key;
  tail.client.timeout = std::chrono::seconds(120);          // 64 sessions' prefills queue behind each other
  tail.client.resend_after = std::chrono::milliseconds(0);  // a resend would be extra load, not a retry
  tail.client.max_resends = 0;
  return tail;
}

Result<std::vector<ActivationCodec>> SelectedCodecs(const std::string& names) {
  if (names == "all") return AllActivationCodecs();
  return ParseCodecList(names, "codecs");
}

Result<json> MeasureSplit(const LoadedModel& model, const InProcessTail& tail,
                          const std::vector<ActivationCodec>& codecs, const SuiteOptions& options) {
  const std::vector<int> prompt =
      RandomPrompt(options.split_prompt_tokens, model.checkpoint->config().vocab_size, options.seed);
  const int positions = options.split_prompt_tokens + options.split_gen_tokens - 1;
  json rows = json::array();
  for (const ActivationCodec& codec : codecs) {
    TANDEM_ASSIGN_OR_RETURN(auto tails, TailFactory::Connect(model, options.cut, codec, tail.client));
    Runs runs;
    for (int run = 0; run < options.warmup + options.repeat; ++run) {
      TANDEM_RETURN_IF_ERROR(
          MeasureRun(model, *tails, prompt, positions, run >= options.warmup ? &runs : nullptr));
    }
    const json& cut = runs.cut_report;
    rows.push_back({{"codec", codec.Name()},
                    {"prefill_tok_s", ToJson(Summarize(runs.prefill_tok_s))},
                    {"decode_tok_s", ToJson(Summarize(runs.decode_tok_s))},
                    {"decode_ms_per_token", Median(runs.decode_ms_per_token)},
                    {"decode_payload_bytes", cut.value("decode_payload_bytes", 0.0)},
                    {"decode_raw_bytes", cut.value("decode_raw_bytes", 0)},
                    {"decode_round_trip_ms", cut.value("decode_round_trip_ms", 0.0)},
                    {"decode_cloud_compute_ms", cut.value("decode_cloud_compute_ms", 0.0)}});
  }
  return json{{"cut", options.cut},
              {"prompt_tokens", options.split_prompt_tokens},
              {"gen_tokens", options.split_gen_tokens},
              {"transport", "ZeroMQ over CURVE, 127.0.0.1, tail in this process"},
              {"codecs", rows}};
}

// The tail's histogram of steps per batched pass, as (passes, steps) so far.
std::pair<double, double> BatchCounts(prometheus::Registry& registry) {
  for (const auto& family : registry.Collect()) {
    if (family.name != "tandem_cloud_batch_steps" || family.metric.empty()) continue;
    const auto& histogram = family.metric.front().histogram;
    return {static_cast<double>(histogram.sample_count), histogram.sample_sum};
  }
  return {0, 0};
}

// One measured round at `sessions` concurrent sessions: each opens a session, prefills, decodes one
// unmeasured step, waits for all the others, then decodes `decode.size() - 1` measured steps.
struct TailRound {
  double aggregate_tok_s = 0;
  std::vector<double> step_ms;  // every measured step of every session
  double mean_batch = 0;
};

Result<TailRound> RunTailRound(const LoadedModel& model, InProcessTail& tail, const CutWorkload& workload,
                               int sessions, int cut) {
  const wire::Hello hello = model.Describe();
  const auto positions = static_cast<uint32_t>(workload.prefill.rows + workload.decode.size());
  zmq::context_t context;
  std::barrier start_line(sessions + 1);
  std::vector<Status> statuses(sessions, Status::Ok());
  std::vector<std::vector<double>> step_ms(sessions);
  std::vector<Clock::time_point> finished(sessions);
  auto session = [&](int index) {
    bool waited = false;
    auto run = [&]() -> Status {
      TANDEM_ASSIGN_OR_RETURN(auto connection,
                              edge_agent::CloudConnection::Connect(context, tail.client, hello));
      TANDEM_ASSIGN_OR_RETURN(
          auto remote, edge_agent::RemoteTail::Open(*connection, {.cut = cut,
                                                                  .codec = {},
                                                                  .sampling = SamplingParams{0.0f, 1.0f, 0},
                                                                  .max_positions = positions}));
      TANDEM_RETURN_IF_ERROR(remote->Forward(workload.prefill).status());
      TANDEM_RETURN_IF_ERROR(remote->Forward(workload.decode.front()).status());
      start_line.arrive_and_wait();
      waited = true;
      for (size_t step = 1; step < workload.decode.size(); ++step) {
        const auto sent = Clock::now();
        TANDEM_RETURN_IF_ERROR(remote->Forward(workload.decode[step]).status());
        step_ms[index].push_back(Seconds(sent) * 1e3);
      }
      finished[index] = Clock::now();
      return Status::Ok();
    };
    statuses[index] = run();
    if (!waited) start_line.arrive_and_drop();  // a session that failed early must not hold the others
  };
  std::vector<std::thread> threads;
  for (int index = 0; index < sessions; ++index) threads.emplace_back(session, index);
  start_line.arrive_and_wait();
  const auto start = Clock::now();
  const auto [passes_before, steps_before] = BatchCounts(*tail.registry);
  for (std::thread& thread : threads) thread.join();
  for (const Status& status : statuses) TANDEM_RETURN_IF_ERROR(status);
  const auto [passes_after, steps_after] = BatchCounts(*tail.registry);
  TailRound round;
  const auto last = *std::max_element(finished.begin(), finished.end());
  const double wall = std::chrono::duration<double>(last - start).count();
  for (const auto& steps : step_ms) round.step_ms.insert(round.step_ms.end(), steps.begin(), steps.end());
  round.aggregate_tok_s = static_cast<double>(round.step_ms.size()) / wall;
  const double passes = passes_after - passes_before;
  round.mean_batch = passes > 0 ? (steps_after - steps_before) / passes : 0;
  return round;
}

Result<json> MeasureTailAggregate(const LoadedModel& model, InProcessTail& tail, const CutWorkload& workload,
                                  const std::vector<int>& session_counts, const SuiteOptions& options) {
  json rows = json::array();
  for (const int sessions : session_counts) {
    std::vector<double> aggregate, p50, p90, batch;
    for (int run = 0; run < options.repeat; ++run) {
      TANDEM_ASSIGN_OR_RETURN(const TailRound round,
                              RunTailRound(model, tail, workload, sessions, options.cut));
      aggregate.push_back(round.aggregate_tok_s);
      p50.push_back(Percentile(round.step_ms, 50));
      p90.push_back(Percentile(round.step_ms, 90));
      batch.push_back(round.mean_batch);
    }
    rows.push_back({{"sessions", sessions},
                    {"aggregate_tok_s", ToJson(Summarize(aggregate))},
                    {"p50_ms", Median(p50)},
                    {"p90_ms", Median(p90)},
                    {"mean_batch", Median(batch)}});
  }
  json result = {
      {"cut", options.cut},
      {"blocks", std::to_string(options.cut) + ":" + std::to_string(model.transformer->n_layers())},
      {"prompt_tokens", options.tail_prompt_tokens},
      {"decode_steps", options.tail_decode_steps},
      {"max_batch", options.max_batch},
      {"max_batch_wait_us", options.max_batch_wait_us},
      {"sessions", rows}};
  // Each figure against the single session's, when both were measured.
  const auto single =
      std::find_if(rows.begin(), rows.end(), [](const json& row) { return row["sessions"] == 1; });
  if (single != rows.end()) {
    for (json& row : rows) {
      row["aggregate_vs_single"] = row["aggregate_tok_s"]["median"].get<double>() /
                                   (*single)["aggregate_tok_s"]["median"].get<double>();
      row["p50_vs_single"] = row["p50_ms"].get<double>() / (*single)["p50_ms"].get<double>();
    }
    result["sessions"] = rows;
  }
  return result;
}

// Encode and decode speed of each codec on `rows` (float32 bytes per second), medians of 7 timings.
Result<json> MeasureCodecs(const HiddenRows& rows, const std::vector<ActivationCodec>& codecs) {
  constexpr int kTimings = 7, kCallsPerTiming = 10;
  const auto raw_bytes = static_cast<double>(rows.values.size() * sizeof(float));
  json result = json::array();
  for (const ActivationCodec& codec : codecs) {
    std::vector<double> encode_gb_s, decode_gb_s;
    EncodedActivations encoded;
    for (int timing = 0; timing < kTimings; ++timing) {
      auto start = Clock::now();
      for (int call = 0; call < kCallsPerTiming; ++call) {
        TANDEM_ASSIGN_OR_RETURN(encoded, EncodeActivations(rows.values, rows.rows, rows.cols, codec));
      }
      encode_gb_s.push_back(raw_bytes * kCallsPerTiming / Seconds(start) / 1e9);
      const ActivationCodec applied{codec.precision, encoded.compression};
      start = Clock::now();
      for (int call = 0; call < kCallsPerTiming; ++call) {
        TANDEM_RETURN_IF_ERROR(
            DecodeActivations(encoded.payload, rows.rows, rows.cols, applied, rows.rows * rows.cols)
                .status());
      }
      decode_gb_s.push_back(raw_bytes * kCallsPerTiming / Seconds(start) / 1e9);
    }
    const auto payload = static_cast<double>(encoded.payload.size());
    result.push_back({{"codec", codec.Name()},
                      {"bytes_per_row", payload / static_cast<double>(rows.rows)},
                      {"ratio_vs_fp32", raw_bytes / payload},
                      {"encode_gb_s", Median(encode_gb_s)},
                      {"decode_gb_s", Median(decode_gb_s)}});
  }
  return json{{"rows", rows.rows}, {"cols", rows.cols}, {"codecs", result}};
}

// The first line of /proc/cpuinfo's `field`, or "".
std::string CpuInfo(const std::string& field) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (!line.starts_with(field)) continue;
    const size_t colon = line.find(':');
    return colon == std::string::npos ? "" : line.substr(colon + 2);
  }
  return "";
}

std::string ReadFirstLine(const std::filesystem::path& path) {
  std::ifstream file(path);
  std::string line;
  std::getline(file, line);
  return line;
}

json DescribeMachine() {
  json caches = json::object();
  for (int index = 0; index < 8; ++index) {
    const std::filesystem::path dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    if (!std::filesystem::exists(dir)) break;
    const std::string type = ReadFirstLine(dir / "type");
    if (type == "Instruction") continue;
    caches["L" + ReadFirstLine(dir / "level")] = ReadFirstLine(dir / "size");
  }
  std::ifstream meminfo("/proc/meminfo");
  std::string label;
  int64_t memory_kb = 0;
  meminfo >> label >> memory_kb;  // "MemTotal: N kB"
  return {{"cpu", CpuInfo("model name")},
          {"cpu_mhz", CpuInfo("cpu MHz")},
          {"cores", std::thread::hardware_concurrency()},
          {"caches_per_core_or_shared", caches},
          {"memory_gib", static_cast<double>(memory_kb) / (1 << 20)},
          {"compute_threads", ComputeThreads()}};
}

std::string Cell(double value, int digits) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.*f", digits, value);
  return text;
}

std::string Markdown(const json& report) {
  const json& machine = report["machine"];
  std::string md = "Machine: " + machine["cpu"].get<std::string>() + ", " +
                   std::to_string(machine["cores"].get<int>()) + " cores, caches " +
                   machine["caches_per_core_or_shared"].dump() + ", " +
                   Cell(machine["memory_gib"].get<double>(), 0) + " GiB; " +
                   std::to_string(machine["compute_threads"].get<int>()) + " compute threads; memory read " +
                   Cell(report["memory_read_gb_s"].get<double>(), 1) +
                   " GB/s. Model: " + report["model"].get<std::string>() + ".\n\n";
  md +=
      "| monolithic | prefill tok/s | decode tok/s | weights read GB/s | peak RSS MB "
      "|\n|---|---:|---:|---:|---:|\n";
  for (const char* name : {"monolithic_float32", "monolithic_int8"}) {
    const json& part = report[name];
    md += std::string("| ") + name + " | " + Cell(part["prefill_tok_s"]["median"].get<double>(), 1) + " | " +
          Cell(part["decode_tok_s"]["median"].get<double>(), 1) + " | " +
          Cell(part["decode_weight_gb_s"].get<double>(), 1) + " | " +
          Cell(part["peak_rss_mb"].get<double>(), 0) + " |\n";
  }
  const json& split = report["split_decode"];
  md += "\n| split at " + std::to_string(split["cut"].get<int>()) +
        ", codec | decode tok/s | ms/token | bytes/step | round trip ms | tail compute ms |\n"
        "|---|---:|---:|---:|---:|---:|\n";
  for (const json& row : split["codecs"]) {
    md += "| " + row["codec"].get<std::string>() + " | " +
          Cell(row["decode_tok_s"]["median"].get<double>(), 1) + " | " +
          Cell(row["decode_ms_per_token"].get<double>(), 2) + " | " +
          Cell(row["decode_payload_bytes"].get<double>(), 0) + " | " +
          Cell(row["decode_round_trip_ms"].get<double>(), 2) + " | " +
          Cell(row["decode_cloud_compute_ms"].get<double>(), 2) + " |\n";
  }
  md += "\nSplit part peak RSS " + Cell(split["peak_rss_mb"].get<double>(), 0) + " MB.\n";
  const json& tail = report["tail_aggregate"];
  md += "\n| tail blocks " + tail["blocks"].get<std::string>() +
        ", sessions | aggregate tok/s | vs 1 | p50 ms/token | vs 1 | p90 ms | mean batch |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n";
  for (const json& row : tail["sessions"]) {
    md += "| " + std::to_string(row["sessions"].get<int>()) + " | " +
          Cell(row["aggregate_tok_s"]["median"].get<double>(), 1) + " | " +
          Cell(row.value("aggregate_vs_single", 0.0), 2) + " | " + Cell(row["p50_ms"].get<double>(), 2) +
          " | " + Cell(row.value("p50_vs_single", 0.0), 2) + " | " + Cell(row["p90_ms"].get<double>(), 2) +
          " | " + Cell(row["mean_batch"].get<double>(), 1) + " |\n";
  }
  md += "\nTail part peak RSS " + Cell(tail["peak_rss_mb"].get<double>(), 0) + " MB.\n";
  const json& codecs = report["codecs"];
  md += "\n| codec (" + std::to_string(codecs["rows"].get<int64_t>()) + " rows x " +
        std::to_string(codecs["cols"].get<int64_t>()) +
        ") | bytes/row | vs fp32 | encode GB/s | decode GB/s |\n|---|---:|---:|---:|---:|\n";
  for (const json& row : codecs["codecs"]) {
    md += "| " + row["codec"].get<std::string>() + " | " + Cell(row["bytes_per_row"].get<double>(), 0) +
          " | " + Cell(row["ratio_vs_fp32"].get<double>(), 2) + " | " +
          Cell(row["encode_gb_s"].get<double>(), 2) + " | " + Cell(row["decode_gb_s"].get<double>(), 2) +
          " |\n";
  }
  md += "\nCodec part peak RSS " + Cell(codecs["peak_rss_mb"].get<double>(), 0) + " MB. Whole suite " +
        Cell(report["seconds"].get<double>(), 0) + " s.\n";
  return md;
}

Result<std::vector<int>> ParseSessionCounts(const std::string& text) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<int> counts, ParseIntList(text, 1, 256, "sessions"));
  if (counts.empty()) return InvalidArgument("--sessions names no count");
  return counts;
}

Result<json> RunSuite(const SuiteOptions& options, const std::vector<ActivationCodec>& codecs,
                      const std::vector<int>& session_counts) {
  const auto suite_start = Clock::now();
  TANDEM_RETURN_IF_ERROR(CreateDirectories(options.out_dir));
  ModelFlags model_flags = options.model;
  if (model_flags.model.empty()) {
    model_flags.model = (std::filesystem::path(options.out_dir) / "stories110M-random.bin").string();
    if (!std::filesystem::exists(model_flags.model)) {
      std::fprintf(stderr, "bench-suite: writing %s (random weights)\n", model_flags.model.c_str());
      TANDEM_RETURN_IF_ERROR(
          WriteRandomCheckpoint(model_flags.model, ModelShapes().at("stories110M"), options.seed));
    }
  }
  json report = {{"model", model_flags.model}};
  int layers = 0;
  {
    TANDEM_ASSIGN_OR_RETURN(const LoadedModel model, LoadModel(model_flags, /*fingerprint=*/true));
    const ModelConfig& config = model.checkpoint->config();
    layers = config.n_layers;
    if (options.cut < 1 || options.cut >= config.n_layers)
      return InvalidArgument("--cut must be within 1.." + std::to_string(config.n_layers - 1));
    report["config"] = config.ToString();
    report["machine"] = DescribeMachine();
    TANDEM_ASSIGN_OR_RETURN(report["monolithic_float32"], WithPeakMemory("monolithic float32", [&] {
                              return MeasureMonolithic(model, options);
                            }));
    TANDEM_ASSIGN_OR_RETURN(InProcessTail tail, StartInProcessTail(model, options));
    TANDEM_ASSIGN_OR_RETURN(report["split_decode"], WithPeakMemory("split decode per codec", [&] {
                              return MeasureSplit(model, tail, codecs, options);
                            }));
    const std::vector<int> prompt = RandomPrompt(options.tail_prompt_tokens, config.vocab_size, options.seed);
    const std::vector<int> decode_tokens =
        RandomPrompt(options.tail_decode_steps + 1, config.vocab_size, options.seed + 1);
    TANDEM_ASSIGN_OR_RETURN(const CutWorkload workload,
                            ComputeWorkload(model, options.cut, prompt, decode_tokens));
    TANDEM_ASSIGN_OR_RETURN(report["tail_aggregate"], WithPeakMemory("tail aggregate throughput", [&] {
                              return MeasureTailAggregate(model, tail, workload, session_counts, options);
                            }));
    tail.server->Stop();
    const int codec_rows = std::min(64, config.seq_len);
    TANDEM_ASSIGN_OR_RETURN(
        const CutWorkload boundary,
        ComputeWorkload(model, options.cut, RandomPrompt(codec_rows, config.vocab_size, options.seed), {}));
    TANDEM_ASSIGN_OR_RETURN(report["codecs"], WithPeakMemory("codec speed", [&] {
                              return MeasureCodecs(boundary.prefill, codecs);
                            }));
  }  // the float32 model is released before the int8 one is measured
  ModelFlags int8_flags = model_flags;
  int8_flags.int8_blocks = "0:" + std::to_string(layers);
  int8_flags.int8_head = true;
  {
    TANDEM_ASSIGN_OR_RETURN(report["monolithic_int8"],
                            WithPeakMemory("monolithic int8", [&]() -> Result<json> {
                              TANDEM_ASSIGN_OR_RETURN(const LoadedModel model, LoadModel(int8_flags));
                              return MeasureMonolithic(model, options);
                            }));
  }
  report["memory_read_gb_s"] = MemoryReadGigabytesPerSecond();
  report["seconds"] = Seconds(suite_start);
  return report;
}

}  // namespace

int RunBenchSuite(std::span<const std::string> args) {
  SuiteOptions options;
  FlagSet flags(
      "usage: tandem bench-suite [--model M] [--out-dir bench-results] [--threads N] [--repeat 3]\n\n"
      "Monolithic prefill/decode (float32, int8), split decode on loopback per codec, the tail's aggregate\n"
      "decode throughput at --sessions concurrent sessions, codec speed; writes OUT/bench-suite.json and\n"
      "OUT/bench-suite.md. Without --model, a stories110M-shaped model with random weights is written to\n"
      "OUT once and used.");
  options.model.Declare(flags, std::string(kModelFlagHelp) + " (default: a random stories110M shape)");
  flags.String("out-dir", &options.out_dir, "where the JSON, the Markdown and the generated model go");
  flags.Int("prompt-tokens", &options.prompt_tokens, "monolithic runs: prompt length (random ids)");
  flags.Int("gen-tokens", &options.gen_tokens, "monolithic runs: tokens generated");
  flags.Int("split-prompt-tokens", &options.split_prompt_tokens, "split runs: prompt length");
  flags.Int("split-gen-tokens", &options.split_gen_tokens, "split runs: tokens generated");
  flags.Int("repeat", &options.repeat, "measured runs of each configuration (medians are reported)");
  flags.Int("warmup", &options.warmup, "unmeasured runs first");
  flags.Int("cut", &options.cut, "split and tail parts: the tail runs blocks [cut, L)");
  flags.String("codecs", &options.codecs, "codecs of the split and codec parts, comma-separated, or all");
  flags.String("sessions", &options.sessions, "concurrent session counts of the tail part");
  flags.Int("tail-prompt-tokens", &options.tail_prompt_tokens, "tail part: positions prefilled per session");
  flags.Int("tail-decode-steps", &options.tail_decode_steps, "tail part: measured decode steps per session");
  flags.Int("max-batch", &options.max_batch, "tail part: the tail's --max-batch");
  flags.Int("max-batch-wait-us", &options.max_batch_wait_us, "tail part: the tail's --max-batch-wait-us");
  flags.UInt64("seed", &options.seed, "seed of the prompts and of the generated model");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (options.prompt_tokens < 1 || options.gen_tokens < 2 || options.split_prompt_tokens < 1 ||
      options.split_gen_tokens < 2 || options.repeat < 1 || options.warmup < 0 ||
      options.tail_prompt_tokens < 1 || options.tail_decode_steps < 1 || options.max_batch < 1 ||
      options.max_batch_wait_us < 0) {
    return Fail(
        kCommand,
        InvalidArgument("token counts, --repeat, --tail-decode-steps and --max-batch must be positive "
                        "(--gen-tokens >= 2), --warmup and --max-batch-wait-us not negative"),
        kExitUsage);
  }
  if (!options.model.int8_blocks.empty() || options.model.int8_head || !options.model.int4_blocks.empty() ||
      options.model.int4_head) {
    return Fail(
        kCommand,
        InvalidArgument("the suite measures float32 and int8 itself: no --int8-blocks or --int4-blocks"),
        kExitUsage);
  }
  const auto codecs = SelectedCodecs(options.codecs);
  if (!codecs.ok()) return Fail(kCommand, codecs.status(), kExitUsage);
  const auto session_counts = ParseSessionCounts(options.sessions);
  if (!session_counts.ok()) return Fail(kCommand, session_counts.status(), kExitUsage);
  auto report = RunSuite(options, *codecs, *session_counts);
  if (!report.ok()) return Fail(kCommand, report.status());
  const std::string markdown = Markdown(*report);
  const std::filesystem::path out(options.out_dir);
  for (const Status& written : {WriteText(out / "bench-suite.json", report->dump(2) + "\n"),
                                WriteText(out / "bench-suite.md", markdown)}) {
    if (!written.ok()) return Fail(kCommand, written);
  }
  std::printf("%s\nwrote %s and %s\n", markdown.c_str(), (out / "bench-suite.json").c_str(),
              (out / "bench-suite.md").c_str());
  return 0;
}

}  // namespace tandem::cli
