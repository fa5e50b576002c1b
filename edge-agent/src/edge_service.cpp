#include "tandem/edge/edge_service.hpp"

#include <openssl/crypto.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "tandem/base/fair_semaphore.hpp"
#include "tandem/base/log.hpp"
#include "tandem/base/retry.hpp"
#include "tandem/common/compute_profile.hpp"
#include "tandem/common/model_loader.hpp"
#include "tandem/common/tokenizer.hpp"
#include "tandem/edge/cloud_flags.hpp"
#include "tandem/edge/cloud_pool.hpp"
#include "tandem/edge/completion_request.hpp"
#include "tandem/edge/edge_planner.hpp"
#include "tandem/edge/link_monitor.hpp"
#include "tandem/edge/movable_split.hpp"
#include "tandem/edge/tail_set.hpp"
#include "tandem/services/health.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/service_main.hpp"

namespace tandem::edge {
namespace {

using nlohmann::json;
using services::HttpRequest;
using services::HttpResponse;
using Clock = std::chrono::steady_clock;

// The planner's accuracy budget counts the edge's quantized first blocks, int8 or int4 (the blocks the
// flags quantize beyond them are the tail's business).
int QuantizedEdgeBlocks(const TransformerOptions& options) {
  return std::max(options.int8_blocks.last, options.int4_blocks.last);
}

using services::kExitFailure;
using services::kExitUsage;

// Logs the error line and returns the exit code.
int Fail(const Status& status, int exit_code = kExitFailure) {
  return services::FailService("edge", status, exit_code);
}
// Moves off failed tails one generation may make before it gives up: enough for a replica that dies
// during the replay onto it, not so many that a broken fleet holds requests for long.
constexpr int kMaxFailovers = 3;
// The pause before asking a busy tail again when no other choice exists.
constexpr BackoffPolicy kBusyRetry{.initial = std::chrono::milliseconds(50),
                                   .max = std::chrono::milliseconds(400)};

// Every setting of tandem-edge: a flag, a TANDEM_* environment variable and its help, declared once.
struct EdgeConfig {
  ModelFlags model;
  std::string tokenizer;
  std::string model_name;  // what /v1/models lists; default: the model file's stem
  CloudFlags cloud;
  std::string split = "auto";
  std::string listen = "127.0.0.1:8080";
  std::string api_key;
  std::string api_key_file;
  int max_concurrent = 2;
  int max_queue = 8;
  int max_tokens = 0;
  int max_body_kb = 256;
  int drain_timeout_s = 20;
  // The planner (--split auto).
  std::string scheduler;
  int scheduler_timeout_ms = 300;
  std::string objective = "weighted:1,1";
  int min_edge_blocks = 1;
  int max_edge_blocks = -1;
  std::string allowed_codecs = "fp32";
  int max_int8_blocks = -1;
  bool allow_local = true;
  bool private_output = false;
  int tail_end = 0;
  int replan_tokens = 16;
  float hysteresis_gain = 0.1f;
  int hysteresis_ms = 500;
  int probe_ms = 200;

  void Declare(FlagSet& flags) {
    model.Declare(flags, std::string(kModelFlagHelp) + ": the same weights as the cloud tail's");
    flags.String("tokenizer", &tokenizer, kTokenizerFlagHelp);
    flags.String("model-name", &model_name, "model id in the API (default: the model file's name)");
    cloud.Declare(flags);
    flags.String("split", &split,
                 "the cut K (blocks [0,K) here, [K,L) on the tail), or auto: the planner picks the cut "
                 "and codec per request from measured compute, link and tail load");
    flags.String("listen", &listen, "HOST:PORT of the REST API");
    flags.String("api-key", &api_key,
                 "require 'Authorization: Bearer KEY' on every route but /healthz, /readyz");
    flags.String("api-key-file", &api_key_file, "the API key from a file (first line)");
    flags.Int("max-concurrent", &max_concurrent, "requests generating at once (one tail connection each)");
    flags.Int("max-queue", &max_queue, "requests waiting for a slot; beyond: 503 with Retry-After");
    flags.Int("max-tokens", &max_tokens, "the largest max_tokens accepted (0 = the context length)");
    flags.Int("max-body-kb", &max_body_kb, "the largest request body (KiB)");
    flags.Int("drain-timeout-s", &drain_timeout_s,
              "on SIGTERM/SIGINT, how long requests in flight may finish");
    flags.String("scheduler", &scheduler,
                 "HOST:PORT of tandem-scheduler: auto asks it for each plan (tail, cut, codec), and plans "
                 "alone while it does not answer");
    flags.Int("scheduler-timeout-ms", &scheduler_timeout_ms, "the longest wait for the scheduler's plan");
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
    flags.Int(
        "tail-end", &tail_end,
        "with --split K: private output, the tail runs [K,M) and this edge [M,L) and the head (0 = off)");
    flags.Int("replan-tokens", &replan_tokens,
              "re-plan every N tokens of a generation and move the split on a large predicted gain (0 = "
              "never)");
    flags.Float("hysteresis-gain", &hysteresis_gain,
                "switch plans only for a predicted gain of at least this fraction ...");
    flags.Int("hysteresis-ms", &hysteresis_ms, "... sustained for this long");
    flags.Int("probe-ms", &probe_ms, "interval of the link probes (PING) to the tail");
  }

  Status Validate() const {
    if (model.model.empty()) return InvalidArgument("--model is required");
    if (tokenizer.empty() && !Checkpoint::IsHuggingFacePath(model.model))
      return InvalidArgument("--tokenizer is required with a llama2.c checkpoint");
    if (CloudEndpoints().empty())
      return InvalidArgument("--cloud is required (the tail that runs blocks [K, L))");
    if (max_concurrent < 1 || max_queue < 0 || max_tokens < 0 || max_body_kb < 1 || drain_timeout_s < 0) {
      return InvalidArgument(
          "--max-concurrent and --max-body-kb must be positive; --max-queue, --max-tokens and "
          "--drain-timeout-s >= 0");
    }
    if (!api_key.empty() && !api_key_file.empty()) return InvalidArgument("give --api-key or --api-key-file");
    if (min_edge_blocks < 0 || max_int8_blocks < -1 || max_edge_blocks < -1 || replan_tokens < 0 ||
        hysteresis_gain < 0 || hysteresis_gain >= 1 || hysteresis_ms < 0 || probe_ms < 10 ||
        scheduler_timeout_ms < 1) {
      return InvalidArgument(
          "--min-edge-blocks, --replan-tokens, --hysteresis-ms >= 0; --max-edge-blocks, --max-int8-blocks >= "
          "-1; --hysteresis-gain in [0, 1); --probe-ms >= 10; --scheduler-timeout-ms >= 1");
    }
    TANDEM_RETURN_IF_ERROR(sched::Objective::Parse(objective).status());
    TANDEM_RETURN_IF_ERROR(Codecs().status());
    if (private_output && split != "auto") {
      return InvalidArgument("--private-output is for --split auto; with --split K give --tail-end M");
    }
    if (tail_end != 0 && split == "auto") return InvalidArgument("--tail-end needs --split K");
    return cloud.Validate();
  }

  // --cloud: one endpoint, or several separated by commas (replicas share the server key pair).
  std::vector<std::string> CloudEndpoints() const {
    std::vector<std::string> endpoints;
    for (std::string_view endpoint : SplitList(cloud.endpoint)) {
      if (!endpoint.empty()) endpoints.emplace_back(endpoint);
    }
    return endpoints;
  }

  Result<std::vector<ActivationCodec>> Codecs() const {
    std::vector<ActivationCodec> codecs;
    for (std::string_view name : SplitList(allowed_codecs)) {
      TANDEM_ASSIGN_OR_RETURN(const ActivationCodec codec, ParseActivationCodec(name));
      codecs.push_back(codec);
    }
    return codecs;
  }

  EdgePlannerOptions PlannerOptions() const {
    return {.constraints = {.min_edge_blocks = min_edge_blocks,
                            .max_edge_blocks = max_edge_blocks,
                            .allowed_codecs = *Codecs(),
                            .max_int8_blocks = max_int8_blocks,
                            .allow_local = allow_local,
                            .private_output = private_output},
            .objective = *sched::Objective::Parse(objective),
            .hysteresis = {.min_gain = hysteresis_gain, .hold = std::chrono::milliseconds(hysteresis_ms)},
            .objective_text = objective,
            .scheduler = scheduler,
            .scheduler_timeout = std::chrono::milliseconds(scheduler_timeout_ms)};
  }
};

// The edge's Prometheus metrics.
struct EdgeMetrics {
  explicit EdgeMetrics(prometheus::Registry& registry)
      : requests(prometheus::BuildCounter()
                     .Name("tandem_edge_requests_total")
                     .Help("HTTP requests by route and status")
                     .Register(registry)),
        ttft(prometheus::BuildHistogram()
                 .Name("tandem_edge_ttft_seconds")
                 .Help("Time to first token: request admitted to first token")
                 .Register(registry)
                 .Add({}, prometheus::Histogram::BucketBoundaries{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                                                  2.5, 5, 10})),
        inter_token(prometheus::BuildHistogram()
                        .Name("tandem_edge_inter_token_seconds")
                        .Help("Time between consecutive tokens of a completion")
                        .Register(registry)
                        .Add({}, prometheus::Histogram::BucketBoundaries{0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                                         0.025, 0.05, 0.1, 0.25, 0.5})),
        tokens(prometheus::BuildCounter()
                   .Name("tandem_edge_tokens_total")
                   .Help("Tokens: prompt (in) and completion (out)")
                   .Register(registry)),
        prompt_tokens(tokens.Add({{"direction", "in"}})),
        completion_tokens(tokens.Add({{"direction", "out"}})),
        bytes(prometheus::BuildCounter()
                  .Name("tandem_edge_wire_bytes_total")
                  .Help("Bytes to and from the cloud tail: activations before the codec (float32), after it "
                        "(payload), and whole messages sent and received")
                  .Register(registry)),
        float32_bytes(bytes.Add({{"stage", "float32"}})),
        payload_bytes(bytes.Add({{"stage", "payload"}})),
        sent_bytes(bytes.Add({{"stage", "sent"}})),
        received_bytes(bytes.Add({{"stage", "received"}})),
        cut(prometheus::BuildGauge()
                .Name("tandem_edge_cut")
                .Help("Cut K of the latest plan (K = layers: all-local)")
                .Register(registry)
                .Add({})),
        rtt(prometheus::BuildGauge()
                .Name("tandem_edge_rtt_seconds")
                .Help("Estimated round trip to the tail without its compute (EWMA of PING probes)")
                .Register(registry)
                .Add({})),
        bandwidth(prometheus::BuildGauge()
                      .Name("tandem_edge_bandwidth_bytes_per_second")
                      .Help("Estimated bandwidth to the tail (EWMA over real transfers; 0 = not measured)")
                      .Register(registry)
                      .Add({})),
        link_up(prometheus::BuildGauge()
                    .Name("tandem_edge_link_up")
                    .Help("1 while the tail answers probes")
                    .Register(registry)
                    .Add({})),
        plans(prometheus::BuildCounter()
                  .Name("tandem_edge_plans_total")
                  .Help("Requests planned, by choice (split or local)")
                  .Register(registry)),
        moves(prometheus::BuildCounter()
                  .Name("tandem_edge_split_moves_total")
                  .Help("Splits moved mid-generation, by reason (replan: a predicted gain; fallback: the "
                        "tail failed and the edge finished locally)")
                  .Register(registry)),
        failovers(prometheus::BuildCounter()
                      .Name("tandem_edge_failovers_total")
                      .Help("Generations moved off a failed tail, by destination (tail: replayed on "
                            "another tail; local: finished on the edge)")
                      .Register(registry)),
        circuit_opened(prometheus::BuildCounter()
                           .Name("tandem_edge_circuit_opened_total")
                           .Help("Times a tail's circuit breaker opened (no work sent to it for a cool-down)")
                           .Register(registry)),
        step_resends(prometheus::BuildCounter()
                         .Name("tandem_edge_step_resends_total")
                         .Help("Steps sent to a tail again for want of a reply")
                         .Register(registry)
                         .Add({})),
        queue_depth(prometheus::BuildGauge()
                        .Name("tandem_edge_queue_depth")
                        .Help("Requests admitted and waiting for a generation slot")
                        .Register(registry)
                        .Add({})),
        active(prometheus::BuildGauge()
                   .Name("tandem_edge_active_generations")
                   .Help("Requests generating now")
                   .Register(registry)
                   .Add({})),
        connections(prometheus::BuildGauge()
                        .Name("tandem_edge_cloud_connections")
                        .Help("Connections to the cloud tail with a completed handshake")
                        .Register(registry)
                        .Add({})) {
    // Every label value known up front starts at 0: a series born at its first event has no earlier
    // sample, so rate() and increase() would miss that event and dashboards show "No data" until then.
    for (const char* choice : {"split", "local"}) plans.Add({{"choice", choice}});
    for (const char* reason : {"replan", "fallback"}) moves.Add({{"reason", reason}});
    for (const char* to : {"tail", "local"}) failovers.Add({{"to", to}});
  }

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Histogram& ttft;
  prometheus::Histogram& inter_token;
  prometheus::Family<prometheus::Counter>& tokens;
  prometheus::Counter& prompt_tokens;
  prometheus::Counter& completion_tokens;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Counter& float32_bytes;
  prometheus::Counter& payload_bytes;
  prometheus::Counter& sent_bytes;
  prometheus::Counter& received_bytes;
  prometheus::Gauge& cut;
  prometheus::Gauge& rtt;
  prometheus::Gauge& bandwidth;
  prometheus::Gauge& link_up;
  prometheus::Family<prometheus::Counter>& plans;
  prometheus::Family<prometheus::Counter>& moves;
  prometheus::Family<prometheus::Counter>& failovers;
  prometheus::Family<prometheus::Counter>& circuit_opened;
  prometheus::Counter& step_resends;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& active;
  prometheus::Gauge& connections;
};

HttpResponse Error(const ApiError& error) {
  HttpResponse response =
      services::ErrorResponse(error.status, error.message, error.type, error.code, error.param);
  // Every 503 is worth retrying (busy, tail unreachable for now, shutting down): say when.
  if (error.status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

// Counts a request in flight and releases it on scope exit.
class Admission {
 public:
  Admission(std::atomic<int>& count, int limit) : count_(count), admitted_(++count_ <= limit) {}
  ~Admission() { --count_; }
  bool admitted() const { return admitted_; }

 private:
  std::atomic<int>& count_;
  bool admitted_;
};

// One of the --max-concurrent generation slots, released with the last reference.
class GenerationSlot {
 public:
  explicit GenerationSlot(FairSemaphore& slots) : slots_(slots) {}
  ~GenerationSlot() { slots_.Release(); }
  GenerationSlot(const GenerationSlot&) = delete;
  GenerationSlot& operator=(const GenerationSlot&) = delete;

 private:
  FairSemaphore& slots_;
};

// What a request holds from admission to its end: its slot, its first choice, and its tail connections
// (one per tail it used; returned to their pools at the end).
struct Prepared {
  std::shared_ptr<GenerationSlot> slot;
  sched::Candidate first;
  std::map<std::string, std::unique_ptr<CloudLease>> leases;
};

// What one completion produced.
struct Completion {
  std::string text;
  std::string finish_reason = "length";
  int prompt_tokens = 0;
  int completion_tokens = 0;
  double ttft_ms = 0;
  double decode_tokens_per_second = 0;
  RemoteTailStats wire;  // every tail's, summed over moves
  uint64_t seed = 0;
  sched::Candidate plan;    // the first choice, with its predictions
  sched::Candidate choice;  // where the split ended
  int moves = 0;
  json move_log = json::array();  // each move: when (ms since admission), where to, why
};

// Text pieces as they become final: a stop string can only be ruled out once enough text follows, so the
// last (longest stop - 1) bytes wait.
class StopScanner {
 public:
  explicit StopScanner(const std::vector<std::string>& stops) : stops_(stops) {
    for (const auto& stop : stops_) hold_ = std::max(hold_, stop.size() - 1);
  }
  // Adds a piece; returns the text now final, and sets `stopped` when a stop string matched.
  std::string Add(const std::string& piece, bool& stopped) {
    text_ += piece;
    size_t end = text_.size();
    for (const auto& stop : stops_) {
      // No match can start in text already emitted: the held-back tail is longer than any stop prefix.
      const size_t at = text_.find(stop, emitted_);
      if (at != std::string::npos && at < end) {
        end = at;
        stopped = true;
      }
    }
    if (!stopped) end = text_.size() > hold_ ? std::max(emitted_, text_.size() - hold_) : emitted_;
    std::string out = text_.substr(emitted_, end - emitted_);
    emitted_ = end;
    if (stopped) text_.resize(end);
    return out;
  }
  // The rest once generation ended without a stop match.
  std::string Flush() {
    std::string out = text_.substr(emitted_);
    emitted_ = text_.size();
    return out;
  }
  const std::string& text() const { return text_; }

 private:
  const std::vector<std::string>& stops_;
  size_t hold_ = 0;
  std::string text_;
  size_t emitted_ = 0;
};

class EdgeService {
 public:
  // `fixed`: the choice of --split K; nullopt for auto, which plans with `edge_profile`.
  EdgeService(const EdgeConfig& config, LoadedModel model, Tokenizer tokenizer, CloudOptions cloud,
              std::optional<sched::Candidate> fixed, ComputeProfile edge_profile,
              std::shared_ptr<prometheus::Registry> registry)
      : config_(config),
        model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        layers_(model_.transformer->n_layers()),
        fixed_(std::move(fixed)),
        registry_(std::move(registry)),
        metrics_(*registry_),
        tails_(cloud, model_.Describe(), config.max_concurrent,
               {.probe_interval = std::chrono::milliseconds(config.probe_ms)}),
        primary_(*tails_.Get(config.CloudEndpoints().front())),
        slots_(config.max_concurrent) {
    for (const std::string& endpoint : config.CloudEndpoints()) {
      tails_.Get(endpoint);
      metrics_.circuit_opened.Add({{"cloud", endpoint}});  // at 0, as in EdgeMetrics
    }
    // A directory's name ("Qwen2.5-0.5B/" too), or a file's without its extension.
    const std::filesystem::path model_path = std::filesystem::path(config.model.model).lexically_normal();
    const std::filesystem::path named = model_path.has_filename() ? model_path : model_path.parent_path();
    model_name_ = !config.model_name.empty()          ? config.model_name
                  : Checkpoint::IsHuggingFacePath(named.string()) ? named.filename().string()
                                                                  : named.stem().string();
    const ModelConfig& shape = model_.checkpoint->config();
    limits_.max_tokens_cap =
        config.max_tokens > 0 ? std::min(config.max_tokens, shape.seq_len) : shape.seq_len;
    if (!fixed_) {
      const int64_t kv_dim = shape.kv_dim();
      planner_ = std::make_unique<EdgePlanner>(
          ModelShape{.fingerprint = std::to_string(model_.fingerprint),
                     .n_layers = layers_,
                     .dim = shape.dim,
                     .kv_bytes_per_position_per_block = 2 * kv_dim * 4,
                     .edge_int8_blocks = QuantizedEdgeBlocks(model_.transformer->options())},
          std::move(edge_profile), tails_, config.PlannerOptions(), SteadyClock::Instance());
    }
    metrics_.cut.Set(fixed_ ? CutOf(*fixed_) : 0);
    if (planner_) {
      refresher_ =
          std::jthread([this, interval = std::chrono::milliseconds(config.probe_ms)](std::stop_token stop) {
            std::mutex mutex;
            std::condition_variable_any wake;  // only a stop request wakes it early
            std::unique_lock lock(mutex);
            while (!wake.wait_for(lock, stop, interval, [&stop] { return stop.stop_requested(); })) {
              planner_->Refresh();
            }
          });
    }
  }

  // Ready while requests can be served: through the tail, or all-local when the planner may fall back.
  bool Ready() const { return !draining_.load() && (tails_.connected() > 0 || LocalFallback()); }
  void BeginDrain() { draining_ = true; }

  std::vector<services::Route> Routes(const std::string& api_key) {
    std::vector<services::Route> routes = {
        {"POST", "/v1/completions", [this](const HttpRequest& r) { return Completions(r); }},
        {"GET", "/v1/models", [this](const HttpRequest& r) { return Models(r); }},
        {"GET", "/v1/plan", [this](const HttpRequest& r) { return Plan(r); }},
    };
    for (auto& route : services::HealthRoutes([this] { return Ready(); }, registry_)) {
      if (route.path == "/metrics") {
        auto inner = std::move(route.handler);
        route.handler = [this, inner](const HttpRequest& r) {
          metrics_.connections.Set(tails_.connected());
          const sched::LinkEstimate link = primary_.link.Estimate();
          metrics_.rtt.Set(link.rtt_ms / 1000);
          metrics_.bandwidth.Set(link.bandwidth_bytes_per_ms * 1000);
          metrics_.link_up.Set(link.up ? 1 : 0);
          return inner(r);
        };
      }
      routes.push_back(std::move(route));
    }
    for (auto& route : routes) {
      const bool open = route.path == "/healthz" || route.path == "/readyz";
      route.handler = [this, api_key = open ? std::string() : api_key, path = route.path,
                       inner = std::move(route.handler)](const HttpRequest& request) {
        HttpResponse response =
            api_key.empty() || Authorized(request, api_key)
                ? inner(request)
                : services::ErrorResponse(401, "a valid 'Authorization: Bearer <key>' header is required",
                                          "invalid_request_error", "invalid_api_key");
        metrics_.requests.Add({{"route", path}, {"status", std::to_string(response.status)}}).Increment();
        return response;
      };
    }
    return routes;
  }

 private:
  static bool Authorized(const HttpRequest& request, const std::string& key) {
    const std::string* header = request.Header("authorization");
    const std::string expected = "Bearer " + key;
    if (header == nullptr || header->size() != expected.size()) return false;
    // Constant time: how many leading bytes match must not show in the timing.
    return CRYPTO_memcmp(header->data(), expected.data(), expected.size()) == 0;
  }

  HttpResponse Models(const HttpRequest&) {
    return {
        .body =
            json{{"object", "list"},
                 {"data",
                  json::array(
                      {{{"id", model_name_}, {"object", "model"}, {"created", 0}, {"owned_by", "tandem"}}})}}
                .dump()};
  }

  HttpResponse Plan(const HttpRequest&) {
    // The top-level figures are the first --cloud tail's; `planner.tails` has every tail's.
    json body = {{"cloud", primary_.pool.endpoint()},
                 {"split", config_.split},
                 {"layers", layers_},
                 {"connections", {{"ready", primary_.pool.connected()}, {"size", primary_.pool.size()}}},
                 {"last_error", primary_.pool.last_error()}};
    if (fixed_) {
      body["cut"] = CutOf(*fixed_);
      body["codec"] = fixed_->local() ? "" : fixed_->codec.Name();
    } else {
      body["planner"] = planner_->Describe();
      const json& current = body["planner"].contains("current") ? body["planner"]["current"] : json();
      body["cut"] = current.is_null() ? json() : current["cut"];
      body["codec"] = current.is_null() ? json() : current["codec"];
    }
    const sched::LinkEstimate link = primary_.link.Estimate();
    body["estimates"] = {{"link_up", link.up},
                         {"rtt_ms", link.rtt_ms},
                         {"bandwidth_mbit_s", link.bandwidth_bytes_per_ms * 8 / 1000}};
    return {.body = body.dump()};
  }

  HttpResponse Completions(const HttpRequest& http) {
    auto parsed = ParseCompletionRequest(http.body, limits_);
    if (!parsed.ok()) return Error(parsed.error());
    auto request = std::make_shared<CompletionRequest>(std::move(*parsed));
    if (!request->model.empty() && request->model != model_name_) {
      return Error({.status = 404,
                    .message = "model '" + request->model + "' is not served here; GET /v1/models",
                    .code = "model_not_found",
                    .param = "model"});
    }
    if (request->split && (config_.private_output || config_.tail_end > 0)) {
      return Error({.message =
                        "this edge keeps outputs private (--private-output, --tail-end): 'tandem.split' "
                        "is not accepted",
                    .code = "invalid_value",
                    .param = "tandem.split"});
    }
    if (request->split && request->split->cut > layers_) {
      return Error(
          {.message = "'tandem.split' must be a block in 0.." + std::to_string(layers_) + " or \"local\"",
           .code = "invalid_value",
           .param = "tandem.split"});
    }
    auto ids = std::make_shared<std::vector<int>>(tokenizer_.Encode(request->prompt, true, false));
    const int positions = static_cast<int>(ids->size()) + request->max_tokens - 1;
    const int seq_len = model_.checkpoint->config().seq_len;
    if (positions > seq_len) {
      return Error({.message = "the prompt (" + std::to_string(ids->size()) +
                               " tokens with BOS) plus max_tokens (" + std::to_string(request->max_tokens) +
                               ") exceeds the context length of " + std::to_string(seq_len),
                    .code = "context_length_exceeded",
                    .param = "max_tokens"});
    }
    if (draining_.load()) {
      return Error({.status = 503,
                    .message = "the edge is shutting down",
                    .type = "server_error",
                    .code = "shutting_down"});
    }
    auto admission = std::make_shared<Admission>(admitted_, config_.max_concurrent + config_.max_queue);
    if (!admission->admitted()) {
      return Error({.status = 503,
                    .message = "all generation slots and the queue are full",
                    .type = "server_error",
                    .code = "queue_full"});
    }
    auto slot = AcquireSlot();
    if (auto* error = std::get_if<ApiError>(&slot)) return Error(*error);
    // Planned, and the chosen tail's connection leased, before a stream starts: a failure is still a proper
    // HTTP status.
    auto prepared = Prepare(*request, static_cast<int>(ids->size()));
    if (auto* error = std::get_if<ApiError>(&prepared)) return Error(*error);
    auto held = std::get<std::shared_ptr<Prepared>>(std::move(prepared));
    held->slot = std::get<std::shared_ptr<GenerationSlot>>(std::move(slot));
    const std::string id = "cmpl-" + http.request_id;
    if (!request->stream) {
      auto completion = Run(*request, *ids, http.request_id, *held, [](const std::string&) { return true; });
      if (auto* error = std::get_if<ApiError>(&completion)) return Error(*error);
      return {.body = CompletionBody(id, std::get<Completion>(completion)).dump()};
    }
    HttpResponse response{.content_type = "text/event-stream"};
    response.headers.emplace_back("Cache-Control", "no-cache");
    response.stream = [this, request, ids, admission, held, id,
                       request_id = http.request_id](services::ResponseStream& stream) {
      const auto event = [&stream](const json& body) {
        return stream.Write("data: " + body.dump() + "\n\n");
      };
      auto completion = Run(*request, *ids, request_id, *held,
                            [&](const std::string& piece) { return event(Chunk(id, piece, nullptr)); });
      if (auto* error = std::get_if<ApiError>(&completion)) {
        event(json{{"error",
                    {{"message", error->message},
                     {"type", error->type},
                     {"code", error->code},
                     {"param", nullptr}}}});
      } else {
        json last = CompletionBody(id, std::get<Completion>(completion));
        last["choices"][0]["text"] = "";
        event(last);
      }
      stream.Write("data: [DONE]\n\n");
    };
    return response;
  }

  json Chunk(const std::string& id, const std::string& text, const json& finish_reason) const {
    return {{"id", id},
            {"object", "text_completion"},
            {"created", static_cast<int64_t>(std::time(nullptr))},
            {"model", model_name_},
            {"choices",
             json::array(
                 {{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}}})}};
  }

  json CompletionBody(const std::string& id, const Completion& completion) const {
    json body = Chunk(id, completion.text, completion.finish_reason);
    body["usage"] = {{"prompt_tokens", completion.prompt_tokens},
                     {"completion_tokens", completion.completion_tokens},
                     {"total_tokens", completion.prompt_tokens + completion.completion_tokens}};
    body["tandem"] = {{"cloud", completion.choice.endpoint},
                      {"cut", CutOf(completion.choice)},
                      {"tail_end", TailEndOf(completion.choice)},
                      {"codec", completion.choice.local() ? "" : completion.choice.codec.Name()},
                      {"moves", completion.moves},
                      {"move_log", completion.move_log},
                      {"plan",
                       {{"cut", CutOf(completion.plan)},
                        {"codec", completion.plan.local() ? "" : completion.plan.codec.Name()},
                        {"predicted_ttft_ms", completion.plan.prefill_ms},
                        {"predicted_token_ms", completion.plan.decode_ms}}},
                      {"seed", completion.seed},
                      {"bytes_sent", completion.wire.wire_bytes_sent},
                      {"bytes_received", completion.wire.wire_bytes_received},
                      {"activation_bytes_float32", completion.wire.raw_bytes},
                      {"activation_bytes_payload", completion.wire.payload_bytes},
                      {"ttft_ms", completion.ttft_ms},
                      {"tokens_per_second", completion.decode_tokens_per_second}};
    return body;
  }

  // One of --max-concurrent generation slots, waiting up to the cloud timeout for one to free up.
  std::variant<std::shared_ptr<GenerationSlot>, ApiError> AcquireSlot() {
    metrics_.queue_depth.Increment();
    const bool acquired = slots_.AcquireFor(std::chrono::milliseconds(config_.cloud.timeout_ms));
    metrics_.queue_depth.Decrement();
    if (acquired) return std::make_shared<GenerationSlot>(slots_);
    return ApiError{.status = 503,
                    .message = "no generation slot became free within " +
                               std::to_string(config_.cloud.timeout_ms) + " ms",
                    .type = "server_error",
                    .code = "queue_timeout"};
  }

  // A connection to `tail` for one generation: waits for a free one while the tail has any, up to the
  // cloud timeout; nullptr when none is up.
  std::unique_ptr<CloudLease> Lease(TailLink& tail) {
    const bool any = tail.pool.connected() > 0;
    auto connection = tail.pool.Acquire(any ? std::chrono::milliseconds(config_.cloud.timeout_ms)
                                            : std::chrono::milliseconds(0));
    return connection ? std::make_unique<CloudLease>(tail.pool, std::move(connection)) : nullptr;
  }

  // The request's first choice and, for a split, a leased connection to its tail. A tail that cannot be
  // reached turns an auto plan all-local (when allowed); otherwise the request gets 503.
  std::variant<std::shared_ptr<Prepared>, ApiError> Prepare(const CompletionRequest& request,
                                                            int prompt_tokens) {
    const auto unavailable = [](std::string message) {
      return ApiError{.status = 503,
                      .message = std::move(message),
                      .type = "server_error",
                      .code = "upstream_unavailable"};
    };
    auto first = FirstChoice(request, prompt_tokens);
    if (!first.ok()) return unavailable(first.status().message());
    auto prepared = std::make_shared<Prepared>();
    if (!first->local()) {
      TailLink* tail = tails_.Get(first->endpoint);
      std::unique_ptr<CloudLease> lease = tail != nullptr ? Lease(*tail) : nullptr;
      if (lease) {
        prepared->leases[first->endpoint] = std::move(lease);
      } else if (LocalFallback() && !request.split) {
        first = sched::Candidate{};
      } else {
        const std::string reason = tail != nullptr ? tail->pool.last_error() : "too many tails";
        return unavailable("the cloud tail is not reachable: " +
                           (reason.empty() ? std::string("no handshake with it yet") : reason));
      }
    }
    prepared->first = *first;
    return prepared;
  }

  // Whether auto may finish requests all-local when the tail is unreachable or slow.
  bool LocalFallback() const {
    return !fixed_ && config_.allow_local &&
           (config_.max_edge_blocks < 0 || config_.max_edge_blocks >= layers_);
  }
  int CutOf(const sched::Candidate& choice) const { return choice.local() ? layers_ : choice.cut; }
  // Where the tail's blocks end: L, or with private output the first block the edge runs again.
  int TailEndOf(const sched::Candidate& choice) const {
    return choice.private_output() ? choice.end : layers_;
  }
  static bool TailFailed(const Status& status) {
    return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded ||
           status.code() == StatusCode::kResourceExhausted;
  }

  // Opens the tail side of a choice for one request: a session on a connection leased to its tail (kept
  // for the rest of the request), or all-local.
  MovableSplit::TailOpener TailOpener(Prepared& prepared, SamplingParams sampling, int positions) {
    return [this, &prepared, sampling,
            positions](const sched::Candidate& choice) -> Result<std::unique_ptr<TailRunner>> {
      if (choice.local()) {
        return std::unique_ptr<TailRunner>(
            std::make_unique<LocalTail>(model_.transformer, layers_, positions, sampling));
      }
      TailLink* link = tails_.Get(choice.endpoint);
      if (link == nullptr) return Unavailable("too many tails to add " + choice.endpoint);
      // The planner only picks a tail whose breaker is open when no other is left (see PlanningEstimate);
      // a half-open breaker's one trial is this request.
      (void)link->breaker.Allow();
      std::unique_ptr<CloudLease>& lease = prepared.leases[choice.endpoint];
      if (!lease) lease = Lease(*link);
      if (!lease) return Unavailable("no connection to the cloud tail at " + choice.endpoint);
      // A wait for this tail ends as soon as its link is given up, not at --timeout-ms.
      lease->connection().set_liveness([link] { return link->link.Estimate().up; });
      TANDEM_ASSIGN_OR_RETURN(
          std::unique_ptr<RemoteTail> tail,
          RemoteTail::Open(lease->connection(), {.cut = choice.cut,
                                                 .codec = choice.codec,
                                                 .sampling = sampling,
                                                 .max_positions = static_cast<uint32_t>(positions),
                                                 .end_block = choice.end}));
      tail->set_step_observer([link](int64_t bytes, double round_trip_ms, double compute_ms) {
        link->link.RecordTransfer(bytes, round_trip_ms, compute_ms);
      });
      if (!choice.private_output()) return std::unique_ptr<TailRunner>(std::move(tail));
      // Private output: the tail's rows come back to the last blocks, the head and the sampler here.
      return std::unique_ptr<TailRunner>(std::make_unique<UShapedTail>(
          std::move(tail), std::make_unique<LocalTail>(model_.transformer, choice.end, positions, sampling)));
    };
  }

  // A tail failed a request's step: its circuit breaker counts the failure, and when the tail is
  // unreachable its link reads as down until a probe is answered again. A busy or slow tail is not down:
  // the probes tell whether a silent one is.
  void Penalize(const std::string& endpoint, const Status& failure) {
    TailLink* tail = tails_.Find(endpoint);
    if (tail == nullptr) return;
    if (failure.code() == StatusCode::kUnavailable) tail->link.MarkDown();
    if (tail->breaker.RecordFailure()) {
      metrics_.circuit_opened.Add({{"cloud", endpoint}}).Increment();
      Log(LogLevel::kWarn, "edge", "circuit breaker opened: no work goes to the tail for a while",
          {{"cloud", endpoint}, {"error", failure.message()}});
    }
  }

  // Re-plans mid-generation: moves when another choice is predicted to finish the rest sooner, replay
  // included, by the hysteresis margin. A failed move leaves the split where it was.
  bool MaybeMove(MovableSplit& split, int remaining, const std::string& request_id) {
    auto advice = planner_->AdviseMove(split.choice(), split.positions(), remaining);
    if (!advice.ok() || advice->best.SameChoice(split.choice()) ||
        advice->move_ms >= advice->stay_ms * (1 - config_.hysteresis_gain)) {
      return false;
    }
    const std::string from = split.choice().Describe();
    if (Status moved = split.MoveTo(advice->best); !moved.ok()) {
      Log(LogLevel::kWarn, "edge", "split move failed; staying",
          {{"request_id", request_id}, {"to", advice->best.Describe()}, {"error", moved.message()}});
      return false;
    }
    metrics_.moves.Add({{"reason", "replan"}}).Increment();
    Log(LogLevel::kInfo, "edge", "split moved",
        {{"request_id", request_id},
         {"from", from},
         {"to", advice->best.Describe()},
         {"predicted_stay_ms", std::to_string(advice->stay_ms)},
         {"predicted_move_ms", std::to_string(advice->move_ms)}});
    return true;
  }

  // The first choice of a request: its own override, the fixed one, or the planner's.
  Result<sched::Candidate> FirstChoice(const CompletionRequest& request, int prompt_tokens) {
    if (request.split) {
      if (request.split->cut < 0 || request.split->cut == layers_) return sched::Candidate{};
      return sched::Candidate{.tail = 0,
                              .endpoint = primary_.pool.endpoint(),
                              .cut = request.split->cut,
                              .codec = request.split->codec};
    }
    if (fixed_) return *fixed_;
    return planner_->Choose(prompt_tokens, request.max_tokens);
  }

  // Generates one completion; `emit` gets text as it becomes final and returns false when the client is
  // gone, which ends the generation at once (and the tail's session with it). With --split auto the split
  // may move mid-generation (re-planning), and a failing tail hands the rest to the edge (fallback).
  std::variant<Completion, ApiError> Run(const CompletionRequest& request, const std::vector<int>& ids,
                                         const std::string& request_id, Prepared& prepared,
                                         const std::function<bool(const std::string&)>& emit) {
    const auto admitted_at = Clock::now();
    Completion completion;
    completion.prompt_tokens = static_cast<int>(ids.size());
    completion.seed = request.seed.value_or(std::random_device{}());
    const int positions = static_cast<int>(ids.size()) + request.max_tokens - 1;
    const sched::Candidate* first = &prepared.first;
    completion.plan = *first;
    metrics_.plans.Add({{"choice", first->local() ? "local" : "split"}}).Increment();
    metrics_.cut.Set(CutOf(*first));
    metrics_.active.Increment();
    const SamplingParams sampling{request.temperature, request.top_p, completion.seed};
    bool healthy = true;
    Status status;
    {
      MovableSplit split(model_.transformer, positions, TailOpener(prepared, sampling, positions),
                         [&](TailRunner& tail) {
                           if (const RemoteTail* remote = RemoteOf(tail))
                             AddWire(completion.wire, remote->stats());
                         });
      // A tail that fails hands the rest to the edge, when auto may run every block here.
      const auto log_move = [&](const char* reason) {
        completion.move_log.push_back(
            {{"at_ms", std::chrono::duration<double, std::milli>(Clock::now() - admitted_at).count()},
             {"to", split.choice().Describe()},
             {"cut", CutOf(split.choice())},
             {"reason", reason}});
      };
      // A tail that fails a step (gone, silent, overloaded) is marked down and its breaker told, and the
      // generation moves to the best choice without it: another tail (replaying the steps so far there),
      // or all-local when allowed. A move that fails too goes on to the next choice, a few times; when
      // every tail is busy the same one is tried again after a jittered pause. Forced and fixed splits do
      // not move.
      const auto fall_back = [&](Status failure) -> Status {
        if (!planner_ || request.split || split.choice().local() || !TailFailed(failure)) return failure;
        healthy = false;
        Backoff busy_backoff(kBusyRetry);
        sched::Candidate failed = split.choice();
        for (int attempt = 0; attempt < kMaxFailovers; ++attempt) {
          Penalize(failed.endpoint, failure);
          const int positions_so_far = split.positions() > 0 ? split.positions() : completion.prompt_tokens;
          auto next = planner_->Alternative(failed, positions_so_far,
                                            request.max_tokens - completion.completion_tokens);
          if (!next.ok()) {
            if (failure.code() != StatusCode::kResourceExhausted) return next.status();
            std::this_thread::sleep_for(busy_backoff.Next());
            next = failed;
          }
          Log(LogLevel::kWarn, "edge", "tail failed: moving the generation",
              {{"request_id", request_id},
               {"from", failed.Describe()},
               {"to", next->Describe()},
               {"error", failure.message()}});
          metrics_.moves.Add({{"reason", "fallback"}}).Increment();
          const Status moved = split.MoveTo(*next);
          if (moved.ok()) {
            metrics_.failovers.Add({{"to", next->local() ? "local" : "tail"}}).Increment();
            log_move("fallback");
            return Status::Ok();
          }
          if (next->local() || !TailFailed(moved)) return moved;
          failure = moved;
          failed = *next;
        }
        return failure.WithContext("no tail took the generation after " + std::to_string(kMaxFailovers) +
                                   " moves");
      };
      status = split.Start(*first);
      if (!status.ok()) status = fall_back(status);
      StopScanner scanner(request.stop);
      auto last_token_at = Clock::now();
      int previous = ids.back();
      bool stopped = false, client_gone = false;
      const ModelStep step = [&](std::span<const int> tokens) -> Result<int> {
        const int generated = completion.completion_tokens;
        if (planner_ && !request.split && config_.replan_tokens > 0 && generated > 0 &&
            generated % config_.replan_tokens == 0) {
          if (MaybeMove(split, request.max_tokens - generated, request_id)) log_move("replan");
        }
        auto token = split.Step(tokens);
        if (token.ok()) return token;
        TANDEM_RETURN_IF_ERROR(fall_back(token.status()));
        return split.Step(tokens);
      };
      const auto on_token = [&](int token) {
        const auto now = Clock::now();
        if (completion.completion_tokens++ == 0) {
          completion.ttft_ms = std::chrono::duration<double, std::milli>(now - admitted_at).count();
          metrics_.ttft.Observe(completion.ttft_ms / 1000);
        } else {
          metrics_.inter_token.Observe(std::chrono::duration<double>(now - last_token_at).count());
        }
        last_token_at = now;
        if (tokenizer_.IsEndOfText(token)) return false;  // the model ended the text: not part of it
        const std::string piece = tokenizer_.DecodeAll({previous, token});
        previous = token;
        const std::string final_text = scanner.Add(piece, stopped);
        if (!final_text.empty() && !emit(final_text)) client_gone = true;
        return !stopped && !client_gone;
      };
      if (status.ok()) {
        auto generation = Generate(step, model_.checkpoint->config().seq_len, ids,
                                   GenerateOptions{.steps = positions, .stop_tokens = tokenizer_.EndOfTextIds()},
                                   on_token);
        if (!generation.ok()) {
          status = generation.status();
        } else {
          if (const std::string rest = stopped || client_gone ? "" : scanner.Flush(); !rest.empty())
            emit(rest);
          completion.text = scanner.text();
          const bool hit_length = completion.completion_tokens == request.max_tokens;
          completion.finish_reason = stopped || !hit_length ? "stop" : "length";
          completion.decode_tokens_per_second = generation->timings.decode_tokens_per_second();
          if (client_gone) {
            Log(LogLevel::kInfo, "edge", "client gone: generation cancelled", {{"request_id", request_id}});
          }
        }
      }
      completion.choice = split.choice();
      completion.moves = split.moves();
      if (status.ok() && !completion.choice.local()) {
        if (TailLink* tail = tails_.Find(completion.choice.endpoint)) tail->breaker.RecordSuccess();
      }
      Log(LogLevel::kInfo, "edge", "completion",
          {{"request_id", request_id},
           {"plan", completion.plan.Describe()},
           {"final", completion.choice.Describe()},
           {"prompt_tokens", std::to_string(completion.prompt_tokens)},
           {"completion_tokens", std::to_string(completion.completion_tokens)},
           {"finish_reason", status.ok() ? completion.finish_reason : "error"},
           {"ttft_ms", std::to_string(static_cast<int>(completion.ttft_ms))}});
      // A refusal (busy, bad argument) leaves the connection usable; anything else may have left replies
      // in flight on it.
      if (!status.ok() && status.code() != StatusCode::kResourceExhausted &&
          status.code() != StatusCode::kInvalidArgument) {
        healthy = false;
      }
    }  // the tail sessions close here, before the connection goes back
    RecordWire(completion.wire);
    if (!healthy) {
      for (auto& [endpoint, lease] : prepared.leases) {
        if (lease) lease->MarkBroken();
      }
    }
    metrics_.active.Decrement();
    metrics_.prompt_tokens.Increment(completion.prompt_tokens);
    metrics_.completion_tokens.Increment(completion.completion_tokens);
    if (!status.ok()) {
      Log(LogLevel::kWarn, "edge", "completion failed",
          {{"request_id", request_id}, {"error", status.message()}});
      // Busy or unreachable tails are worth retrying later (503 with Retry-After); anything else is the
      // tail's fault (502).
      const bool busy = status.code() == StatusCode::kResourceExhausted;
      const bool unreachable =
          status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded;
      return ApiError{.status = busy || unreachable ? 503 : 502,
                      .message = status.message(),
                      .type = "server_error",
                      .code = busy          ? "upstream_overloaded"
                              : unreachable ? "upstream_unavailable"
                                            : "upstream_error"};
    }
    return completion;
  }

  static void AddWire(RemoteTailStats& total, const RemoteTailStats& tail) {
    total.raw_bytes += tail.raw_bytes;
    total.payload_bytes += tail.payload_bytes;
    total.wire_bytes_sent += tail.wire_bytes_sent;
    total.wire_bytes_received += tail.wire_bytes_received;
    total.resends += tail.resends;
  }

  void RecordWire(const RemoteTailStats& wire) {
    metrics_.float32_bytes.Increment(static_cast<double>(wire.raw_bytes));
    metrics_.payload_bytes.Increment(static_cast<double>(wire.payload_bytes));
    metrics_.sent_bytes.Increment(static_cast<double>(wire.wire_bytes_sent));
    metrics_.received_bytes.Increment(static_cast<double>(wire.wire_bytes_received));
    metrics_.step_resends.Increment(wire.resends);
  }

  const EdgeConfig& config_;
  LoadedModel model_;
  Tokenizer tokenizer_;
  const int layers_;
  const std::optional<sched::Candidate> fixed_;
  std::shared_ptr<prometheus::Registry> registry_;
  EdgeMetrics metrics_;
  TailSet tails_;
  TailLink& primary_;    // the first --cloud tail: the top-level figures of /v1/plan and the link gauges
  FairSemaphore slots_;  // --max-concurrent generations, first come first served
  std::unique_ptr<EdgePlanner> planner_;  // --split auto
  std::string model_name_;
  CompletionLimits limits_;
  std::atomic<int> admitted_{0};
  std::atomic<bool> draining_{false};
  std::jthread refresher_;  // re-plans as the estimates move (declared last: stopped and joined first)
};

Result<std::string> ReadApiKey(const EdgeConfig& config) {
  if (config.api_key_file.empty()) return config.api_key;
  std::ifstream in(config.api_key_file);
  std::string key;
  if (!in || !std::getline(in, key) || key.empty()) {
    return InvalidArgument("cannot read an API key from the first line of '" + config.api_key_file + "'");
  }
  return key;
}

// --split K as a fixed choice; nullopt for auto.
Result<std::optional<sched::Candidate>> ResolveSplit(const std::string& split, int tail_end, int layers,
                                                     const std::string& endpoint, ActivationCodec codec) {
  if (split == "auto") return std::optional<sched::Candidate>();
  try {
    size_t used = 0;
    const int cut = std::stoi(split, &used);
    if (used == split.size() && cut >= 0 && cut < layers) {
      if (tail_end != 0 && (tail_end <= cut || tail_end > layers)) {
        return InvalidArgument("--tail-end must be in " + std::to_string(cut + 1) + ".." +
                               std::to_string(layers) + " with --split " + split);
      }
      return std::optional<sched::Candidate>(
          sched::Candidate{.tail = 0, .endpoint = endpoint, .cut = cut, .end = tail_end, .codec = codec});
    }
    if (used == split.size() && cut == layers) return std::optional<sched::Candidate>(sched::Candidate{});
  } catch (const std::exception&) {
  }
  return InvalidArgument("--split must be auto or a block in 0.." + std::to_string(layers) + ", got '" +
                         split + "'");
}

}  // namespace

int RunEdgeService(std::span<const std::string> args) {
  const sigset_t stop_signals = services::BlockStopSignals();

  EdgeConfig config;
  FlagSet flags(
      "usage: tandem-edge --model M [--tokenizer T] --cloud tcp://HOST:PORT --cloud-key cloud.pub "
      "--client-key edge.key [--listen 127.0.0.1:8080] [--split auto|K] [--codec C] [flags]",
      "TANDEM");
  config.Declare(flags);
  if (auto exit = services::ParseServiceFlags(flags, args, "edge")) return *exit;
  if (Status valid = config.Validate(); !valid.ok()) return Fail(valid, kExitUsage);
  auto api_key = ReadApiKey(config);
  if (!api_key.ok()) return Fail(api_key.status());
  auto cloud = config.cloud.Resolve();
  if (!cloud.ok()) return Fail(cloud.status());
  auto model = LoadModel(config.model, /*fingerprint=*/true);
  if (!model.ok()) return Fail(model.status());
  const ActivationCodec codec = *ParseActivationCodec(config.cloud.codec);  // checked by Validate
  auto fixed = ResolveSplit(config.split, config.tail_end, model->transformer->n_layers(),
                            config.cloud.endpoint, codec);
  if (!fixed.ok()) return Fail(fixed.status(), kExitUsage);
  auto tokenizer =
      Tokenizer::LoadForModel(config.model.model, config.tokenizer, model->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  ComputeProfile profile;
  if (!*fixed) {
    // The planner needs this device's own block times, with its weights, precision and threads.
    auto measured = ProfileCompute(*model->transformer);
    if (!measured.ok()) return Fail(measured.status().WithContext("profiling the blocks"));
    profile = std::move(*measured);
  }

  auto registry = std::make_shared<prometheus::Registry>();
  services::RegisterBuildInfo(*registry, {{"version", TANDEM_VERSION}, {"kernels", ActiveKernels().name}});
  EdgeService service(config, std::move(*model), std::move(*tokenizer), std::move(*cloud), std::move(*fixed),
                      std::move(profile), registry);
  services::HttpServerOptions http_options;
  http_options.listen = config.listen;
  http_options.max_body_bytes = static_cast<size_t>(config.max_body_kb) * 1024;
  // Every admitted request holds a handler thread while it waits or generates; a few more serve the rest.
  http_options.handler_threads = config.max_concurrent + config.max_queue + 8;
  auto http = services::HttpServer::Start(http_options, service.Routes(*api_key));
  if (!http.ok()) return Fail(http.status());
  Log(LogLevel::kInfo, "edge", "serving",
      {{"listen", (*http)->address()},
       {"cloud", config.cloud.endpoint},
       {"split", config.split},
       {"codec", config.split == "auto" ? config.allowed_codecs : codec.Name()},
       {"auth", api_key->empty() ? "none" : "bearer"},
       {"kernels", ActiveKernels().name}});

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  service.BeginDrain();
  Log(LogLevel::kInfo, "edge", "draining", {{"signal", strsignal(signal_number)}});
  services::DrainUnlessSignalledAgain(**http, stop_signals, std::chrono::seconds(config.drain_timeout_s),
                                      [&] {
                                        // The operator wants out now: generations in flight are cut off
                                        // (waiting for them is what the drain did).
                                        Log(LogLevel::kWarn, "edge", "second signal: exiting without waiting",
                                            {{"in_flight", std::to_string((*http)->in_flight())}});
                                        std::_Exit(kExitFailure);
                                      });
  Log(LogLevel::kInfo, "edge", "stopping", {{"in_flight", std::to_string((*http)->in_flight())}});
  (*http)->Stop();
  return 0;
}

}  // namespace tandem::edge
