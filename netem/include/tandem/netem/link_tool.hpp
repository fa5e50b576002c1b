// tandem-link's command line: flags (each also a TANDEM_* environment variable) into LinkProxyOptions,
// the proxy, and a clean stop on SIGTERM/SIGINT. A function rather than main so tests run it in-process.
#pragma once

#include <span>
#include <string>

namespace tandem::netem {

// Returns the process exit code: 0 after a clean stop, 1 on a runtime failure (the address cannot be
// bound), 2 on bad usage (flags, schedule text, a non-loopback listen address). Blocks SIGTERM and SIGINT
// in the calling thread and waits for one of them there.
int RunLinkProxy(std::span<const std::string> args);

}  // namespace tandem::netem
