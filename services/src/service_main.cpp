#include "tandem/services/service_main.hpp"

#include <atomic>
#include <cstdio>
#include <thread>

#include "tandem/base/log.hpp"
#include "tandem/services/http_server.hpp"

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
