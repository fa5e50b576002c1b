#include "tandem/netem/link_tool.hpp"

#include <signal.h>

#include <cstdio>
#include <cstring>
#include <utility>

#include "tandem/base/exit_codes.hpp"
#include "tandem/base/flags.hpp"
#include "tandem/base/log.hpp"
#include "tandem/netem/link_proxy.hpp"

namespace tandem::netem {
namespace {

constexpr std::string_view kComponent = "link";

struct LinkConfig {
  std::string listen = "127.0.0.1:0";
  std::string target;
  std::string schedule;
  bool loop = false;
  std::string rate;
  std::string rtt = "0ms";
  bool allow_non_loopback = false;

  void Declare(FlagSet& flags) {
    flags.String("listen", &listen,
                 "HOST:PORT to accept on (:PORT or PORT = 127.0.0.1; port 0 = any free port, logged)");
    flags.String("target", &target, "HOST:PORT every connection is forwarded to (the cloud tail)");
    flags.String("schedule", &schedule,
                 "phases played from start, e.g. 30s:100mbit:5ms,20s:down,30s:1mbit:150ms "
                 "(DURATION:RATE:RTT or DURATION:down; rates in bit/kbit/mbit/gbit per direction)");
    flags.Bool("loop", &loop, "repeat the schedule (otherwise its last phase stays)");
    flags.String("rate", &rate,
                 "fixed rate per direction without --schedule, e.g. 10mbit (empty = no limit)");
    flags.String("rtt", &rtt,
                 "fixed round-trip time without --schedule, e.g. 40ms (each direction delays half)");
    flags.Bool("allow-non-loopback", &allow_non_loopback,
               "allow --listen on an address other than loopback (exposes the target to the network)");
  }

  Result<LinkProxyOptions> Options(const FlagSet& flags) const {
    LinkProxyOptions options;
    if (target.empty())
      return InvalidArgument("--target is required (HOST:PORT of the cloud tail; see --help)");
    options.listen = listen;
    options.target = target;
    options.allow_non_loopback = allow_non_loopback;
    options.loop = loop;
    if (!schedule.empty()) {
      if (flags.WasSet("rate") || flags.WasSet("rtt")) {
        return InvalidArgument("--schedule cannot be combined with --rate or --rtt (the phases carry both)");
      }
      auto phases = ParseLinkSchedule(schedule);
      if (!phases.ok()) return phases.status().WithContext("--schedule");
      options.schedule = std::move(*phases);
      return options;
    }
    if (loop) return InvalidArgument("--loop needs --schedule");
    if (!rate.empty()) {
      auto parsed = ParseLinkRate(rate);
      if (!parsed.ok()) return parsed.status().WithContext("--rate");
      options.conditions.rate_bps = *parsed;
    }
    auto parsed_rtt = ParseLinkDuration(rtt);
    if (!parsed_rtt.ok()) return parsed_rtt.status().WithContext("--rtt");
    options.conditions.rtt = *parsed_rtt;
    return options;
  }
};

int Fail(const Status& status, int exit_code) {
  Log(LogLevel::kError, kComponent, status.message());
  return exit_code;
}

}  // namespace

int RunLinkProxy(std::span<const std::string> args) {
  // Blocked before the I/O thread starts, so it inherits the mask and the main thread takes them in sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  LinkConfig config;
  FlagSet flags(
      "usage: tandem-link --target HOST:PORT [--listen 127.0.0.1:PORT] "
      "(--schedule 30s:100mbit:5ms,20s:down,... [--loop] | --rate 10mbit --rtt 40ms)",
      "TANDEM");
  config.Declare(flags);
  if (Status parsed = flags.Parse(args); !parsed.ok()) return Fail(parsed, kExitUsage);
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  auto options = config.Options(flags);
  if (!options.ok()) return Fail(options.status(), kExitUsage);
  auto proxy = LinkProxy::Start(std::move(*options));
  if (!proxy.ok()) {
    return Fail(proxy.status(),
                proxy.status().code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailure);
  }

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  Log(LogLevel::kInfo, kComponent, "stopping", {{"signal", strsignal(signal_number)}});
  (*proxy)->Stop();
  return 0;
}

}  // namespace tandem::netem
