#include "tandem/edge/edge_service.hpp"

#include <openssl/crypto.h>
#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "tandem/common/log.hpp"
#include "tandem/common/model_loader.hpp"
#include "tandem/common/tokenizer.hpp"
#include "tandem/edge/cloud_flags.hpp"
#include "tandem/edge/cloud_pool.hpp"
#include "tandem/edge/completion_request.hpp"
#include "tandem/services/health.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/service_main.hpp"

namespace tandem::edge {
namespace {

using nlohmann::json;
using services::HttpRequest;
using services::HttpResponse;
using Clock = std::chrono::steady_clock;

using services::kExitFailure;
using services::kExitUsage;

// Logs the error line and returns the exit code.
int Fail(const Status& status, int exit_code = kExitFailure) {
  return services::FailService("edge", status, exit_code);
}
constexpr int kBos = 1;  // llama2.c's BOS, which also ends a story

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

  void Declare(FlagSet& flags) {
    model.Declare(flags, "llama2.c checkpoint (.bin): the same file as the cloud tail's");
    flags.String("tokenizer", &tokenizer, "llama2.c tokenizer (.bin)");
    flags.String("model-name", &model_name, "model id in the API (default: the model file's name)");
    cloud.Declare(flags);
    flags.String("split", &split,
                 "the cut K (blocks [0,K) here, [K,L) on the tail), or auto (K = 1 until the "
                 "planner decides)");
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
  }

  Status Validate() const {
    if (model.model.empty() || tokenizer.empty())
      return InvalidArgument("--model and --tokenizer are required");
    if (!cloud.enabled()) return InvalidArgument("--cloud is required (the tail that runs blocks [K, L))");
    if (max_concurrent < 1 || max_queue < 0 || max_tokens < 0 || max_body_kb < 1 || drain_timeout_s < 0) {
      return InvalidArgument(
          "--max-concurrent and --max-body-kb must be positive; --max-queue, --max-tokens and "
          "--drain-timeout-s >= 0");
    }
    if (!api_key.empty() && !api_key_file.empty()) return InvalidArgument("give --api-key or --api-key-file");
    return cloud.Validate();
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
                .Help("Current cut K")
                .Register(registry)
                .Add({})),
        rtt(prometheus::BuildGauge()
                .Name("tandem_edge_rtt_seconds")
                .Help("Estimated round trip to the tail, without its compute (EWMA over decode steps)")
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
                        .Add({})) {}

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

// What one completion produced.
struct Completion {
  std::string text;
  std::string finish_reason = "length";
  int prompt_tokens = 0;
  int completion_tokens = 0;
  double ttft_ms = 0;
  double decode_tokens_per_second = 0;
  RemoteTailStats wire;
  uint64_t seed = 0;
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
  EdgeService(const EdgeConfig& config, LoadedModel model, Tokenizer tokenizer, CloudOptions cloud, int cut,
              ActivationCodec codec, std::shared_ptr<prometheus::Registry> registry)
      : config_(config),
        model_(std::move(model)),
        tokenizer_(std::move(tokenizer)),
        cut_(cut),
        codec_(codec),
        registry_(std::move(registry)),
        metrics_(*registry_),
        pool_(std::move(cloud), wire::DescribeModel(model_.checkpoint->config(), model_.fingerprint),
              config.max_concurrent) {
    model_name_ = config.model_name.empty() ? std::filesystem::path(config.model.model).stem().string()
                                            : config.model_name;
    const int seq_len = model_.checkpoint->config().seq_len;
    limits_.max_tokens_cap = config.max_tokens > 0 ? std::min(config.max_tokens, seq_len) : seq_len;
    metrics_.cut.Set(cut_);
  }

  bool Ready() const { return !draining_.load() && pool_.connected() > 0; }
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
          metrics_.connections.Set(pool_.connected());
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
    return {.body = json{{"cloud", pool_.endpoint()},
                         {"cut", cut_},
                         {"codec", codec_.Name()},
                         {"split", config_.split},
                         {"layers", model_.transformer->n_layers()},
                         {"connections", {{"ready", pool_.connected()}, {"size", pool_.size()}}},
                         {"estimates",
                          {{"rtt_ms", rtt_ms_.load()},
                           {"decode_round_trip_ms", round_trip_ms_.load()},
                           {"cloud_compute_ms", cloud_compute_ms_.load()}}},
                         {"last_error", pool_.last_error()}}
                        .dump()};
  }

  HttpResponse Completions(const HttpRequest& http) {
    auto parsed = ParseCompletionRequest(http.body, limits_);
    if (auto* error = std::get_if<ApiError>(&parsed)) return Error(*error);
    auto request = std::make_shared<CompletionRequest>(std::move(std::get<CompletionRequest>(parsed)));
    if (!request->model.empty() && request->model != model_name_) {
      return Error({.status = 404,
                    .message = "model '" + request->model + "' is not served here; GET /v1/models",
                    .code = "model_not_found",
                    .param = "model"});
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
    auto lease = std::get<std::shared_ptr<CloudLease>>(std::move(slot));
    const std::string id = "cmpl-" + http.request_id;
    if (!request->stream) {
      auto completion = Run(*request, *ids, http.request_id, *lease, [](const std::string&) { return true; });
      if (auto* error = std::get_if<ApiError>(&completion)) return Error(*error);
      return {.body = CompletionBody(id, std::get<Completion>(completion)).dump()};
    }
    HttpResponse response{.content_type = "text/event-stream"};
    response.headers.emplace_back("Cache-Control", "no-cache");
    response.stream = [this, request, ids, admission, lease, id,
                       request_id = http.request_id](services::ResponseStream& stream) {
      const auto event = [&stream](const json& body) {
        return stream.Write("data: " + body.dump() + "\n\n");
      };
      auto completion = Run(*request, *ids, request_id, *lease,
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
    body["tandem"] = {{"cloud", pool_.endpoint()},
                      {"cut", cut_},
                      {"codec", codec_.Name()},
                      {"seed", completion.seed},
                      {"bytes_sent", completion.wire.wire_bytes_sent},
                      {"bytes_received", completion.wire.wire_bytes_received},
                      {"activation_bytes_float32", completion.wire.raw_bytes},
                      {"activation_bytes_payload", completion.wire.payload_bytes},
                      {"ttft_ms", completion.ttft_ms},
                      {"tokens_per_second", completion.decode_tokens_per_second}};
    return body;
  }

  // Generates one completion on a tail connection; `emit` gets text as it becomes final and returns false
  // when the client is gone, which ends the generation at once (and the tail's session with it).
  // A tail connection for one generation: waits for a free one while the pool has any, up to the cloud
  // timeout. Taken before a stream starts, so that its failure is still a proper HTTP status.
  std::variant<std::shared_ptr<CloudLease>, ApiError> AcquireSlot() {
    metrics_.queue_depth.Increment();
    const bool any = pool_.connected() > 0;
    auto connection = pool_.Acquire(any ? std::chrono::milliseconds(config_.cloud.timeout_ms)
                                        : std::chrono::milliseconds(0));
    metrics_.queue_depth.Decrement();
    if (connection) return std::make_shared<CloudLease>(pool_, std::move(connection));
    if (any) {
      return ApiError{.status = 503,
                      .message = "no generation slot became free within " +
                                 std::to_string(config_.cloud.timeout_ms) + " ms",
                      .type = "server_error",
                      .code = "queue_timeout"};
    }
    const std::string reason = pool_.last_error();
    return ApiError{.status = 503,
                    .message = "the cloud tail is not reachable: " +
                               (reason.empty() ? std::string("no handshake with it yet") : reason),
                    .type = "server_error",
                    .code = "upstream_unavailable"};
  }

  // Generates one completion on `connection`; `emit` gets text as it becomes final and returns false when
  // the client is gone, which ends the generation at once (and the tail's session with it).
  std::variant<Completion, ApiError> Run(const CompletionRequest& request, const std::vector<int>& ids,
                                         const std::string& request_id, CloudLease& lease,
                                         const std::function<bool(const std::string&)>& emit) {
    const auto admitted_at = Clock::now();
    metrics_.active.Increment();
    Completion completion;
    completion.prompt_tokens = static_cast<int>(ids.size());
    completion.seed = request.seed.value_or(std::random_device{}());
    const int positions = static_cast<int>(ids.size()) + request.max_tokens - 1;
    bool healthy = true;
    Status status;
    {
      EdgeRunner edge(model_.transformer, cut_, positions);
      auto tail = RemoteTail::Open(lease.connection(),
                                   {.cut = cut_,
                                    .codec = codec_,
                                    .sampling = {request.temperature, request.top_p, completion.seed},
                                    .max_positions = static_cast<uint32_t>(positions)});
      if (!tail.ok()) {
        status = tail.status();
      } else {
        StopScanner scanner(request.stop);
        auto last_token_at = Clock::now();
        int previous = ids.back();
        bool stopped = false, client_gone = false;
        auto generation = Generate(edge, **tail, ids, GenerateOptions{positions, true}, [&](int token) {
          const auto now = Clock::now();
          if (completion.completion_tokens++ == 0) {
            completion.ttft_ms = std::chrono::duration<double, std::milli>(now - admitted_at).count();
            metrics_.ttft.Observe(completion.ttft_ms / 1000);
          } else {
            metrics_.inter_token.Observe(std::chrono::duration<double>(now - last_token_at).count());
          }
          last_token_at = now;
          const std::string piece = tokenizer_.DecodeAll({previous, token});
          previous = token;
          const std::string final_text = scanner.Add(piece, stopped);
          if (!final_text.empty() && !emit(final_text)) client_gone = true;
          return !stopped && !client_gone;
        });
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
            Log(LogLevel::kInfo, "edge", "client gone: generation cancelled",
                {{"request_id", request_id}, {"session", std::to_string((*tail)->session_id())}});
          }
        }
        Log(LogLevel::kInfo, "edge", "completion",
            {{"request_id", request_id},
             {"session", std::to_string((*tail)->session_id())},
             {"prompt_tokens", std::to_string(completion.prompt_tokens)},
             {"completion_tokens", std::to_string(completion.completion_tokens)},
             {"finish_reason", status.ok() ? completion.finish_reason : "error"},
             {"ttft_ms", std::to_string(static_cast<int>(completion.ttft_ms))}});
        completion.wire = (*tail)->stats();
        RecordWire(completion.wire);
      }
      healthy = status.ok() || status.code() == StatusCode::kResourceExhausted ||
                status.code() == StatusCode::kInvalidArgument;
    }  // the tail session closes here, before its connection goes back
    if (!healthy) lease.MarkBroken();
    metrics_.active.Decrement();
    metrics_.prompt_tokens.Increment(completion.prompt_tokens);
    metrics_.completion_tokens.Increment(completion.completion_tokens);
    if (!status.ok()) {
      Log(LogLevel::kWarn, "edge", "completion failed",
          {{"request_id", request_id}, {"error", status.message()}});
      const bool busy = status.code() == StatusCode::kResourceExhausted;
      return ApiError{.status = busy ? 503 : 502,
                      .message = status.message(),
                      .type = "server_error",
                      .code = busy ? "upstream_overloaded" : "upstream_error"};
    }
    return completion;
  }

  void RecordWire(const RemoteTailStats& wire) {
    metrics_.float32_bytes.Increment(static_cast<double>(wire.raw_bytes));
    metrics_.payload_bytes.Increment(static_cast<double>(wire.payload_bytes));
    metrics_.sent_bytes.Increment(static_cast<double>(wire.wire_bytes_sent));
    metrics_.received_bytes.Increment(static_cast<double>(wire.wire_bytes_received));
    // Link estimates from the decode steps (one row each): round trip, tail compute, and their difference.
    constexpr double kWeight = 0.2;
    for (size_t i = 1; i < wire.step_round_trip_ms.size(); ++i) {
      const auto blend = [&](std::atomic<double>& estimate, double sample) {
        const double old = estimate.load();
        estimate = old == 0 ? sample : (1 - kWeight) * old + kWeight * sample;
      };
      blend(round_trip_ms_, wire.step_round_trip_ms[i]);
      blend(cloud_compute_ms_, wire.step_cloud_compute_ms[i]);
      blend(rtt_ms_, std::max(0.0, wire.step_round_trip_ms[i] - wire.step_cloud_compute_ms[i]));
    }
    metrics_.rtt.Set(rtt_ms_.load() / 1000);
  }

  const EdgeConfig& config_;
  LoadedModel model_;
  Tokenizer tokenizer_;
  const int cut_;
  const ActivationCodec codec_;
  std::shared_ptr<prometheus::Registry> registry_;
  EdgeMetrics metrics_;
  CloudPool pool_;
  std::string model_name_;
  CompletionLimits limits_;
  std::atomic<int> admitted_{0};
  std::atomic<bool> draining_{false};
  std::atomic<double> rtt_ms_{0}, round_trip_ms_{0}, cloud_compute_ms_{0};
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

Result<int> ResolveCut(const std::string& split, int layers) {
  if (split == "auto") return std::min(1, layers);  // the privacy floor: no token ids or embeddings leave
  try {
    size_t used = 0;
    const int cut = std::stoi(split, &used);
    if (used == split.size() && cut >= 0 && cut <= layers) return cut;
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
      "usage: tandem-edge --model M --tokenizer T --cloud tcp://HOST:PORT --cloud-key cloud.pub "
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
  auto cut = ResolveCut(config.split, model->transformer->n_layers());
  if (!cut.ok()) return Fail(cut.status(), kExitUsage);
  auto tokenizer = Tokenizer::Load(config.tokenizer, model->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  const ActivationCodec codec = *ParseActivationCodec(config.cloud.codec);  // checked by Validate

  auto registry = std::make_shared<prometheus::Registry>();
  EdgeService service(config, std::move(*model), std::move(*tokenizer), std::move(*cloud), *cut, codec,
                      registry);
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
       {"cut", std::to_string(*cut)},
       {"codec", codec.Name()},
       {"auth", api_key->empty() ? "none" : "bearer"}});

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  service.BeginDrain();
  Log(LogLevel::kInfo, "edge", "draining", {{"signal", strsignal(signal_number)}});
  std::atomic<bool> drained{false};
  std::thread drainer([&] {
    (*http)->Drain(std::chrono::seconds(config.drain_timeout_s));
    drained = true;
  });
  const timespec poll_interval{0, 50'000'000};
  while (!drained.load()) {
    if (sigtimedwait(&stop_signals, nullptr, &poll_interval) > 0) {
      // A second signal: the operator wants out now; requests in flight are cut off.
      Log(LogLevel::kWarn, "edge", "second signal: exiting without waiting",
          {{"in_flight", std::to_string((*http)->in_flight())}});
      std::_Exit(kExitFailure);
    }
  }
  drainer.join();
  Log(LogLevel::kInfo, "edge", "stopping", {{"in_flight", std::to_string((*http)->in_flight())}});
  (*http)->Stop();
  return 0;
}

}  // namespace tandem::edge
