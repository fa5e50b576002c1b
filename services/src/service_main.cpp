#include "tandem/services/service_main.hpp"

#include <atomic>
#include <cstdio>
#include <thread>

#include "tandem/common/log.hpp"
#include "tandem/services/http_server.hpp"

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
