#include "tandem/edge_agent/edge_config.hpp"

#include <filesystem>
#include <fstream>

#include "tandem/engine/drafter.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/scheduler/draft_planner.hpp"

namespace tandem::edge_agent {

void EdgeConfig::Declare(FlagSet& flags) {
  model.Declare(flags, std::string(kModelFlagHelp) + ": the same weights as the cloud tail's");
  flags.String("tokenizer", &tokenizer, kTokenizerFlagHelp);
  flags.String("model-name", &model_name, "model id in the API (default: the model file's name)");
  flags.String("chat-template", &chat_template,
               "the chat template of POST /v1/chat/completions: a built-in name (llama3, llama2, mistral, "
               "chatml, phi3) or a file (Jinja, or a tokenizer_config.json); default: the model "
               "directory's (chat_template.jinja, tokenizer_config.json); a llama2.c model has none");
  cloud.Declare(flags);
  flags.String("split", &split,
               "the cut K (blocks [0,K) here, [K,L) on the tail), or auto: the planner picks the cut "
               "and codec per request from measured compute, link and tail load");
  flags.String("listen", &listen, "HOST:PORT of the REST API");
  tls.Declare(flags);
  flags.String("api-key", &api_key,
               "require 'Authorization: Bearer KEY' on every route but /healthz, /readyz");
  flags.String("api-key-file", &api_key_file, "the API key from a file (first line)");
  flags.Int("max-concurrent", &max_concurrent, "requests generating at once (one tail connection each)");
  flags.Int("max-queue", &max_queue, "requests waiting for a slot; beyond: 503 with Retry-After");
  flags.Int("max-tokens", &max_tokens, "the largest max_tokens accepted (0 = the context length)");
  flags.Int("max-body-kb", &max_body_kb, "the largest request body (KiB)");
  flags.Int("drain-timeout-s", &drain_timeout_s, "on SIGTERM/SIGINT, how long requests in flight may finish");
  flags.String("scheduler", &scheduler,
               "HOST:PORT (or http:// or https://HOST:PORT) of tandem-scheduler: auto asks it for each plan "
               "(tail, cut, codec), and plans alone while it does not answer");
  scheduler_tls.Declare(flags);
  flags.Int("scheduler-timeout-ms", &scheduler_timeout_ms, "the longest wait for the scheduler's plan");
  control_secret.Declare(flags);
  flags.String("objective", &objective,
               "what auto minimizes: ttft, per-token, or weighted:A,B (A x TTFT + B x decode time)");
  flags.Int("min-edge-blocks", &min_edge_blocks,
            "privacy floor: blocks always run here (1 keeps token ids and embeddings on the device)");
  flags.Int("max-edge-blocks", &max_edge_blocks, "edge memory budget in blocks (-1 = every block)");
  flags.String("allowed-codecs", &allowed_codecs,
               "accuracy budget: codecs auto may use, comma-separated (e.g. fp32,fp16,int8+zstd)");
  flags.Int("max-int8-blocks", &max_int8_blocks,
            "accuracy budget: int8 blocks (of --int8-blocks) auto may run here (-1 = any)");
  flags.Bool("allow-local", &allow_local,
             "auto may run every block here: when that is fastest, and when the tail is unreachable");
  flags.Bool("private-output", &private_output,
             "auto plans only private-output splits: the tail runs blocks [K,M) and returns their rows, "
             "the last blocks, the head and sampling run here, so no token or logit is on the tail");
  flags.Int("tail-end", &tail_end,
            "with --split K: private output, the tail runs [K,M) and this edge [M,L) and the head (0 = off)");
  flags.Int("replan-tokens", &replan_tokens,
            "re-plan every N tokens of a generation and move the split on a large predicted gain (0 = "
            "never)");
  flags.Float("hysteresis-gain", &hysteresis_gain,
              "switch plans only for a predicted gain of at least this fraction ...");
  flags.Int("hysteresis-ms", &hysteresis_ms, "... sustained for this long");
  flags.Int("probe-ms", &probe_ms, "interval of the link probes (PING) to the tail");
  flags.String("draft", &draft,
               std::string(kDraftFlagHelp) +
                   "; several, comma-separated: the first is the default and each "
                   "request may choose another with \"tandem\": {\"draft\": ...}");
  flags.String("draft-tokens", &draft_tokens, scheduler::kDraftTokensFlagHelp);
}

Status EdgeConfig::Validate() const {
  if (model.model.empty()) return InvalidArgument("--model is required");
  if (tokenizer.empty() && !Checkpoint::IsHuggingFacePath(model.model))
    return InvalidArgument("--tokenizer is required with a llama2.c checkpoint");
  if (max_concurrent < 1 || max_queue < 0 || max_tokens < 0 || max_body_kb < 1 || drain_timeout_s < 0) {
    return InvalidArgument(
        "--max-concurrent and --max-body-kb must be positive; --max-queue, --max-tokens and "
        "--drain-timeout-s >= 0");
  }
  if (!api_key.empty() && !api_key_file.empty()) return InvalidArgument("give --api-key or --api-key-file");
  TANDEM_RETURN_IF_ERROR(tls.Validate());
  if (min_edge_blocks < 0 || max_int8_blocks < -1 || max_edge_blocks < -1 || replan_tokens < 0 ||
      hysteresis_gain < 0 || hysteresis_gain >= 1 || hysteresis_ms < 0 || probe_ms < 10 ||
      scheduler_timeout_ms < 1) {
    return InvalidArgument(
        "--min-edge-blocks, --replan-tokens, --hysteresis-ms >= 0; --max-edge-blocks, --max-int8-blocks >= "
        "-1; --hysteresis-gain in [0, 1); --probe-ms >= 10; --scheduler-timeout-ms >= 1");
  }
  TANDEM_RETURN_IF_ERROR(scheduler::Objective::Parse(objective).status());
  TANDEM_RETURN_IF_ERROR(Codecs().status());
  if (private_output && split != "auto") {
    return InvalidArgument("--private-output is for --split auto; with --split K give --tail-end M");
  }
  if (tail_end != 0 && split == "auto") return InvalidArgument("--tail-end needs --split K");
  for (std::string_view name : SplitList(draft)) TANDEM_RETURN_IF_ERROR(ParseDraftSpec(name).status());
  TANDEM_RETURN_IF_ERROR(scheduler::ParseDraftTokens(draft_tokens).status());
  return cloud.Validate();
}

std::vector<std::string> EdgeConfig::CloudEndpoints() const {
  std::vector<std::string> endpoints;
  for (std::string_view endpoint : SplitList(cloud.endpoint)) {
    if (!endpoint.empty()) endpoints.emplace_back(endpoint);
  }
  return endpoints;
}

Result<std::vector<DraftModels>> EdgeConfig::LoadDrafters(
    const std::shared_ptr<const Transformer>& model) const {
  std::vector<DraftModels> drafters;
  for (std::string_view name : SplitList(draft)) {
    TANDEM_ASSIGN_OR_RETURN(const DraftSpec spec, ParseDraftSpec(name));
    auto loaded = DraftModels::Load(spec, model);
    if (!loaded.ok()) return loaded.status().WithContext("--draft " + spec.Name());
    drafters.push_back(std::move(*loaded));
  }
  return drafters;
}

Result<std::vector<ActivationCodec>> EdgeConfig::Codecs() const {
  std::vector<ActivationCodec> codecs;
  for (std::string_view name : SplitList(allowed_codecs)) {
    TANDEM_ASSIGN_OR_RETURN(const ActivationCodec codec, ParseActivationCodec(name));
    codecs.push_back(codec);
  }
  return codecs;
}

EdgePlannerOptions EdgeConfig::PlannerOptions() const {
  EdgePlannerOptions options{
      .constraints = {.min_edge_blocks = min_edge_blocks,
                      .max_edge_blocks = max_edge_blocks,
                      .allowed_codecs = *Codecs(),
                      .max_int8_blocks = max_int8_blocks,
                      .allow_local = allow_local,
                      .private_output = private_output},
      .objective = *scheduler::Objective::Parse(objective),
      .hysteresis = {.min_gain = hysteresis_gain, .hold = std::chrono::milliseconds(hysteresis_ms)},
      .objective_text = objective,
      .scheduler = scheduler,
      .scheduler_timeout = std::chrono::milliseconds(scheduler_timeout_ms),
      .scheduler_tls = scheduler_tls.tls};
  if (!control_secret.secret.empty()) {
    // Load() checked the secret; the id only labels the scheduler's logs, and a --listen address fit to
    // bind is a valid one (another is refused by the bind).
    auto signer = services::RequestSigner::Create(control_secret.secret, "edge@" + listen);
    if (signer.ok()) options.scheduler_signer = std::move(*signer);
  }
  return options;
}

std::string EdgeConfig::ModelName() const {
  if (!model_name.empty()) return model_name;
  const std::filesystem::path model_path = std::filesystem::path(model.model).lexically_normal();
  const std::filesystem::path named = model_path.has_filename() ? model_path : model_path.parent_path();
  return Checkpoint::IsHuggingFacePath(named.string()) ? named.filename().string() : named.stem().string();
}

Result<std::string> EdgeConfig::ReadApiKey() const {
  if (api_key_file.empty()) return api_key;
  std::ifstream in(api_key_file);
  std::string key;
  if (!in || !std::getline(in, key) || key.empty()) {
    return InvalidArgument("cannot read an API key from the first line of '" + api_key_file + "'");
  }
  return key;
}

Result<std::optional<scheduler::Candidate>> EdgeConfig::ResolveSplit(int layers,
                                                                     ActivationCodec codec) const {
  // Without a tail the edge serves every request itself: auto has nothing else to choose.
  if (CloudEndpoints().empty()) {
    if (split == "auto" || split == std::to_string(layers))
      return std::optional<scheduler::Candidate>(scheduler::Candidate{});
    return InvalidArgument("--split " + split +
                           " needs --cloud (the tail that runs blocks [K, L)); without one "
                           "the edge serves every request all-local");
  }
  if (split == "auto") return std::optional<scheduler::Candidate>();
  try {
    size_t used = 0;
    const int cut = std::stoi(split, &used);
    if (used == split.size() && cut >= 0 && cut < layers) {
      if (tail_end != 0 && (tail_end <= cut || tail_end > layers)) {
        return InvalidArgument("--tail-end must be in " + std::to_string(cut + 1) + ".." +
                               std::to_string(layers) + " with --split " + split);
      }
      // On the first --cloud tail (cloud.endpoint lists them all); the service may start it on another.
      return std::optional<scheduler::Candidate>(scheduler::Candidate{
          .tail = 0, .endpoint = CloudEndpoints().front(), .cut = cut, .end = tail_end, .codec = codec});
    }
    if (used == split.size() && cut == layers)
      return std::optional<scheduler::Candidate>(scheduler::Candidate{});
  } catch (const std::exception&) {
  }
  return InvalidArgument("--split must be auto or a block in 0.." + std::to_string(layers) + ", got '" +
                         split + "'");
}

}  // namespace tandem::edge_agent
