#include "tandem/services/service_main.hpp"

#include <cstdio>

#include "tandem/common/log.hpp"

namespace tandem::services {

sigset_t BlockStopSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

void IgnoreStopSignals() {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGTERM, &ignore, nullptr);
  sigaction(SIGINT, &ignore, nullptr);
}

int FailService(std::string_view component, const Status& status, int exit_code) {
  Log(LogLevel::kError, component, status.message());
  return exit_code;
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
