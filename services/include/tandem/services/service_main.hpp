// What every Tandem service's main does the same way: exit codes, stop signals, flag parsing, fatal errors.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "tandem/base/exit_codes.hpp"
#include "tandem/base/flags.hpp"
#include "tandem/base/status.hpp"

namespace tandem::services {

class HttpServer;

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

// Parses `args`: nullopt to go on, or the exit code (0 after printing --help, kExitUsage on a bad flag).
std::optional<int> ParseServiceFlags(FlagSet& flags, std::span<const std::string> args,
                                     std::string_view component);

}  // namespace tandem::services
