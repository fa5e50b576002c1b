// tandem-cloud: the cloud tail as a process. Flags (each also a TANDEM_* environment variable), model and
// keys, the ZeroMQ tail server, /healthz /readyz /metrics over HTTP, heartbeats to tandem-scheduler
// (--scheduler), and a clean stop on SIGTERM/SIGINT.
#pragma once

#include <span>
#include <string>

namespace tandem::cloud_tail {

// Runs until SIGTERM or SIGINT; returns the process exit code (0 after a clean stop, 1 on a runtime
// failure, 2 on bad usage).
int RunCloudService(std::span<const std::string> args);

}  // namespace tandem::cloud_tail
