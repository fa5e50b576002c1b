#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <random>
#include <span>

#include "cli_support.hpp"
#include "commands.hpp"
#include "split_setup.hpp"
#include "tandem/edge_agent/generation_drafting.hpp"
#include "tandem/edge_agent/movable_split.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/engine/pipeline.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "generate";

struct GenerateFlags {
  ModelFlags model;
  std::string tokenizer;
  std::string prompt;
  int steps = 256;
  float temperature = 1.0f;
  float top_p = 0.9f;
  uint64_t seed = 0;
  SplitFlags split;
  std::string moves;
  std::string draft = "none";
  std::string draft_tokens = "auto";
  bool json = false;
};

// --moves "N:K,...": after N generated tokens, move the split to cut K ("local": all-local).
struct Move {
  int after_tokens = 0;
  int cut = 0;  // n_layers: all-local
};

Result<std::vector<Move>> ParseMoves(const std::string& text, int layers) {
  std::vector<Move> moves;
  for (const std::string_view piece : ListItems(text)) {
    const std::string item(piece);
    const size_t colon = item.find(':');
    const std::optional<int> after_tokens =
        colon == std::string::npos ? std::nullopt : ParseInt(std::string_view(item).substr(0, colon));
    const std::string_view cut_text =
        colon == std::string::npos ? std::string_view() : std::string_view(item).substr(colon + 1);
    const std::optional<int> cut = cut_text == "local" ? std::optional<int>(layers) : ParseInt(cut_text);
    if (!after_tokens || !cut) {
      return InvalidArgument("--moves takes N:K or N:local items separated by commas, got '" + item + "'");
    }
    const Move move{.after_tokens = *after_tokens, .cut = *cut};
    if (move.after_tokens < 1 || move.cut < 0 || move.cut > layers ||
        (!moves.empty() && move.after_tokens <= moves.back().after_tokens)) {
      return InvalidArgument("--moves: token counts must be >= 1 and increasing, cuts within 0.." +
                             std::to_string(layers) + " (got '" + item + "')");
    }
    moves.push_back(move);
  }
  return moves;
}

struct Run {
  Generation generation;
  nlohmann::json cut_report;  // what crossed the cut; null when all local
};

// Runs the edge and a tail from `tails` over the prompt, until `options` end it.
Result<Run> RunPipeline(const LoadedModel& model, TailFactory& tails, const GenerateFlags& flags,
                        const GenerateOptions& options, const std::vector<int>& prompt_ids,
                        const TokenCallback& on_token) {
  const SamplingParams sampling{flags.temperature, flags.top_p, flags.seed};
  TANDEM_RETURN_IF_ERROR(sampling.Validate());
  const int seq_len = model.transformer->config().seq_len;
  const int capacity = flags.steps <= 0 ? seq_len : std::min(flags.steps, seq_len);
  const int layers = model.transformer->n_layers();
  TANDEM_ASSIGN_OR_RETURN(const std::vector<Move> moves, ParseMoves(flags.moves, layers));
  for (const Move& move : moves) {
    // A move must keep the output private: a cut before the tail's end, or all-local.
    if (flags.split.tail_end > 0 && move.cut >= flags.split.tail_end && move.cut != layers) {
      return InvalidArgument("--moves: with --tail-end " + std::to_string(flags.split.tail_end) +
                             " a move goes to a cut below it or to local (got " + std::to_string(move.cut) +
                             ")");
    }
  }
  TANDEM_ASSIGN_OR_RETURN(const DraftSpec draft_spec, ParseDraftSpec(flags.draft));
  TANDEM_ASSIGN_OR_RETURN(const int draft_tokens, scheduler::ParseDraftTokens(flags.draft_tokens));
  TANDEM_ASSIGN_OR_RETURN(const DraftModels draft_models, DraftModels::Load(draft_spec, model.transformer));
  edge_agent::GenerationDrafting drafting(draft_models, draft_tokens, capacity, /*predicted_step_ms=*/0,
                                          /*metrics=*/nullptr, SteadyClock::Instance());
  int cut_now = tails.cut();
  DraftSource drafts;
  if (draft_spec.kind != DraftKind::kNone) {
    drafts = [&](std::span<const int> context, int max_tokens) {
      if (!drafting.UseCut(cut_now).ok()) return std::vector<int>{};
      return drafting.Propose(context, max_tokens);
    };
  }
  // Each step timed and its outcome shown to the drafting's planner.
  const auto observed = [&drafting, &prompt_ids](VerifyStep inner) {
    return [&drafting, &prompt_ids, inner = std::move(inner), first = true](
               std::span<const int> tokens, std::span<const int> draft) mutable -> Result<VerifyOutcome> {
      const auto start = SteadyClock::Instance().Now();
      TANDEM_ASSIGN_OR_RETURN(VerifyOutcome outcome, inner(tokens, draft));
      drafting.Observe(static_cast<int>(draft.size()), outcome,
                       first ? -1 : ToMilliseconds(SteadyClock::Instance().Now() - start));
      first = false;
      return outcome;
    };
  };
  if (moves.empty()) {
    EdgeRunner edge(model.transformer, tails.cut(), capacity);
    TANDEM_ASSIGN_OR_RETURN(const std::unique_ptr<TailRunner> tail, tails.NewTail(capacity, sampling));
    TANDEM_ASSIGN_OR_RETURN(Generation generation, Generate(observed(SplitStep(edge, *tail)), drafts, seq_len,
                                                            prompt_ids, options, on_token));
    generation.timings.bytes_across_cut = tail->BytesSent();
    return Run{std::move(generation), tails.Report(*tail)};
  }
  const auto choice = [&](int cut) {
    return scheduler::Candidate{.tail = cut < layers ? 0 : -1, .cut = cut};
  };
  edge_agent::MovableSplit split(model.transformer, capacity, [&](const scheduler::Candidate& next) {
    return next.local() ? Result<std::unique_ptr<TailRunner>>(
                              std::make_unique<LocalTail>(model.transformer, layers, capacity, sampling))
                        : tails.NewTail(capacity, sampling, next.cut);
  });
  TANDEM_RETURN_IF_ERROR(split.Start(choice(tails.cut())));
  int generated = 0;
  size_t next_move = 0;
  const VerifyStep step = [&](std::span<const int> tokens,
                              std::span<const int> draft) -> Result<VerifyOutcome> {
    if (next_move < moves.size() && generated >= moves[next_move].after_tokens) {
      TANDEM_RETURN_IF_ERROR(split.MoveTo(choice(moves[next_move++].cut)));
      cut_now = split.choice().local() ? layers : split.choice().cut;
    }
    return split.Step(tokens, draft);
  };
  TANDEM_ASSIGN_OR_RETURN(Generation generation,
                          Generate(observed(step), drafts, seq_len, prompt_ids, options, [&](int token) {
                            ++generated;
                            return !on_token || on_token(token);
                          }));
  nlohmann::json report = tails.Report(split.tail());
  if (report.is_null()) report = nlohmann::json::object();
  report["moves"] = split.moves();
  report["final_cut"] = split.choice().local() ? layers : split.choice().cut;
  return Run{std::move(generation), std::move(report)};
}

// Parses the flags; an exit code when the command ends there.
std::optional<int> ParseGenerateFlags(std::span<const std::string> args, GenerateFlags& f) {
  f.seed = std::random_device{}();
  FlagSet flags(
      "usage: tandem generate --model M [--tokenizer T] [--prompt P] [--split K [--codec C] [--cloud "
      "tcp://HOST:PORT "
      "--cloud-key CLOUD.pub --client-key EDGE.key]] [flags]");
  f.model.Declare(flags, kModelFlagHelp);
  flags.String("tokenizer", &f.tokenizer, kTokenizerFlagHelp);
  flags.String("prompt", &f.prompt, "prompt text");
  flags.Int("steps", &f.steps, "positions to run, BOS and prompt included (llama2.c's -n; 0 = seq_len)");
  flags.Float("temperature", &f.temperature, "sampling temperature; 0 = greedy");
  flags.Float("top-p", &f.top_p, "nucleus sampling threshold in (0, 1]; 1 = off");
  flags.UInt64("seed", &f.seed, "sampling seed (random unless given; printed in --json output)");
  f.split.Declare(flags);
  flags.String("moves", &f.moves,
               "move the split mid-generation: N:K,... = after N generated tokens, cut at K (or N:local); "
               "the run replays its steps on the new side and must give the same output with fp32");
  flags.String("draft", &f.draft, kDraftFlagHelp);
  flags.String("draft-tokens", &f.draft_tokens, scheduler::kDraftTokensFlagHelp);
  flags.Bool("json", &f.json, "print one JSON object: prompt_ids, ids, text, timings");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = RequireModelAndTokenizer(flags, f.model.model); !status.ok()) {
    return Fail(kCommand, status, kExitUsage);
  }
  if (f.steps < 0) return Fail(kCommand, InvalidArgument("--steps must be >= 0"), kExitUsage);
  for (const Status& draft :
       {ParseDraftSpec(f.draft).status(), scheduler::ParseDraftTokens(f.draft_tokens).status()}) {
    if (!draft.ok()) return Fail(kCommand, draft, kExitUsage);
  }
  return std::nullopt;
}

// Prints the prompt now and each token's text as it comes (end-of-text tokens end the text, unprinted).
TokenCallback StreamText(const Tokenizer& tokenizer, const std::vector<int>& prompt_ids) {
  std::fputs(tokenizer.DecodeText(prompt_ids).c_str(), stdout);
  std::fflush(stdout);
  return [&tokenizer, previous = prompt_ids.back()](int token) mutable {
    if (tokenizer.IsEndOfText(token)) return true;  // ends the text; not part of it
    std::fputs(tokenizer.DecodeAll({previous, token}).c_str(), stdout);
    std::fflush(stdout);
    previous = token;
    return true;
  };
}

// --json: one object with the ids, the text, the seed, the split and the timings.
void PrintJson(const GenerateFlags& f, const Tokenizer& tokenizer, const std::vector<int>& prompt_ids,
               const Run& run) {
  const GenerationTimings& timings = run.generation.timings;
  nlohmann::json out;
  out["prompt_ids"] = prompt_ids;
  out["ids"] = run.generation.ids;
  out["text"] = CompletionText(tokenizer, run.generation.ids);
  out["seed"] = f.seed;
  out["kernels"] = ActiveKernels().name;
  out["split"] = f.split.split;
  out["cut"] = run.cut_report;
  out["timings"] = {{"prompt_tokens", timings.prompt_tokens},
                    {"generated_tokens", timings.generated_tokens},
                    {"prefill_ms", timings.prefill_ms},
                    {"decode_ms", timings.decode_ms},
                    {"prefill_tok_s", timings.prefill_tokens_per_second()},
                    {"decode_tok_s", timings.decode_tokens_per_second()},
                    {"bytes_across_cut", timings.bytes_across_cut},
                    {"model_steps", timings.model_steps},
                    {"tokens_per_step", timings.tokens_per_step()},
                    {"drafted_tokens", timings.drafted_tokens},
                    {"accepted_tokens", timings.kept_drafts}};
  out["draft"] = f.draft;
  std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
}

}  // namespace

int RunGenerate(std::span<const std::string> args) {
  GenerateFlags f;
  if (auto exit = ParseGenerateFlags(args, f)) return *exit;
  auto model = LoadModel(f.model, /*fingerprint=*/f.split.cloud.enabled());
  if (!model.ok()) return Fail(kCommand, model.status());
  if (Status valid = f.split.Validate(model->transformer->n_layers()); !valid.ok()) {
    return Fail(kCommand, valid, kExitUsage);
  }
  auto tokenizer =
      Tokenizer::LoadForModel(f.model.model, f.tokenizer, model->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(kCommand, tokenizer.status());

  // Connects to the cloud tail, if any, before printing anything.
  auto tails = TailFactory::Create(*model, f.split);
  if (!tails.ok()) return Fail(kCommand, tails.status());

  const std::vector<int> prompt_ids = tokenizer->Encode(f.prompt, /*add_bos=*/true, /*add_eos=*/false);
  const TokenCallback stream_text = f.json ? TokenCallback() : StreamText(*tokenizer, prompt_ids);
  const GenerateOptions options{.steps = f.steps, .stop_tokens = tokenizer->EndOfTextIds()};
  auto run = RunPipeline(*model, **tails, f, options, prompt_ids, stream_text);
  if (!run.ok()) return Fail(kCommand, run.status());
  if (f.json) {
    PrintJson(f, *tokenizer, prompt_ids, *run);
  } else {
    const GenerationTimings& timings = run->generation.timings;
    std::printf("\n");
    std::fflush(stdout);
    std::fprintf(stderr, "prefill %d tokens in %.1f ms, decode %.1f tok/s (%d tokens)\n",
                 timings.prompt_tokens, timings.prefill_ms, timings.decode_tokens_per_second(),
                 timings.generated_tokens);
  }
  return 0;
}

}  // namespace tandem::cli
