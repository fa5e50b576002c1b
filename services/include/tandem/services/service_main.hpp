// What every Tandem service's main does the same way: exit codes, stop signals, flag parsing, fatal errors.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tandem/base/exit_codes.hpp"
#include "tandem/base/flags.hpp"
#include "tandem/base/status.hpp"
#include "tandem/services/http_client.hpp"
#include "tandem/services/http_server.hpp"

namespace prometheus {
class Registry;
}

namespace tandem::services {

// Blocks SIGTERM and SIGINT in the calling thread and in every thread it starts afterwards (call it first
// in main), and makes threads started before (by libraries) pass them on to the calling thread; returns
// the set for sigwait/sigtimedwait.
sigset_t BlockStopSignals();

// After the first stop signal: drains `server` (new requests refused, those in flight finish, for up to
// `timeout`) while watching for a second signal. A second signal calls `on_second_signal` (which may end the
// process, or stop the server to cut the drain short). Returns once the drain is over; false when a second
// signal came.
bool DrainUnlessSignalledAgain(HttpServer& server, const sigset_t& stop_signals, std::chrono::seconds timeout,
                               const std::function<void()>& on_second_signal);

// Logs `status` as `component`'s error line and returns `exit_code`.
int FailService(std::string_view component, const Status& status, int exit_code = kExitFailure);

// --tls-cert, --tls-key, --tls-client-ca: HTTPS on a service's HTTP port, declared the same way by every
// service. Unset: plain HTTP (for loopback).
struct TlsFlags {
  HttpTlsOptions tls;

  void Declare(FlagSet& flags);
  // Cert and key come together; a client CA only with them.
  Status Validate() const;
  // Sets http.tls; with TLS on, counts failed handshakes in `registry`'s
  // tandem_http_tls_handshake_failures_total (when given; the registry must outlive the server).
  void ApplyTo(HttpServerOptions& http, prometheus::Registry* registry) const;
  // For the serving log line: "on" or "off", and whether client certificates are required.
  std::string Tls() const { return tls.enabled() ? "on" : "off"; }
  std::string ClientCerts() const { return tls.client_ca_file.empty() ? "none" : "required"; }
};

// How a service checks an https:// peer it calls, declared alike by every service that calls one:
// --PREFIXca, --PREFIXclient-cert, --PREFIXclient-key (the tails' and edges' --scheduler-ca, ...).
struct HttpClientTlsFlags {
  std::string prefix;     // "scheduler-"
  std::string peer_flag;  // the flag that gives the peer's address, for messages: "--scheduler"
  HttpClientTlsOptions options;
  std::shared_ptr<const HttpClientTls> tls;  // Load()'s result; null for a plain http:// peer

  void Declare(FlagSet& flags);
  // For the peer at `address`: an https:// one gets a context from the files (the system's CAs without a
  // CA file); a plain one must have no TLS flags. InvalidArgument naming the flag, or the file that cannot
  // be used.
  Status Load(const std::string& address);
};

// The exit code for an HttpServer::Start error: a bad option or file (InvalidArgument) is a usage error.
int HttpStartExitCode(const Status& status);

// Parses `args`: nullopt to go on, or the exit code (0 after printing --help, kExitUsage on a bad flag).
std::optional<int> ParseServiceFlags(FlagSet& flags, std::span<const std::string> args,
                                     std::string_view component);

}  // namespace tandem::services
