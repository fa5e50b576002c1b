// tandem-scheduler's wiring, apart from the service's logic: its flags (each with its TANDEM_ variable),
// the HTTP server, a reaper thread that expires silent tails without traffic, and the drain on SIGTERM.
#include <prometheus/registry.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <mutex>
#include <thread>

#include "tandem/base/flags.hpp"
#include "tandem/base/log.hpp"
#include "tandem/scheduler/scheduler_service.hpp"
#include "tandem/services/request_signing.hpp"
#include "tandem/services/service_main.hpp"

namespace tandem::scheduler {
namespace {

constexpr char kComponent[] = "scheduler";

struct SchedulerConfig {
  std::string listen = "127.0.0.1:9300";
  int dead_after_ms = 3000;
  float default_rtt_ms = 2;
  float default_bandwidth_mbit = 100;
  float per_plan_load = 0.05f;
  float balance_margin = 0.1f;
  int top_candidates = 5;
  int max_body_kb = 4096;
  int drain_timeout_s = 5;
  services::ControlSecretFlag control_secret;
  services::TlsFlags tls;

  void Declare(FlagSet& flags) {
    flags.String("listen", &listen, "HOST:PORT of the scheduler's HTTP API (port 0 = any free)");
    tls.Declare(flags);
    flags.Int("dead-after-ms", &dead_after_ms, "a tail whose last heartbeat is this old leaves the registry");
    flags.Float("default-rtt-ms", &default_rtt_ms,
                "edge-to-tail round trip assumed when a plan request gives no estimate for a tail");
    flags.Float("default-bandwidth-mbit", &default_bandwidth_mbit,
                "edge-to-tail bandwidth (Mbit/s) assumed when a plan request gives no estimate for a tail");
    flags.Float("per-plan-load", &per_plan_load,
                "utilization a plan adds to its tail until the tail's next heartbeat (spreads edges asking "
                "between two heartbeats); the sum is capped at 0.95");
    flags.Int("top-candidates", &top_candidates, "candidates listed in a plan answer");
    flags.Float("balance-margin", &balance_margin,
                "tails whose best plan costs at most this fraction more than the best one are near-ties: "
                "the least loaded of them gets the edge");
    flags.Int("max-body-kb", &max_body_kb, "the largest request body (KiB)");
    flags.Int("drain-timeout-s", &drain_timeout_s,
              "on SIGTERM/SIGINT, how long requests in flight may finish");
    control_secret.Declare(flags);
  }

  Status Validate() const {
    if (dead_after_ms < 1 || top_candidates < 1 || max_body_kb < 1 || drain_timeout_s < 0) {
      return InvalidArgument(
          "--dead-after-ms, --top-candidates and --max-body-kb must be positive, --drain-timeout-s >= 0");
    }
    if (!(default_rtt_ms >= 0) || !std::isfinite(default_rtt_ms) || !(default_bandwidth_mbit > 0) ||
        !std::isfinite(default_bandwidth_mbit)) {
      return InvalidArgument("--default-rtt-ms must be >= 0 and --default-bandwidth-mbit > 0");
    }
    if (!(per_plan_load >= 0 && per_plan_load <= 1))
      return InvalidArgument("--per-plan-load must be in [0, 1]");
    if (!(balance_margin >= 0 && balance_margin <= 1))
      return InvalidArgument("--balance-margin must be in [0, 1]");
    return tls.Validate();
  }

  SchedulerOptions Options() const {
    SchedulerOptions options;
    options.registry.dead_after = std::chrono::milliseconds(dead_after_ms);
    // Flags are floats: rounded so that 0.05 reads back as 0.05, not 0.0500000007.
    const auto exact = [](float value) { return std::round(static_cast<double>(value) * 1e6) / 1e6; };
    options.registry.per_plan_load = exact(per_plan_load);
    options.default_rtt_ms = exact(default_rtt_ms);
    options.default_bandwidth_mbit = exact(default_bandwidth_mbit);
    options.top_candidates = top_candidates;
    options.balance_margin = exact(balance_margin);
    options.control_secret = control_secret.secret;
    return options;
  }
};

// Expires silent tails (log line, metrics) every `tick` even when no request comes in, until destroyed.
class Reaper {
 public:
  Reaper(SchedulerService& service, std::chrono::milliseconds tick) : service_(service), tick_(tick) {
    thread_ = std::thread([this] { Run(); });
  }
  ~Reaper() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }

 private:
  void Run() {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, tick_, [&] { return stopping_; })) {
      lock.unlock();
      service_.ExpireDead();
      lock.lock();
    }
  }

  SchedulerService& service_;
  const std::chrono::milliseconds tick_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

// Waits for SIGTERM or SIGINT, then lets the requests in flight finish (a second signal cuts them off).
void ServeUntilSignalled(services::HttpServer& http, const sigset_t& stop_signals, int drain_timeout_s) {
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  Log(LogLevel::kInfo, kComponent, "draining", {{"signal", strsignal(signal_number)}});
  services::DrainUnlessSignalledAgain(http, stop_signals, std::chrono::seconds(drain_timeout_s), [&] {
    // The operator wants out now: requests in flight are cut off.
    Log(LogLevel::kWarn, kComponent, "second signal: stopping without waiting");
    http.Stop();
  });
}

}  // namespace

int RunSchedulerService(std::span<const std::string> args) {
  const sigset_t stop_signals = services::BlockStopSignals();
  const auto fail = [](const Status& status, int code = kExitFailure) {
    return services::FailService(kComponent, status, code);
  };

  SchedulerConfig config;
  FlagSet flags("usage: tandem-scheduler [--listen 127.0.0.1:9300] [--dead-after-ms 3000] [flags]", "TANDEM");
  config.Declare(flags);
  if (auto exit = services::ParseServiceFlags(flags, args, kComponent)) return *exit;
  if (Status valid = config.Validate(); !valid.ok()) return fail(valid, kExitUsage);
  if (Status loaded = config.control_secret.Load(); !loaded.ok()) return fail(loaded, kExitUsage);
  if (config.control_secret.secret.empty()) {
    Log(LogLevel::kWarn, kComponent,
        "the control plane is unauthenticated (no --control-secret-file): anyone who reaches this port can "
        "register tails and steer edges");
  }

  auto registry = std::make_shared<prometheus::Registry>();
  auto service = SchedulerService::Create(config.Options(), SteadyClock::Instance(), registry);
  if (!service.ok()) return fail(service.status(), kExitUsage);
  services::HttpServerOptions http_options;
  http_options.listen = config.listen;
  http_options.max_body_bytes = static_cast<size_t>(config.max_body_kb) * 1024;
  config.tls.ApplyTo(http_options, registry.get());
  auto http = services::HttpServer::Start(http_options, (*service)->Routes());
  if (!http.ok()) return fail(http.status(), services::HttpStartExitCode(http.status()));
  Log(LogLevel::kInfo, kComponent, "serving",
      {{"listen", (*http)->address()},
       {"tls", config.tls.Tls()},
       {"client_certs", config.tls.ClientCerts()},
       {"dead_after_ms", std::to_string(config.dead_after_ms)},
       {"per_plan_load", nlohmann::json(config.Options().registry.per_plan_load).dump()},
       {"control_plane", config.control_secret.secret.empty() ? "unauthenticated" : "hmac"}});
  {
    Reaper reaper(**service, std::chrono::milliseconds(std::clamp(config.dead_after_ms / 4, 10, 250)));
    ServeUntilSignalled(**http, stop_signals, config.drain_timeout_s);
  }
  Log(LogLevel::kInfo, kComponent, "stopping", {{"in_flight", std::to_string((*http)->in_flight())}});
  (*http)->Stop();
  return 0;
}

}  // namespace tandem::scheduler
