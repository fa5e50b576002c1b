#include "tandem/edge_agent/edge_service.hpp"

#include <openssl/crypto.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "tandem/edge_agent/admission.hpp"
#include "tandem/edge_agent/chat_request.hpp"
#include "tandem/edge_agent/completion_request.hpp"
#include "tandem/edge_agent/edge_metrics.hpp"
#include "tandem/edge_agent/edge_planner.hpp"
#include "tandem/edge_agent/fixed_split.hpp"
#include "tandem/edge_agent/generation_runner.hpp"
#include "tandem/edge_agent/openai_format.hpp"
#include "tandem/edge_agent/tail_set.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/services/health.hpp"

namespace tandem::edge_agent {
namespace {

using nlohmann::json;
using services::HttpRequest;
using services::HttpResponse;

// The planner's accuracy budget counts the edge's quantized first blocks, int8 or int4 (the blocks the
// flags quantize beyond them are the tail's business).
int QuantizedEdgeBlocks(const TransformerOptions& options) {
  return std::max(options.int8_blocks.last, options.int4_blocks.last);
}

bool Authorized(const HttpRequest& request, const std::string& key) {
  const std::string* header = request.Header("authorization");
  const std::string expected = "Bearer " + key;
  if (header == nullptr || header->size() != expected.size()) return false;
  // Constant time: how many leading bytes match must not show in the timing.
  return CRYPTO_memcmp(header->data(), expected.data(), expected.size()) == 0;
}

// A completion request from admission to its end: its admission ticket (slot), its tails (connections,
// returned before the slot) and where its split starts. Shared with the stream producer.
struct Accepted {
  CompletionRequest request;
  std::vector<int> ids;
  std::shared_ptr<Admission::Ticket> ticket;
  std::unique_ptr<RequestTails> tails;
  scheduler::Candidate first;
  const DraftModels* drafts = nullptr;
  int draft_tokens = scheduler::kAutoDraftTokens;
};

}  // namespace

class EdgeService::Impl {
 public:
  Impl(EdgeConfig config, EdgeDependencies dependencies);

  std::vector<services::Route> Routes(const std::string& api_key);
  bool Ready() const {
    return !admission_.draining() &&
           (tails_.connected() > 0 || LocalFallback() || (fixed_ && fixed_->local()));
  }
  void BeginDrain() { admission_.BeginDrain(); }

 private:
  // Re-plans as the estimates move, between requests too (hysteresis follows the estimates).
  void StartRefresher();
  services::HttpHandler WithMetricsRefresh(services::HttpHandler inner);
  HttpResponse Models(const HttpRequest&) const { return {.body = ModelList(model_name_).dump()}; }
  HttpResponse Plan(const HttpRequest&) const;
  HttpResponse Completions(const HttpRequest& http);
  HttpResponse ChatCompletions(const HttpRequest& http);
  // A parsed and tokenized request answered whole or streamed in `format`'s shape.
  HttpResponse Answer(PreparedRequest prepared, std::shared_ptr<const ResponseFormat> format,
                      const std::string& request_id);
  HttpResponse Stream(const std::shared_ptr<Accepted>& accepted, std::shared_ptr<const ResponseFormat> format,
                      const std::string& request_id);
  // Checked against this edge, admitted and planned, with the first tail's connection leased: everything
  // that can fail with a proper HTTP status before a stream starts.
  ApiResult<std::shared_ptr<Accepted>> Accept(PreparedRequest prepared);
  std::optional<ApiError> CheckAgainstModel(const CompletionRequest& request, size_t prompt_tokens) const;
  // The first choice, with its tail's connection reserved; a tail that cannot be reached turns an auto
  // plan all-local (when allowed), otherwise the request gets 503.
  ApiResult<scheduler::Candidate> Prepare(const CompletionRequest& request, int prompt_tokens,
                                          RequestTails& tails);
  // The request's own override (on the first tail), the fixed split (on the first usable tail), or the
  // planner's choice.
  Result<scheduler::Candidate> FirstChoice(const CompletionRequest& request, int prompt_tokens);
  ApiResult<Completion> Run(Accepted& accepted, const std::string& request_id, const TextSink& emit);
  // The request's drafter ("tandem.draft", else --draft) among those this edge can run: --draft's, and
  // ngram, early-exit and none, which load nothing.
  ApiResult<const DraftModels*> DrafterFor(const CompletionRequest& request) const;
  // Whether auto may finish requests all-local when the tail is unreachable or slow.
  bool LocalFallback() const {
    return !fixed_ && config_.allow_local &&
           (config_.max_edge_blocks < 0 || config_.max_edge_blocks >= layers_);
  }

  const EdgeConfig config_;
  const LoadedModel model_;
  const Tokenizer tokenizer_;
  const int layers_;
  const int seq_len_;
  const std::optional<scheduler::Candidate> fixed_;
  const std::shared_ptr<prometheus::Registry> registry_;
  const Clock& clock_;
  EdgeMetrics metrics_;
  TailSet tails_;
  TailLink* primary_;  // the first --cloud tail: the top-level figures of /v1/plan and the link gauges; null
                       // without a tail (edge-only serving)
  Admission admission_;
  std::unique_ptr<SplitPlanner> planner_;  // --split auto
  std::function<std::unique_ptr<RequestTails>(TailSet&)> request_tails_;
  const std::string model_name_;
  const CompletionLimits limits_;
  const std::shared_ptr<const CompletionFormat> completion_format_;
  const std::optional<ChatTemplate> chat_template_;  // nullopt: chat is refused (chat_template_missing)
  std::vector<DraftModels> drafters_;                // --draft's first
  int draft_tokens_ = scheduler::kAutoDraftTokens;
  DraftStats draft_stats_;  // the default drafter's, for the planner
  std::jthread refresher_;  // declared last: stopped and joined first
};

EdgeService::Impl::Impl(EdgeConfig config, EdgeDependencies dependencies)
    : config_(std::move(config)),
      model_(std::move(dependencies.model)),
      tokenizer_(std::move(dependencies.tokenizer)),
      layers_(model_.transformer->n_layers()),
      seq_len_(model_.checkpoint->config().seq_len),
      fixed_(std::move(dependencies.fixed)),
      registry_(std::move(dependencies.registry)),
      clock_(*dependencies.clock),
      metrics_(*registry_),
      tails_(dependencies.cloud, model_.Describe(), config_.max_concurrent,
             {.probe_interval = std::chrono::milliseconds(config_.probe_ms)}),
      primary_(config_.CloudEndpoints().empty() ? nullptr : tails_.Get(config_.CloudEndpoints().front())),
      admission_({.max_concurrent = config_.max_concurrent,
                  .max_queue = config_.max_queue,
                  .slot_wait = std::chrono::milliseconds(config_.cloud.timeout_ms)},
                 metrics_.queue_depth),
      request_tails_(std::move(dependencies.request_tails)),
      model_name_(config_.ModelName()),
      limits_{.max_tokens_cap = config_.max_tokens > 0 ? std::min(config_.max_tokens, seq_len_) : seq_len_},
      completion_format_(std::make_shared<CompletionFormat>(model_name_, layers_)),
      chat_template_(std::move(dependencies.chat_template)) {
  for (const std::string& endpoint : config_.CloudEndpoints()) {
    tails_.Get(endpoint);
    metrics_.circuit_opened.Add({{"cloud", endpoint}});  // at 0, as in EdgeMetrics
  }
  if (!request_tails_) {
    request_tails_ = [model = model_.transformer, wait = std::chrono::milliseconds(config_.cloud.timeout_ms)](
                         TailSet& tails) { return LeaseCloudTails(tails, model, wait); };
  }
  if (!fixed_ && dependencies.planner) planner_ = dependencies.planner(tails_);
  drafters_ = std::move(dependencies.drafts);
  if (auto tokens = scheduler::ParseDraftTokens(config_.draft_tokens); tokens.ok()) draft_tokens_ = *tokens;
  if (!fixed_ && !planner_) {
    const ModelConfig& shape = model_.checkpoint->config();
    EdgePlannerOptions planner_options = config_.PlannerOptions();
    if (!drafters_.empty() && drafters_.front().spec().kind != DraftKind::kNone) {
      // What the default drafter has shown so far; planned drafts up to the policy's longest.
      const int max_drafts = draft_tokens_ >= 0 ? draft_tokens_ : scheduler::DraftPolicyOptions{}.max_drafts;
      planner_options.draft = [this, max_drafts] { return draft_stats_.Inputs(true, max_drafts); };
    }
    planner_ = std::make_unique<EdgePlanner>(
        ModelShape{.fingerprint = std::to_string(model_.fingerprint),
                   .n_layers = layers_,
                   .dim = shape.dim,
                   .kv_bytes_per_position_per_block = int64_t{2} * shape.kv_dim() * 4,
                   .edge_int8_blocks = QuantizedEdgeBlocks(model_.transformer->options())},
        std::move(dependencies.edge_profile), tails_, std::move(planner_options), clock_);
  }
  metrics_.cut.Set(fixed_ ? CutOf(*fixed_, layers_) : 0);
  for (const DraftKind kind : {DraftKind::kNone, DraftKind::kNgram, DraftKind::kEarlyExit}) {
    if (auto light = DraftModels::Load({.kind = kind}, model_.transformer); light.ok()) {
      drafters_.push_back(std::move(*light));
    }
  }
  if (planner_) StartRefresher();
}

ApiResult<const DraftModels*> EdgeService::Impl::DrafterFor(const CompletionRequest& request) const {
  const std::string name = request.draft.value_or(drafters_.front().spec().Name());
  for (const DraftModels& drafter : drafters_) {
    if (drafter.spec().Name() == name) return &drafter;
  }
  std::string known;
  for (const DraftModels& drafter : drafters_) known += (known.empty() ? "" : ", ") + drafter.spec().Name();
  return InvalidValue("tandem.draft", "this edge drafts with " + known + ", not '" + name +
                                          "' (tandem-edge --draft loads drafters with a model)");
}

void EdgeService::Impl::StartRefresher() {
  refresher_ =
      std::jthread([this, interval = std::chrono::milliseconds(config_.probe_ms)](std::stop_token stop) {
        std::mutex mutex;
        std::condition_variable_any wake;  // only a stop request wakes it early
        std::unique_lock lock(mutex);
        while (!wake.wait_for(lock, stop, interval, [&stop] { return stop.stop_requested(); })) {
          planner_->Refresh();
        }
      });
}

std::vector<services::Route> EdgeService::Impl::Routes(const std::string& api_key) {
  std::vector<services::Route> routes = {
      {"POST", "/v1/completions", [this](const HttpRequest& r) { return Completions(r); }},
      {"POST", "/v1/chat/completions", [this](const HttpRequest& r) { return ChatCompletions(r); }},
      {"GET", "/v1/models", [this](const HttpRequest& r) { return Models(r); }},
      {"GET", "/v1/plan", [this](const HttpRequest& r) { return Plan(r); }},
  };
  for (auto& route : services::HealthRoutes([this] { return Ready(); }, registry_)) {
    if (route.path == "/metrics") route.handler = WithMetricsRefresh(std::move(route.handler));
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

services::HttpHandler EdgeService::Impl::WithMetricsRefresh(services::HttpHandler inner) {
  return [this, inner = std::move(inner)](const HttpRequest& request) {
    if (primary_ != nullptr) metrics_.ObserveLink(primary_->link.Estimate(), tails_.connected());
    return inner(request);
  };
}

HttpResponse EdgeService::Impl::Plan(const HttpRequest&) const {
  // The top-level figures are the first --cloud tail's; `planner.tails` has every tail's. Without a tail
  // the edge serves everything itself: "local".
  json body = {{"split", primary_ != nullptr ? config_.split : "local"}, {"layers", layers_}};
  if (primary_ != nullptr) {
    body["cloud"] = primary_->pool.endpoint();
    body["connections"] = {{"ready", primary_->pool.connected()}, {"size", primary_->pool.size()}};
    body["last_error"] = primary_->pool.last_error();
  }
  if (fixed_) {
    body["cut"] = CutOf(*fixed_, layers_);
    body["codec"] = fixed_->local() ? "" : fixed_->codec.Name();
    if (primary_ != nullptr) body["tails"] = tails_.Describe();  // which one a fixed split can move to
  } else {
    body["planner"] = planner_->Describe();
    const json& current = body["planner"].contains("current") ? body["planner"]["current"] : json();
    body["cut"] = current.is_null() ? json() : current["cut"];
    body["codec"] = current.is_null() ? json() : current["codec"];
  }
  body["draft"] = {{"drafter", drafters_.front().spec().Name()},
                   {"draft_tokens", draft_tokens_ >= 0 ? json(draft_tokens_) : json("auto")}};
  if (primary_ != nullptr) {
    const scheduler::LinkEstimate link = primary_->link.Estimate();
    body["estimates"] = {{"link_up", link.up},
                         {"rtt_ms", link.rtt_ms},
                         {"bandwidth_mbit_s", link.bandwidth_bytes_per_ms * 8 / 1000}};
  }
  return {.body = body.dump()};
}

HttpResponse EdgeService::Impl::Completions(const HttpRequest& http) {
  ApiResult<CompletionRequest> parsed = ParseCompletionRequest(http.body, limits_);
  if (!parsed.ok()) return ErrorReply(parsed.error());
  std::vector<int> ids = tokenizer_.Encode(parsed->prompt, true, false);
  return Answer({.request = std::move(*parsed), .ids = std::move(ids)}, completion_format_, http.request_id);
}

HttpResponse EdgeService::Impl::ChatCompletions(const HttpRequest& http) {
  ApiResult<ChatRequest> parsed = ParseChatRequest(http.body, limits_);
  if (!parsed.ok()) return ErrorReply(parsed.error());
  const bool include_usage = parsed->completion.include_usage;
  ApiResult<PreparedRequest> prepared =
      PrepareChat(std::move(*parsed), chat_template_ ? &*chat_template_ : nullptr, tokenizer_);
  if (!prepared.ok()) return ErrorReply(prepared.error());
  return Answer(std::move(*prepared), std::make_shared<ChatFormat>(model_name_, layers_, include_usage),
                http.request_id);
}

HttpResponse EdgeService::Impl::Answer(PreparedRequest prepared, std::shared_ptr<const ResponseFormat> format,
                                       const std::string& request_id) {
  ApiResult<std::shared_ptr<Accepted>> accepted = Accept(std::move(prepared));
  if (!accepted.ok()) return ErrorReply(accepted.error());
  if ((*accepted)->request.stream) return Stream(*accepted, std::move(format), request_id);
  ApiResult<Completion> completion = Run(**accepted, request_id, [](const std::string&) { return true; });
  if (!completion.ok()) return ErrorReply(completion.error());
  return {.body = format->Body(format->Id(request_id), *completion).dump()};
}

HttpResponse EdgeService::Impl::Stream(const std::shared_ptr<Accepted>& accepted,
                                       std::shared_ptr<const ResponseFormat> format,
                                       const std::string& request_id) {
  HttpResponse response{.content_type = "text/event-stream"};
  response.headers.emplace_back("Cache-Control", "no-cache");
  response.stream = [this, accepted, format = std::move(format),
                     request_id](services::ResponseStream& stream) {
    const std::string id = format->Id(request_id);
    for (const json& event : format->Opening(id)) stream.Write(SseEvent(event));
    ApiResult<Completion> completion = Run(*accepted, request_id, [&](const std::string& piece) {
      return stream.Write(SseEvent(format->Piece(id, piece)));
    });
    if (completion.ok()) {
      for (const json& event : format->Closing(id, *completion)) stream.Write(SseEvent(event));
    } else {
      stream.Write(SseEvent(StreamErrorEvent(completion.error())));
    }
    stream.Write(kSseDone);
  };
  return response;
}

ApiResult<std::shared_ptr<Accepted>> EdgeService::Impl::Accept(PreparedRequest prepared) {
  auto accepted = std::make_shared<Accepted>();
  accepted->request = std::move(prepared.request);
  accepted->ids = std::move(prepared.ids);
  const CompletionRequest& request = accepted->request;
  if (auto refusal = CheckAgainstModel(request, accepted->ids.size())) return *refusal;
  ApiResult<std::shared_ptr<Admission::Ticket>> ticket = admission_.Admit();
  if (!ticket.ok()) return ticket.error();
  accepted->ticket = std::move(*ticket);
  accepted->tails = request_tails_(tails_);
  ApiResult<scheduler::Candidate> first =
      Prepare(request, static_cast<int>(accepted->ids.size()), *accepted->tails);
  if (!first.ok()) return first.error();
  accepted->first = *first;
  ApiResult<const DraftModels*> drafts = DrafterFor(request);
  if (!drafts.ok()) return drafts.error();
  accepted->drafts = *drafts;
  accepted->draft_tokens = request.draft_tokens.value_or(draft_tokens_);
  return accepted;
}

std::optional<ApiError> EdgeService::Impl::CheckAgainstModel(const CompletionRequest& request,
                                                             size_t prompt_tokens) const {
  if (!request.model.empty() && request.model != model_name_) {
    return ApiError{.status = 404,
                    .message = "model '" + request.model + "' is not served here; GET /v1/models",
                    .code = "model_not_found",
                    .param = "model"};
  }
  if (request.split && (config_.private_output || config_.tail_end > 0)) {
    return InvalidValue("tandem.split",
                        "this edge keeps outputs private (--private-output, --tail-end): 'tandem.split' "
                        "is not accepted");
  }
  if (request.split && primary_ == nullptr && request.split->cut >= 0 && request.split->cut < layers_) {
    return InvalidValue("tandem.split",
                        "this edge has no tail (no --cloud): 'tandem.split' may only be \"local\"");
  }
  if (request.split && request.split->cut > layers_) {
    return InvalidValue("tandem.split",
                        "'tandem.split' must be a block in 0.." + std::to_string(layers_) + " or \"local\"");
  }
  if (ApiResult<const DraftModels*> drafts = DrafterFor(request); !drafts.ok()) return drafts.error();
  if (static_cast<int>(prompt_tokens) + request.max_tokens - 1 > seq_len_) {
    return ApiError{.message = "the prompt (" + std::to_string(prompt_tokens) +
                               " tokens with BOS) plus max_tokens (" + std::to_string(request.max_tokens) +
                               ") exceeds the context length of " + std::to_string(seq_len_),
                    .code = "context_length_exceeded",
                    .param = "max_tokens"};
  }
  return std::nullopt;
}

ApiResult<scheduler::Candidate> EdgeService::Impl::Prepare(const CompletionRequest& request,
                                                           int prompt_tokens, RequestTails& tails) {
  Result<scheduler::Candidate> first = FirstChoice(request, prompt_tokens);
  if (!first.ok()) return ServiceUnavailable("upstream_unavailable", first.status().message());
  if (first->local()) return *first;
  const Status reserved = tails.Reserve(*first);
  if (reserved.ok()) return *first;
  if (LocalFallback() && !request.split) return scheduler::Candidate{};
  return ServiceUnavailable("upstream_unavailable", reserved.message());
}

Result<scheduler::Candidate> EdgeService::Impl::FirstChoice(const CompletionRequest& request,
                                                            int prompt_tokens) {
  if (request.split) {
    if (request.split->cut < 0 || request.split->cut == layers_) return scheduler::Candidate{};
    return scheduler::Candidate{.tail = 0,
                                .endpoint = primary_->pool.endpoint(),
                                .cut = request.split->cut,
                                .codec = request.split->codec};
  }
  // A fixed split starts on the first --cloud tail that can take it now.
  if (fixed_) return fixed_->local() ? *fixed_ : StartFixedSplit(*fixed_, FixedSplitTails(tails_, *fixed_));
  return planner_->Choose(prompt_tokens, request.max_tokens);
}

ApiResult<Completion> EdgeService::Impl::Run(Accepted& accepted, const std::string& request_id,
                                             const TextSink& emit) {
  const GenerationContext context{.model = model_.transformer,
                                  .tokenizer = tokenizer_,
                                  .metrics = metrics_,
                                  .tails = tails_,
                                  .planner = planner_.get(),
                                  .replan_tokens = config_.replan_tokens,
                                  .hysteresis_gain = config_.hysteresis_gain,
                                  .clock = clock_};
  Result<Completion> completion =
      RunGeneration(context,
                    {.request = accepted.request,
                     .ids = accepted.ids,
                     .request_id = request_id,
                     .first = accepted.first,
                     .drafts = accepted.drafts,
                     .draft_tokens = accepted.draft_tokens,
                     .draft_stats = accepted.drafts == &drafters_.front() ? &draft_stats_ : nullptr},
                    *accepted.tails, emit);
  if (!completion.ok()) return UpstreamError(completion.status());
  return std::move(*completion);
}

EdgeService::EdgeService(EdgeConfig config, EdgeDependencies dependencies)
    : impl_(std::make_unique<Impl>(std::move(config), std::move(dependencies))) {}
EdgeService::~EdgeService() = default;
std::vector<services::Route> EdgeService::Routes(const std::string& api_key) {
  return impl_->Routes(api_key);
}
bool EdgeService::Ready() const {
  return impl_->Ready();
}
void EdgeService::BeginDrain() {
  impl_->BeginDrain();
}

}  // namespace tandem::edge_agent
