#include "tandem/netem/link_proxy.hpp"

#include <cstdio>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "link_connection.hpp"
#include "tandem/base/log.hpp"
#include "tandem/base/strings.hpp"

namespace tandem::netem {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using TimePoint = Clock::TimePoint;
using boost::system::error_code;

constexpr std::string_view kComponent = "link";

std::string FormatMs(std::chrono::microseconds duration) {
  const int64_t us = duration.count();
  if (us % 1000 == 0) return std::to_string(us / 1000);
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", static_cast<double>(us) / 1000.0);
  return text;
}

}  // namespace

class LinkProxy::Impl {
 public:
  explicit Impl(LinkProxyOptions options)
      : options_(std::move(options)),
        work_(asio::make_work_guard(ioc_)),
        acceptor_(ioc_),
        accept_backoff_(ioc_),
        schedule_timer_(ioc_),
        conditions_(options_.schedule.empty() ? options_.conditions : options_.schedule[0].conditions),
        shared_conditions_(conditions_) {}

  ~Impl() { Stop(); }

  Status Listen();
  void Run();
  void Stop();
  void SetConditions(const LinkConditions& conditions);

  LinkConditions conditions() const {
    std::lock_guard lock(conditions_mutex_);
    return shared_conditions_;
  }
  uint16_t port() const { return local_.port(); }
  std::string address() const {
    return (local_.address().is_v6() ? "[" + local_.address().to_string() + "]"
                                     : local_.address().to_string()) +
           ":" + std::to_string(local_.port());
  }

 private:
  // The listen address, refused unless loopback (or allowed); and the target's addresses, into target_.
  Result<tcp::endpoint> ResolveListen();
  Status ResolveTarget();
  void Accept();
  void PlayPhase(size_t index, uint64_t cycle, TimePoint phase_start);
  // On the I/O thread: the new conditions, in force for every connection from now on.
  void Apply(const LinkConditions& conditions);
  // The fields every conditions line carries, so that a harness can align its measurements to them.
  struct ConditionFields {
    std::string rate_bps;
    std::string rtt_ms;
    std::string up;
    std::string t_ms;  // since Start, on steady_clock
  };
  ConditionFields Describe(const LinkConditions& conditions) const;

  LinkProxyOptions options_;
  // The timers wait on steady_clock, so the proxy (and every LinkModel of its connections) reads it.
  const Clock& clock_ = SteadyClock::Instance();
  asio::io_context ioc_{1};
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;
  asio::steady_timer schedule_timer_;
  tcp::resolver::results_type target_;
  tcp::endpoint local_;
  TimePoint started_{};

  // I/O thread only.
  LinkConditions conditions_;
  std::map<uint64_t, std::shared_ptr<LinkConnection>> connections_;
  uint64_t next_id_ = 1;

  mutable std::mutex conditions_mutex_;
  LinkConditions shared_conditions_;  // a copy of conditions_ for other threads

  std::mutex stop_mutex_;  // Stop and SetConditions: no post to an I/O thread that is gone
  bool stopped_ = false;
  std::thread thread_;
};

Result<tcp::endpoint> LinkProxy::Impl::ResolveListen() {
  auto listen = ParseHostPort(options_.listen, "127.0.0.1");
  if (!listen.ok()) return listen.status().WithContext("listen address");
  const std::string& host = listen->host;
  const uint16_t port = listen->port;
  error_code ec;
  tcp::endpoint endpoint;
  if (const asio::ip::address address = asio::ip::make_address(host, ec); !ec) {
    endpoint = tcp::endpoint(address, port);
  } else {
    tcp::resolver resolver(ioc_);
    const auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return InvalidArgument("listen address '" + options_.listen + "': cannot resolve '" + host + "'");
    }
    endpoint = results.begin()->endpoint();
  }
  if (!endpoint.address().is_loopback() && !options_.allow_non_loopback) {
    return InvalidArgument("listen address '" + options_.listen + "' is not a loopback address (" +
                           endpoint.address().to_string() +
                           "); pass --allow-non-loopback to expose the proxy");
  }
  return endpoint;
}

Status LinkProxy::Impl::ResolveTarget() {
  auto target = ParseHostPort(options_.target);
  if (!target.ok()) return target.status().WithContext("target address");
  const std::string& host = target->host;
  const uint16_t port = target->port;
  if (port == 0) return InvalidArgument("target address '" + options_.target + "': port 0");
  error_code ec;
  tcp::resolver resolver(ioc_);
  target_ = resolver.resolve(host, std::to_string(port), tcp::resolver::numeric_service, ec);
  if (ec || target_.empty()) {
    return Unavailable("target address '" + options_.target + "': cannot resolve '" + host +
                       "': " + (ec ? ec.message() : "no address"));
  }
  return Status::Ok();
}

Status LinkProxy::Impl::Listen() {
  TANDEM_ASSIGN_OR_RETURN(const tcp::endpoint endpoint, ResolveListen());
  TANDEM_RETURN_IF_ERROR(ResolveTarget());
  error_code ec;
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) local_ = acceptor_.local_endpoint(ec);
  if (ec) return Unavailable("cannot listen on " + options_.listen + ": " + ec.message());
  return Status::Ok();
}

void LinkProxy::Impl::Run() {
  started_ = clock_.Now();
  Log(LogLevel::kInfo, kComponent, "listening",
      {{"address", address()}, {"port", std::to_string(port())}, {"target", options_.target}});
  Accept();
  if (options_.schedule.empty()) {
    const ConditionFields fields = Describe(conditions_);
    Log(LogLevel::kInfo, kComponent, "phase",
        {{"phase", "0"},
         {"rate_bps", fields.rate_bps},
         {"rtt_ms", fields.rtt_ms},
         {"up", fields.up},
         {"t_ms", fields.t_ms}});
  } else {
    PlayPhase(0, 0, started_);
  }
  thread_ = std::thread([this] { ioc_.run(); });
}

void LinkProxy::Impl::Accept() {
  acceptor_.async_accept([this](const error_code& error, tcp::socket socket) {
    if (!acceptor_.is_open()) return;
    if (error) {
      // Out of descriptors or a transient failure: try again shortly rather than spin.
      Log(LogLevel::kWarn, kComponent, "accept failed", {{"error", error.message()}});
      accept_backoff_.expires_after(std::chrono::milliseconds(100));
      accept_backoff_.async_wait([this](const error_code& wait_error) {
        if (!wait_error) Accept();
      });
      return;
    }
    const uint64_t id = next_id_++;
    auto connection =
        std::make_shared<LinkConnection>(id, std::move(socket), conditions_,
                                         LinkConnectionLimits{.chunk_bytes = options_.chunk_bytes,
                                                              .max_queued_bytes = options_.max_queued_bytes},
                                         [this](uint64_t closed_id) { connections_.erase(closed_id); });
    connections_.emplace(id, connection);
    connection->Start(target_);
    Accept();
  });
}

void LinkProxy::Impl::PlayPhase(size_t index, uint64_t cycle, TimePoint phase_start) {
  const LinkPhase& phase = options_.schedule[index];
  Apply(phase.conditions);
  const ConditionFields fields = Describe(phase.conditions);
  Log(LogLevel::kInfo, kComponent, "phase",
      {{"phase", std::to_string(index)},
       {"cycle", std::to_string(cycle)},
       {"duration_ms", FormatMs(phase.duration)},
       {"rate_bps", fields.rate_bps},
       {"rtt_ms", fields.rtt_ms},
       {"up", fields.up},
       {"t_ms", fields.t_ms}});
  size_t next = index + 1;
  if (next == options_.schedule.size()) {
    if (!options_.loop) return;  // the last phase stays
    next = 0;
    ++cycle;
  }
  // Phase boundaries are computed from the start, so late timer wake-ups do not accumulate.
  const TimePoint next_start = phase_start + phase.duration;
  schedule_timer_.expires_at(next_start);
  schedule_timer_.async_wait([this, next, cycle, next_start](const error_code& error) {
    if (!error) PlayPhase(next, cycle, next_start);
  });
}

void LinkProxy::Impl::Apply(const LinkConditions& conditions) {
  conditions_ = conditions;
  {
    std::lock_guard lock(conditions_mutex_);
    shared_conditions_ = conditions;
  }
  // A re-plan may deliver an EOF at once and close its connection, which erases it from the map.
  std::vector<std::shared_ptr<LinkConnection>> open;
  for (const auto& [id, connection] : connections_) open.push_back(connection);
  for (const auto& connection : open) connection->OnConditions(conditions);
}

LinkProxy::Impl::ConditionFields LinkProxy::Impl::Describe(const LinkConditions& conditions) const {
  const auto t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(clock_.Now() - started_).count();
  return {.rate_bps = std::to_string(conditions.up ? conditions.rate_bps : 0),
          .rtt_ms = conditions.up ? FormatMs(conditions.rtt) : "0",
          .up = conditions.up ? "true" : "false",
          .t_ms = std::to_string(t_ms)};
}

void LinkProxy::Impl::SetConditions(const LinkConditions& conditions) {
  std::lock_guard lock(stop_mutex_);
  if (stopped_ || !thread_.joinable()) return;
  std::promise<void> applied;
  asio::post(ioc_, [this, &conditions, &applied] {
    Apply(conditions);
    const ConditionFields fields = Describe(conditions);
    Log(LogLevel::kInfo, kComponent, "conditions set",
        {{"phase", "set"},
         {"rate_bps", fields.rate_bps},
         {"rtt_ms", fields.rtt_ms},
         {"up", fields.up},
         {"t_ms", fields.t_ms}});
    applied.set_value();
  });
  applied.get_future().wait();
}

void LinkProxy::Impl::Stop() {
  std::lock_guard lock(stop_mutex_);
  if (stopped_) return;
  stopped_ = true;
  if (!thread_.joinable()) return;
  std::promise<void> closed;
  asio::post(ioc_, [this, &closed] {
    error_code ignored;
    acceptor_.close(ignored);
    accept_backoff_.cancel();
    schedule_timer_.cancel();
    std::vector<std::shared_ptr<LinkConnection>> open;
    for (const auto& [id, connection] : connections_) open.push_back(connection);
    for (const auto& connection : open) connection->Close("stopping");
    closed.set_value();
  });
  closed.get_future().wait();
  // The aborted operations left in the queue only hold connections that are already closed.
  ioc_.stop();
  thread_.join();
}

Result<std::unique_ptr<LinkProxy>> LinkProxy::Start(LinkProxyOptions options) {
  if (options.chunk_bytes == 0 || options.chunk_bytes > (64u << 20)) {
    return InvalidArgument("chunk_bytes must be between 1 and 64 MiB");
  }
  if (options.max_queued_bytes < options.chunk_bytes) {
    return InvalidArgument("max_queued_bytes must be at least chunk_bytes");
  }
  const auto valid = [](const LinkConditions& conditions) {
    return conditions.rate_bps >= 0 && conditions.rtt.count() >= 0;
  };
  if (!valid(options.conditions)) return InvalidArgument("rate and rtt must not be negative");
  for (const LinkPhase& phase : options.schedule) {
    if (phase.duration.count() <= 0 || !valid(phase.conditions)) {
      return InvalidArgument("every phase of the schedule needs a positive duration and rate and rtt >= 0");
    }
  }
  auto impl = std::make_unique<Impl>(std::move(options));
  TANDEM_RETURN_IF_ERROR(impl->Listen());
  impl->Run();
  return std::unique_ptr<LinkProxy>(new LinkProxy(std::move(impl)));
}

LinkProxy::LinkProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LinkProxy::~LinkProxy() {
  Stop();
}
uint16_t LinkProxy::port() const {
  return impl_->port();
}
std::string LinkProxy::address() const {
  return impl_->address();
}
void LinkProxy::SetConditions(const LinkConditions& conditions) {
  impl_->SetConditions(conditions);
}
LinkConditions LinkProxy::conditions() const {
  return impl_->conditions();
}
void LinkProxy::Stop() {
  impl_->Stop();
}

}  // namespace tandem::netem
