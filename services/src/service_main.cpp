#include "tandem/services/service_main.hpp"

#include <atomic>
#include <cstdio>
#include <thread>

#include "tandem/base/log.hpp"
#include "tandem/services/http_server.hpp"
#include "tandem/services/metric_families.hpp"

namespace tandem::services {

namespace {

pthread_t waiting_thread;

// Threads that libraries started before main (OpenBLAS's pool) never had the stop signals blocked, and the
// kernel may hand them a process-wide SIGTERM; instead of the default action (the process dies at once),
// they pass it on to the thread that waits for it, where it stays pending until sigwait takes it.
// pthread_kill is async-signal-safe.
void ForwardStopSignal(int signal_number) {
  pthread_kill(waiting_thread, signal_number);
}

}  // namespace

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  waiting_thread = pthread_self();
  struct sigaction forward {};
  forward.sa_handler = ForwardStopSignal;
  sigemptyset(&forward.sa_mask);
  sigaction(SIGTERM, &forward, nullptr);
  sigaction(SIGINT, &forward, nullptr);
  return signals;
}

bool DrainUnlessSignalledAgain(HttpServer& server, const sigset_t& stop_signals, std::chrono::seconds timeout,
                               const std::function<void()>& on_second_signal) {
  std::atomic<bool> drained{false};
  std::thread drainer([&] {
    server.Drain(timeout);
    drained = true;
  });
  bool quiet = true;
  const timespec poll_interval{0, 50'000'000};
  while (!drained.load()) {
    if (sigtimedwait(&stop_signals, nullptr, &poll_interval) > 0) {
      quiet = false;
      on_second_signal();
      break;
    }
  }
  drainer.join();
  return quiet;
}

int FailService(std::string_view component, const Status& status, int exit_code) {
  Log(LogLevel::kError, component, status.message());
  return exit_code;
}

void TlsFlags::Declare(FlagSet& flags) {
  flags.String("tls-cert", &tls.cert_chain_file,
               "HTTPS: the server certificate chain (PEM; the certificate first); plain HTTP when unset");
  flags.String("tls-key", &tls.key_file, "HTTPS: the certificate's private key (PEM)");
  flags.String("tls-client-ca", &tls.client_ca_file,
               "HTTPS: require client certificates signed by these CAs (PEM)");
}

Status TlsFlags::Validate() const {
  if (tls.cert_chain_file.empty() != tls.key_file.empty()) {
    return InvalidArgument("--tls-cert and --tls-key go together");
  }
  if (!tls.client_ca_file.empty() && !tls.enabled()) {
    return InvalidArgument("--tls-client-ca needs --tls-cert and --tls-key");
  }
  return Status::Ok();
}

void TlsFlags::ApplyTo(HttpServerOptions& http, prometheus::Registry* registry) const {
  http.tls = tls;
  if (!tls.enabled() || registry == nullptr) return;
  http.tls_handshake_failures =
      &CounterFamily(*registry, "tandem_http_tls_handshake_failures_total",
                     "HTTPS connections closed because the TLS handshake failed (plain HTTP, a missing or "
                     "unknown client certificate, a timeout)")
           .Add({});
}

void HttpClientTlsFlags::Declare(FlagSet& flags) {
  flags.String(prefix + "ca", &options.ca_file,
               "for an https:// " + peer_flag +
                   ": the CAs that sign its certificate (PEM; default: the system's CAs)");
  flags.String(
      prefix + "client-cert", &options.client_cert_file,
      "for an https:// " + peer_flag + " that requires client certificates: this client's certificate (PEM)");
  flags.String(prefix + "client-key", &options.client_key_file, "the client certificate's private key (PEM)");
}

Status HttpClientTlsFlags::Load(const std::string& address) {
  tls.reset();
  if (options.client_cert_file.empty() != options.client_key_file.empty()) {
    return InvalidArgument("--" + prefix + "client-cert and --" + prefix + "client-key go together");
  }
  if (!IsHttpsAddress(address)) {
    const bool any = !options.ca_file.empty() || !options.client_cert_file.empty();
    if (!any) return Status::Ok();
    return InvalidArgument("--" + prefix + "ca and --" + prefix + "client-cert need an https:// " +
                           peer_flag + " (it is '" + address + "')");
  }
  auto made = MakeHttpClientTls(options);
  if (!made.ok()) return made.status().WithContext(peer_flag);
  tls = std::move(*made);
  return Status::Ok();
}

int HttpStartExitCode(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure;
}

std::optional<int> ParseServiceFlags(FlagSet& flags, std::span<const std::string> args,
                                     std::string_view component) {
  if (Status parsed = flags.Parse(args); !parsed.ok()) return FailService(component, parsed, kExitUsage);
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  return std::nullopt;
}

}  // namespace tandem::services
