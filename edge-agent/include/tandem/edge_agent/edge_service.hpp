// tandem-edge: the edge agent as a service. An OpenAI-compatible REST API (POST /v1/completions and
// /v1/chat/completions with server-sent events, GET /v1/models, GET /v1/plan) over the split pipeline: the
// edge runs the embedding and blocks [0, k) and a cloud tail the rest; /healthz, /readyz, /metrics; optional
// bearer API key; SIGTERM drains the requests in flight.
//
// EdgeService is the service without its process: built from a config and what it runs on, it hands
// out its routes, which answer HttpRequests without a socket (services::Dispatch), so tests drive it in
// process; RunEdgeService (edge_main.hpp) is the process around it.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/edge_agent/edge_config.hpp"
#include "tandem/edge_agent/request_tails.hpp"
#include "tandem/edge_agent/split_planner.hpp"
#include "tandem/engine/drafter.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/text/chat_template.hpp"
#include "tandem/text/tokenizer.hpp"
#include "tandem/wire/compute_profile.hpp"

namespace prometheus {
class Registry;
}

namespace tandem::edge_agent {

class TailSet;

// What an EdgeService runs on. The last three are seams with working defaults.
struct EdgeDependencies {
  LoadedModel model;
  Tokenizer tokenizer;
  CloudOptions cloud;                         // what every tail shares: keys, limits, timeouts
  std::optional<scheduler::Candidate> fixed;  // --split K; nullopt: auto, which plans with `edge_profile`
  ComputeProfile edge_profile;                // this device's block times (auto only)
  std::shared_ptr<prometheus::Registry> registry;  // /metrics; the service registers its metrics here
  // auto's planner; default: an EdgePlanner over the service's tails.
  std::function<std::unique_ptr<SplitPlanner>(TailSet& tails)> planner;
  // The tails of one request; default: sessions on connections leased from the tails' pools.
  std::function<std::unique_ptr<RequestTails>(TailSet& tails)> request_tails;
  const Clock* clock = &SteadyClock::Instance();
  // --draft's drafters with their models, loaded at start-up, the default first (a request may also ask
  // for ngram, early-exit or none, which load nothing).
  std::vector<DraftModels> drafts;
  // The model's chat template (--chat-template, or the model directory's), loaded at start-up; nullopt:
  // POST /v1/chat/completions answers 400 chat_template_missing.
  std::optional<ChatTemplate> chat_template;
};

// Thread-safe: the routes run on the HTTP server's handler threads. Starts connecting to the --cloud
// tails (and, with auto, re-planning on a background thread) at construction.
class EdgeService {
 public:
  EdgeService(EdgeConfig config, EdgeDependencies dependencies);
  ~EdgeService();
  EdgeService(const EdgeService&) = delete;
  EdgeService& operator=(const EdgeService&) = delete;

  // Every route, each answering 401 without `api_key` (when not empty) but /healthz and /readyz, and
  // counted in tandem_edge_requests_total.
  std::vector<services::Route> Routes(const std::string& api_key);
  // Ready while requests can be served: through a tail, or all-local when the planner may fall back.
  bool Ready() const;
  // Refuses new completions from now on (503 shutting_down) and reads as not ready.
  void BeginDrain();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::edge_agent
