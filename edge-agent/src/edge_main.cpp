#include "tandem/edge_agent/edge_main.hpp"

#include <prometheus/registry.h>

#include <csignal>
#include <cstring>

#include "tandem/base/log.hpp"
#include "tandem/edge_agent/edge_service.hpp"
#include "tandem/engine/compute_profile.hpp"
#include "tandem/engine/linear.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/services/health.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/service_main.hpp"
#include "tandem/text/chat_template.hpp"

namespace tandem::edge_agent {
namespace {

constexpr char kUsage[] =
    "usage: tandem-edge --model M [--tokenizer T] --cloud tcp://HOST:PORT --cloud-key cloud.pub "
    "--client-key edge.key [--listen 127.0.0.1:8080] [--split auto|K] [--codec C] [flags]";

// Logs the error line and returns the exit code.
int Fail(const Status& status, int exit_code = kExitFailure) {
  return services::FailService("edge", status, exit_code);
}

// This device's block times, which auto plans with (nothing to plan for a fixed split).
Result<ComputeProfile> ProfileEdge(const Transformer& model, bool planned) {
  if (!planned) return ComputeProfile{};
  // The planner needs this device's own block times, with its weights, precision and threads.
  auto measured = ProfileCompute(model);
  if (!measured.ok()) return measured.status().WithContext("profiling the blocks");
  return measured;
}

std::shared_ptr<prometheus::Registry> MetricsRegistry() {
  auto registry = std::make_shared<prometheus::Registry>();
  services::RegisterBuildInfo(*registry, {{"version", TANDEM_VERSION}, {"kernels", ActiveKernels().name}});
  return registry;
}

// Serves until a stop signal, then drains: requests in flight may finish for --drain-timeout-s; a second
// signal exits at once.
int Serve(EdgeService& service, prometheus::Registry& registry, const EdgeConfig& config,
          const std::string& api_key, const std::string& codec, const std::string& chat_template,
          const sigset_t& stop_signals) {
  services::HttpServerOptions http_options;
  http_options.listen = config.listen;
  http_options.max_body_bytes = static_cast<size_t>(config.max_body_kb) * 1024;
  // Every admitted request holds a handler thread while it waits or generates; a few more serve the rest.
  http_options.handler_threads = config.max_concurrent + config.max_queue + 8;
  config.tls.ApplyTo(http_options, &registry);
  auto http = services::HttpServer::Start(http_options, service.Routes(api_key));
  if (!http.ok()) return Fail(http.status(), services::HttpStartExitCode(http.status()));
  Log(LogLevel::kInfo, "edge", "serving",
      {{"listen", (*http)->address()},
       {"tls", config.tls.Tls()},
       {"client_certs", config.tls.ClientCerts()},
       {"cloud", config.cloud.endpoint},
       {"split", config.CloudEndpoints().empty() ? std::string("local") : config.split},
       {"codec", codec},
       {"auth", api_key.empty() ? "none" : "bearer"},
       {"chat_template", chat_template},
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

}  // namespace

int RunEdgeService(std::span<const std::string> args) {
  const sigset_t stop_signals = services::BlockStopSignals();
  EdgeConfig config;
  FlagSet flags(kUsage, "TANDEM");
  config.Declare(flags);
  if (auto exit = services::ParseServiceFlags(flags, args, "edge")) return *exit;
  if (Status valid = config.Validate(); !valid.ok()) return Fail(valid, kExitUsage);
  if (Status loaded = config.control_secret.Load(); !loaded.ok()) return Fail(loaded, kExitUsage);
  if (Status loaded = config.scheduler_tls.Load(config.scheduler); !loaded.ok())
    return Fail(loaded, kExitUsage);
  auto api_key = config.ReadApiKey();
  if (!api_key.ok()) return Fail(api_key.status());
  auto cloud = config.cloud.Resolve();
  if (!cloud.ok()) return Fail(cloud.status());
  auto model = LoadModel(config.model, /*fingerprint=*/true);
  if (!model.ok()) return Fail(model.status());
  const ActivationCodec codec = *ParseActivationCodec(config.cloud.codec);  // checked by Validate
  auto fixed = config.ResolveSplit(model->transformer->n_layers(), codec);
  if (!fixed.ok()) return Fail(fixed.status(), kExitUsage);
  auto tokenizer =
      Tokenizer::LoadForModel(config.model.model, config.tokenizer, model->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(tokenizer.status());
  // A template Tandem cannot render is refused here, with its reason, rather than at the first chat.
  auto chat_template = ChatTemplate::LoadForModel(config.model.model, config.chat_template, *tokenizer);
  if (!chat_template.ok())
    return Fail(chat_template.status().WithContext("loading the chat template"), kExitUsage);
  const std::string chat_origin = *chat_template ? (*chat_template)->origin() : "none";
  auto profile = ProfileEdge(*model->transformer, !*fixed);
  if (!profile.ok()) return Fail(profile.status());
  auto drafts = config.LoadDrafters(model->transformer);
  if (!drafts.ok()) return Fail(drafts.status());
  const std::shared_ptr<prometheus::Registry> registry = MetricsRegistry();
  EdgeService service(config, {.model = std::move(*model),
                               .tokenizer = std::move(*tokenizer),
                               .cloud = std::move(*cloud),
                               .fixed = std::move(*fixed),
                               .edge_profile = std::move(*profile),
                               .registry = registry,
                               .drafts = std::move(*drafts),
                               .chat_template = std::move(*chat_template)});
  return Serve(service, *registry, config, *api_key,
               config.split == "auto" ? config.allowed_codecs : codec.Name(), chat_origin, stop_signals);
}

}  // namespace tandem::edge_agent
