#include <nlohmann/json.hpp>

#include <cstdio>
#include <optional>
#include <span>

#include "bench_support.hpp"
#include "cli_support.hpp"
#include "commands.hpp"
#include "split_setup.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/engine/threading.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "bench";

struct BenchFlags {
  ModelFlags model;
  SplitFlags split;
  int prompt_tokens = 128, gen_tokens = 128, repeat = 5, warmup = 1;
  uint64_t seed = 1;
};

// Parses the flags and checks what needs no model; an exit code when the command ends there.
std::optional<int> ParseBenchFlags(std::span<const std::string> args, BenchFlags& f) {
  FlagSet flags(
      "usage: tandem bench --model M [--int8-blocks A:B | --int4-blocks A:B] [--prompt-tokens 128] "
      "[--gen-tokens 128] [--threads N] [--repeat R] [--split K [--codec C] [--cloud ...]]\n\n"
      "With --split, each repeat runs the all-local baseline and the split configuration back to\n"
      "back, and the per-token decode latency of both is compared.");
  f.model.Declare(flags, std::string(kModelFlagHelp) + " (e.g. from tandem make-model)");
  flags.Int("prompt-tokens", &f.prompt_tokens, "prompt length of each run (random token ids)");
  flags.Int("gen-tokens", &f.gen_tokens, "tokens generated in each run (greedy; BOS does not stop it)");
  flags.Int("repeat", &f.repeat, "measured runs");
  flags.Int("warmup", &f.warmup, "unmeasured runs first");
  flags.UInt64("seed", &f.seed, "seed of the random prompt");
  f.split.Declare(flags);
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = Require(flags, "model"); !status.ok()) return Fail(kCommand, status, kExitUsage);
  if (f.prompt_tokens < 1 || f.gen_tokens < 2 || f.repeat < 1 || f.warmup < 0) {
    return Fail(kCommand,
                InvalidArgument("need --prompt-tokens >= 1, --gen-tokens >= 2, --repeat >= 1, --warmup >= 0"),
                kExitUsage);
  }
  return std::nullopt;
}

// The configuration line: model, quantized blocks, kernels, threads, lengths, weights read per token.
void PrintConfiguration(const BenchFlags& f, const ModelConfig& config, double weight_mb) {
  const ModelFlags& m = f.model;
  std::printf(
      "model %s (%s), int8 blocks [%s]%s, int4 blocks [%s]%s, %s kernels, %d threads, %d prompt + %d "
      "generated tokens, %.0f MB of weights read per decoded token\n",
      m.model.c_str(), config.ToString().c_str(), m.int8_blocks.c_str(), m.int8_head ? " + head" : "",
      m.int4_blocks.c_str(), m.int4_head ? " + head" : "", ActiveKernels().name, ComputeThreads(),
      f.prompt_tokens, f.gen_tokens, weight_mb);
}

// The warm-up and measured runs, all-local and (with --split) split back to back, a line per measured run.
Status MeasureRuns(const BenchFlags& f, const LoadedModel& model, TailFactory& local, TailFactory* split,
                   const std::vector<int>& prompt, int positions, Runs& local_runs, Runs& split_runs) {
  for (int run = 0; run < f.warmup + f.repeat; ++run) {
    const bool measured = run >= f.warmup;
    TANDEM_RETURN_IF_ERROR(MeasureRun(model, local, prompt, positions, measured ? &local_runs : nullptr));
    if (split)
      TANDEM_RETURN_IF_ERROR(MeasureRun(model, *split, prompt, positions, measured ? &split_runs : nullptr));
    if (!measured) continue;
    std::printf("run %d: prefill %.1f tok/s, decode %.1f tok/s", run - f.warmup + 1,
                local_runs.prefill_tok_s.back(), local_runs.decode_tok_s.back());
    if (split) {
      std::printf("; split: prefill %.1f tok/s, decode %.1f tok/s", split_runs.prefill_tok_s.back(),
                  split_runs.decode_tok_s.back());
    }
    std::printf("\n");
  }
  return Status::Ok();
}

// The all-local figures: speeds, peak memory, and decode's weight reads against the memory bandwidth.
nlohmann::json ReportLocal(const BenchFlags& f, const Runs& local_runs, double weight_mb) {
  const Summary prefill_summary = Summarize(local_runs.prefill_tok_s);
  const Summary decode_summary = Summarize(local_runs.decode_tok_s);
  const double peak_rss_mb = PeakRssMegabytes();  // before the bandwidth probe's buffer
  const double memory_gb_s = MemoryReadGigabytesPerSecond();
  const double decode_gb_s = decode_summary.median * weight_mb / 1e3;
  std::printf("decode reads weights at %.1f GB/s; memory read bandwidth %.1f GB/s (ratio %.2f)\n",
              decode_gb_s, memory_gb_s, decode_gb_s / memory_gb_s);
  std::printf(
      "prefill %.1f tok/s (min %.1f, max %.1f), decode %.1f tok/s (min %.1f, max %.1f), "
      "peak RSS %.0f MB\n",
      prefill_summary.median, prefill_summary.min, prefill_summary.max, decode_summary.median,
      decode_summary.min, decode_summary.max, peak_rss_mb);
  return {{"prefill_tok_s", ToJson(prefill_summary)},
          {"decode_tok_s", ToJson(decode_summary)},
          {"peak_rss_mb", peak_rss_mb},
          {"decode_weight_gb_s", decode_gb_s},
          {"memory_read_gb_s", memory_gb_s},
          {"threads", ComputeThreads()},
          {"int8_blocks", f.model.int8_blocks},
          {"int8_head", f.model.int8_head},
          {"int4_blocks", f.model.int4_blocks},
          {"int4_head", f.model.int4_head},
          {"kernels", ActiveKernels().name},
          {"weight_mb_per_token", weight_mb},
          {"repeat", f.repeat}};
}

// The split against all-local: per-token decode latency added, and what crossed the cut.
nlohmann::json ReportSplit(const SplitFlags& split_flags, const Runs& local_runs, const Runs& split_runs) {
  const double local_ms = Median(local_runs.decode_ms_per_token);
  const double split_ms = Median(split_runs.decode_ms_per_token);
  // Each repeat ran both back to back: the median of the paired differences cancels slow drifts of the
  // machine that a difference of medians would keep.
  std::vector<double> added;
  for (size_t i = 0; i < split_runs.decode_ms_per_token.size(); ++i) {
    added.push_back(split_runs.decode_ms_per_token[i] - local_runs.decode_ms_per_token[i]);
  }
  const double added_ms = Median(added);
  const std::string& codec = split_flags.cloud.codec;
  const std::string where = split_flags.cloud.enabled() ? "on " + split_flags.cloud.endpoint : "in-process";
  std::printf(
      "split at %d (%s, %s): prefill %.1f tok/s, decode %.1f tok/s; per-token decode latency "
      "%.3f ms vs %.3f ms all local (medians); added per token: %+.3f ms (median of %zu paired runs)\n",
      split_flags.split, codec.c_str(), where.c_str(), Median(split_runs.prefill_tok_s),
      Median(split_runs.decode_tok_s), split_ms, local_ms, added_ms, added.size());
  const nlohmann::json& cut = split_runs.cut_report;
  if (cut.contains("decode_payload_bytes")) {
    const double payload = cut["decode_payload_bytes"].get<double>();
    const double raw = cut["decode_raw_bytes"].get<double>();
    std::printf("payload per decode step: %.0f bytes with %s, %.0f as float32 (%.2fx fewer)\n", payload,
                codec.c_str(), raw, raw / payload);
  }
  return {{"cut", split_flags.split},
          {"codec", cut.value("codec", codec)},
          {"decode_payload_bytes", cut.value("decode_payload_bytes", 0.0)},
          {"decode_raw_bytes", cut.value("decode_raw_bytes", 0)},
          {"decode_round_trip_ms", cut.value("decode_round_trip_ms", 0.0)},
          {"decode_cloud_compute_ms", cut.value("decode_cloud_compute_ms", 0.0)},
          {"cloud", split_flags.cloud.endpoint},
          {"prefill_tok_s", ToJson(Summarize(split_runs.prefill_tok_s))},
          {"decode_tok_s", ToJson(Summarize(split_runs.decode_tok_s))},
          {"decode_ms_per_token", split_ms},
          {"local_decode_ms_per_token", local_ms},
          {"added_ms_per_token", added_ms}};
}

}  // namespace

int RunBench(std::span<const std::string> args) {
  BenchFlags f;
  if (auto exit = ParseBenchFlags(args, f)) return *exit;
  auto model = LoadModel(f.model, /*fingerprint=*/f.split.cloud.enabled());
  if (!model.ok()) return Fail(kCommand, model.status());
  if (Status valid = f.split.Validate(model->transformer->n_layers()); !valid.ok()) {
    return Fail(kCommand, valid, kExitUsage);
  }
  const ModelConfig& config = model->checkpoint->config();
  const int positions = f.prompt_tokens + f.gen_tokens - 1;  // the last sampled token is not fed back
  if (positions > config.seq_len) {
    return Fail(kCommand,
                InvalidArgument("prompt + generated tokens exceed seq_len " + std::to_string(config.seq_len)),
                kExitUsage);
  }
  const std::vector<int> prompt = RandomPrompt(f.prompt_tokens, config.vocab_size, f.seed);
  const Transformer& transformer = *model->transformer;
  const double weight_mb = static_cast<double>(transformer.BlockWeightBytes({0, config.n_layers}) +
                                               transformer.ClassifierWeightBytes()) /
                           1e6;
  PrintConfiguration(f, config, weight_mb);
  auto local = TailFactory::Create(*model, SplitFlags{});
  if (!local.ok()) return Fail(kCommand, local.status());
  std::unique_ptr<TailFactory> split;
  if (f.split.split >= 0) {
    auto created = TailFactory::Create(*model, f.split);
    if (!created.ok()) return Fail(kCommand, created.status());
    split = std::move(*created);
  }
  Runs local_runs, split_runs;
  if (Status measured =
          MeasureRuns(f, *model, **local, split.get(), prompt, positions, local_runs, split_runs);
      !measured.ok()) {
    return Fail(kCommand, measured);
  }
  nlohmann::json result = ReportLocal(f, local_runs, weight_mb);
  if (split) result["split"] = ReportSplit(f.split, local_runs, split_runs);
  std::printf("%s\n", result.dump().c_str());
  return 0;
}

}  // namespace tandem::cli
