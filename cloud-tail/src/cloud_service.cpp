#include "tandem/cloud_tail/cloud_service.hpp"

#include <prometheus/registry.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <functional>

#include "tandem/base/log.hpp"
#include "tandem/base/process_memory.hpp"
#include "tandem/cloud_tail/tail_server.hpp"
#include "tandem/engine/compute_profile.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/scheduler/heartbeat_sender.hpp"
#include "tandem/services/health.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/request_signing.hpp"
#include "tandem/services/service_main.hpp"
#include "tandem/text/tokenizer.hpp"
#include "tandem/wire/curve.hpp"

namespace tandem::cloud_tail {
namespace {

// Logs the error line and returns the exit code.
int Fail(const Status& status, int exit_code = kExitFailure) {
  return services::FailService("cloud", status, exit_code);
}

struct CloudConfig {
  ModelFlags model;
  std::string tokenizer;
  std::string bind = "tcp://127.0.0.1:5555";
  std::string server_key;
  std::string allow_clients;
  bool insecure = false;
  std::string http = "127.0.0.1:9100";
  int max_sessions = 256;
  int max_kv_mb = 2048;
  int max_rows = 0;
  int max_message_mb = 16;
  int idle_timeout_s = 120;
  int drain_timeout_s = 20;
  int workers = 1;
  int max_batch = 32;
  int max_batch_wait_us = 2000;
  std::string scheduler;
  std::string advertise;
  int heartbeat_ms = 1000;
  services::ControlSecretFlag control_secret;
  services::HttpClientTlsFlags scheduler_tls{.prefix = "scheduler-",
                                             .peer_flag = "--scheduler"};  // of an https:// --scheduler
  services::TlsFlags http_tls;                                             // of --http

  void Declare(FlagSet& flags) {
    model.Declare(flags, std::string(kModelFlagHelp) + ": the same weights the edges load");
    flags.String("tokenizer", &tokenizer,
                 "optional: a tokenizer to check against the model's vocabulary (the tail never tokenizes)");
    flags.String("bind", &bind, "ZeroMQ endpoint the tail listens on (tcp://HOST:PORT; port 0 = any free)");
    flags.String("server-key", &server_key, "the tail's secret key file (PREFIX.key from tandem keygen)");
    flags.String("allow-clients", &allow_clients, "file of allowed edge public keys, one Z85 key a line");
    flags.Bool("insecure", &insecure, "plaintext ZeroMQ without CURVE: no encryption, no authentication");
    flags.String("http", &http, "HOST:PORT for /healthz, /readyz and /metrics (empty = off)");
    http_tls.Declare(flags);
    flags.Int("max-sessions", &max_sessions, "open sessions at most, all edges together");
    flags.Int("max-kv-mb", &max_kv_mb, "KV-cache memory of all sessions at most (MiB)");
    flags.Int("max-rows", &max_rows, "rows per ACTIVATIONS at most (0 = the model's context length)");
    flags.Int("max-message-mb", &max_message_mb,
              "largest ZeroMQ frame accepted (MiB); larger drops the peer");
    flags.Int("idle-timeout-s", &idle_timeout_s, "free sessions idle this long");
    flags.Int(
        "drain-timeout-s", &drain_timeout_s,
        "on SIGTERM/SIGINT, let open sessions finish for up to this long (a second signal stops at once)");
    flags.Int("workers", &workers,
              "threads running sessions' steps (a session stays on one); 0 = steps run on the I/O thread: "
              "no hand-over, lowest latency, but nothing else is served during a step");
    flags.Int("max-batch", &max_batch,
              "continuous batching: decode steps of this many sessions at most run together through the "
              "weights (1 = every step alone)");
    flags.Int("max-batch-wait-us", &max_batch_wait_us,
              "how long a batch waits for the sessions it expects (those of the last batch) before it runs "
              "without them (0 = never waits)");
    flags.String("scheduler", &scheduler,
                 "HOST:PORT (or http:// or https://HOST:PORT) of tandem-scheduler: send it heartbeats (load, "
                 "compute profile) so that it plans edges onto this tail (empty = off)");
    scheduler_tls.Declare(flags);
    flags.String("advertise", &advertise,
                 "the endpoint edges should connect to, as told to the scheduler (tcp://HOST:PORT; default: "
                 "the bound endpoint, which is wrong behind NAT or with a wildcard --bind)");
    flags.Int("heartbeat-ms", &heartbeat_ms, "interval of the heartbeats to the scheduler");
    control_secret.Declare(flags);
  }

  Status Validate() const {
    if (max_sessions < 1 || max_kv_mb < 1 || max_rows < 0 || max_message_mb < 1 || idle_timeout_s < 1 ||
        workers < 0 || drain_timeout_s < 0 || max_batch < 1 || max_batch_wait_us < 0) {
      return InvalidArgument(
          "--max-sessions, --max-kv-mb, --max-message-mb, --idle-timeout-s and --max-batch must be positive, "
          "--workers, --max-rows, --max-batch-wait-us and --drain-timeout-s >= 0");
    }
    if (model.model.empty()) return InvalidArgument("--model is required (see --help)");
    if (heartbeat_ms < 10) return InvalidArgument("--heartbeat-ms must be >= 10");
    TANDEM_RETURN_IF_ERROR(http_tls.Validate());
    if (http_tls.tls.enabled() && http.empty()) return InvalidArgument("--tls-cert needs --http");
    if (!advertise.empty() && advertise.find("://") == std::string::npos) {
      return InvalidArgument("--advertise must be an endpoint like tcp://HOST:PORT");
    }
    if (insecure && (!server_key.empty() || !allow_clients.empty())) {
      return InvalidArgument("--insecure cannot be combined with --server-key or --allow-clients");
    }
    if (!insecure && (server_key.empty() || allow_clients.empty())) {
      return InvalidArgument("--server-key and --allow-clients are required (or --insecure for plaintext)");
    }
    return Status::Ok();
  }
};

Result<TailServerOptions> ServerOptions(const CloudConfig& config) {
  TailServerOptions options;
  options.bind = config.bind;
  options.security.insecure = config.insecure;
  if (!config.insecure) {
    TANDEM_ASSIGN_OR_RETURN(options.security.own_keys, ReadSecretKeyFile(config.server_key));
    TANDEM_ASSIGN_OR_RETURN(options.allowed_clients, ReadAllowList(config.allow_clients));
  }
  options.limits.max_message_bytes = int64_t{config.max_message_mb} << 20;
  options.max_rows = config.max_rows;
  options.max_sessions = config.max_sessions;
  options.max_kv_bytes = int64_t{config.max_kv_mb} << 20;
  options.idle_timeout = std::chrono::seconds(config.idle_timeout_s);
  options.workers = config.workers;
  options.max_batch = config.max_batch;
  options.max_batch_wait = std::chrono::microseconds(config.max_batch_wait_us);
  return options;
}

// What the tail tells the scheduler in every heartbeat: its identity and limits (fixed) and its load now.
std::function<scheduler::TailReport()> HeartbeatReport(const CloudConfig& config, const LoadedModel& model,
                                                       const TailServer& server) {
  const ModelConfig& shape = model.checkpoint->config();
  scheduler::TailReport identity;
  identity.endpoint = config.advertise.empty() ? server.endpoint() : config.advertise;
  identity.fingerprint = std::to_string(model.fingerprint);
  identity.n_layers = shape.n_layers;
  identity.dim = shape.dim;
  identity.max_rows = static_cast<uint32_t>(config.max_rows > 0 ? config.max_rows : shape.seq_len);
  identity.codecs = AllActivationCodecs();
  return [identity = std::move(identity), &server] {
    const wire::TailStats stats = server.Stats();
    scheduler::TailReport report = identity;
    report.workers = static_cast<int>(stats.workers);
    report.sessions = static_cast<int>(stats.sessions);
    report.queue_depth = static_cast<int>(stats.queue_depth);
    report.utilization = std::clamp(static_cast<double>(stats.utilization), 0.0, 1.0);
    report.free_kv_bytes = stats.free_kv_bytes;
    report.profile = stats.profile;
    return report;
  };
}

// The model the tail serves, with its tokenizer (when given) checked against its vocabulary.
Result<LoadedModel> LoadServedModel(const CloudConfig& config) {
  TANDEM_ASSIGN_OR_RETURN(LoadedModel model, LoadModel(config.model, /*fingerprint=*/true));
  if (!config.tokenizer.empty()) {
    TANDEM_RETURN_IF_ERROR(
        Tokenizer::LoadForModel(config.model.model, config.tokenizer, model.checkpoint->config().vocab_size)
            .status());
  }
  return model;
}

// The scheduler's plans assume a tail holds every block: it would send a block-range tail cuts it refuses.
Status CheckSchedulerCanPlan(const CloudConfig& config, const LoadedModel& model) {
  if (model.checkpoint->holds_every_block() || config.scheduler.empty()) return Status::Ok();
  const BlockRange held = model.checkpoint->held_blocks();
  return InvalidArgument("a tail with a block-range checkpoint (blocks " + std::to_string(held.first) + ":" +
                         std::to_string(held.last) + ") cannot register with --scheduler yet");
}

// What HELLO and STATS report beyond the flags: the measured block times and the weights' hashes. Timing
// every block before serving also warms it up: the first session does not pay for kernel set-up and
// thread-pool start.
Status DescribeCompute(const LoadedModel& model, TailServerOptions& options) {
  auto profile = ProfileCompute(*model.transformer);
  if (!profile.ok()) return profile.status().WithContext("profiling the blocks");
  options.profile = std::move(*profile);
  options.block_fingerprints = model.weights.List();
  return Status::Ok();
}

// /healthz, /readyz (503 once `draining`, so that load balancers stop sending edges here), /metrics; null
// with --http "".
Result<std::unique_ptr<services::HttpServer>> StartHttp(const CloudConfig& config,
                                                        const std::atomic<bool>& draining,
                                                        std::shared_ptr<prometheus::Registry> registry) {
  if (config.http.empty()) return std::unique_ptr<services::HttpServer>();
  services::HttpServerOptions http_options;
  http_options.listen = config.http;
  config.http_tls.ApplyTo(http_options, registry.get());
  return services::HttpServer::Start(
      http_options, services::HealthRoutes([&draining] { return !draining.load(); }, std::move(registry)));
}

void LogServing(const CloudConfig& config, const LoadedModel& model, const TailServer& server,
                const services::HttpServer* http) {
  const BlockRange held = model.checkpoint->held_blocks();
  Log(LogLevel::kInfo, "cloud", "serving",
      {{"endpoint", server.endpoint()},
       {"http", http ? http->address() : "off"},
       {"tls", config.http_tls.Tls()},
       {"client_certs", config.http_tls.ClientCerts()},
       {"model", config.model.model},
       {"fingerprint", std::to_string(model.fingerprint)},
       {"blocks", std::to_string(held.first) + ":" + std::to_string(held.last)},
       {"head", model.checkpoint->holds_head() ? "yes" : "no"},
       // Weights are mapped and paged in as they are read: after the profile, what this tail holds.
       {"resident_mb", std::to_string(static_cast<int64_t>(ProcessMemoryMegabytes("VmRSS")))},
       {"kernels", ActiveKernels().name},
       {"security", config.insecure ? "insecure" : "curve"}});
}

// Heartbeats to the scheduler (null without --scheduler). On SIGTERM the last one says "draining", so that
// the scheduler stops planning edges here at once rather than after its dead_after.
Result<std::unique_ptr<scheduler::HeartbeatSender>> StartHeartbeats(const CloudConfig& config,
                                                                    const LoadedModel& model,
                                                                    const TailServer& server) {
  if (config.scheduler.empty()) return std::unique_ptr<scheduler::HeartbeatSender>();
  const std::string advertised = config.advertise.empty() ? server.endpoint() : config.advertise;
  if (advertised.find("://0.0.0.0:") != std::string::npos || advertised.find("://*:") != std::string::npos) {
    Log(LogLevel::kWarn, "cloud", "advertising a wildcard address to the scheduler; set --advertise",
        {{"endpoint", advertised}});
  }
  scheduler::HeartbeatOptions heartbeat_options;
  heartbeat_options.scheduler = config.scheduler;
  heartbeat_options.tls = config.scheduler_tls.tls;
  heartbeat_options.interval = std::chrono::milliseconds(config.heartbeat_ms);
  // A beat may take up to two intervals (at least half a second) before it counts as failed.
  heartbeat_options.timeout = std::chrono::milliseconds(std::clamp(2 * config.heartbeat_ms, 500, 5000));
  if (!config.control_secret.secret.empty()) {
    TANDEM_ASSIGN_OR_RETURN(heartbeat_options.signer,
                            services::RequestSigner::Create(config.control_secret.secret, advertised));
  }
  return scheduler::HeartbeatSender::Start(heartbeat_options, HeartbeatReport(config, model, server));
}

// The parts of a running tail that a stop signal winds down.
struct RunningTail {
  std::unique_ptr<TailServer> server;
  std::unique_ptr<services::HttpServer> http;
  std::unique_ptr<scheduler::HeartbeatSender> heartbeats;
};

// After the first stop signal: refuse new sessions, let open ones finish for --drain-timeout-s (a second
// signal cuts that short), then stop everything.
void DrainAndStop(const CloudConfig& config, const sigset_t& stop_signals, int signal_number,
                  std::atomic<bool>& draining, RunningTail& tail) {
  draining = true;
  tail.server->BeginDrain();
  if (tail.heartbeats) tail.heartbeats->Stop(/*draining=*/true);
  Log(LogLevel::kInfo, "cloud", "draining",
      {{"signal", strsignal(signal_number)},
       {"open_sessions", std::to_string(tail.server->open_sessions())}});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(config.drain_timeout_s);
  const timespec poll_interval{0, 50'000'000};
  while (tail.server->open_sessions() > 0 && std::chrono::steady_clock::now() < deadline) {
    if (sigtimedwait(&stop_signals, nullptr, &poll_interval) > 0) break;  // a second signal: stop now
  }
  Log(LogLevel::kInfo, "cloud", "stopping",
      {{"open_sessions", std::to_string(tail.server->open_sessions())}});
  if (tail.heartbeats) tail.heartbeats->Stop();
  if (tail.http) tail.http->Stop();
  tail.server->Stop();
}

}  // namespace

int RunCloudService(std::span<const std::string> args) {
  // Every thread started from here on inherits the blocked signals; the main thread takes them in sigwait.
  const sigset_t stop_signals = services::BlockStopSignals();

  CloudConfig config;
  FlagSet flags(
      "usage: tandem-cloud --model M --server-key cloud.key --allow-clients clients.txt "
      "[--bind tcp://127.0.0.1:5555] [--http 127.0.0.1:9100] [flags]",
      "TANDEM");
  config.Declare(flags);
  if (auto exit = services::ParseServiceFlags(flags, args, "cloud")) return *exit;
  if (Status valid = config.Validate(); !valid.ok()) return Fail(valid, kExitUsage);
  if (Status loaded = config.control_secret.Load(); !loaded.ok()) return Fail(loaded, kExitUsage);
  if (Status loaded = config.scheduler_tls.Load(config.scheduler); !loaded.ok())
    return Fail(loaded, kExitUsage);
  if (config.insecure) {
    Log(LogLevel::kWarn, "cloud", "CURVE is off (--insecure): any peer can connect and read activations");
  }
  auto options = ServerOptions(config);
  if (!options.ok()) return Fail(options.status());
  auto model = LoadServedModel(config);
  if (!model.ok()) return Fail(model.status());
  if (Status described = DescribeCompute(*model, *options); !described.ok()) return Fail(described);
  if (Status plannable = CheckSchedulerCanPlan(config, *model); !plannable.ok()) {
    return Fail(plannable, kExitUsage);
  }

  auto registry = std::make_shared<prometheus::Registry>();
  services::RegisterBuildInfo(*registry, {{"version", TANDEM_VERSION}, {"kernels", ActiveKernels().name}});
  std::atomic<bool> draining{false};  // outlives the HTTP server that reads it
  RunningTail tail;
  auto server = TailServer::Start(model->transformer, model->fingerprint, *options, registry);
  if (!server.ok()) return Fail(server.status());
  tail.server = std::move(*server);
  auto http = StartHttp(config, draining, registry);
  if (!http.ok()) return Fail(http.status(), services::HttpStartExitCode(http.status()));
  tail.http = std::move(*http);
  LogServing(config, *model, *tail.server, tail.http.get());
  auto heartbeats = StartHeartbeats(config, *model, *tail.server);
  if (!heartbeats.ok()) return Fail(heartbeats.status());
  tail.heartbeats = std::move(*heartbeats);

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  DrainAndStop(config, stop_signals, signal_number, draining, tail);
  return 0;
}

}  // namespace tandem::cloud_tail
