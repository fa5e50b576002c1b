#include "tandem/netem/link_proxy.hpp"

#include <signal.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "tandem/base/flags.hpp"
#include "tandem/base/log.hpp"

namespace tandem::netem {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using boost::system::error_code;

constexpr std::string_view kComponent = "link";
// The same exit codes as every Tandem service (services/service_main.hpp), mirrored rather than linked so
// that this small tool does not pull in Beast and prometheus-cpp.
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

std::string_view Trim(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

std::string Lower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return lower;
}

// "1.5mbit" → {1.5, "mbit"}: a non-negative finite number followed by a unit.
Status SplitNumberAndUnit(std::string_view text, double* number, std::string* unit) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  const auto [ptr, error] = std::from_chars(begin, end, *number, std::chars_format::fixed);
  if (text.empty() || error != std::errc() || !std::isfinite(*number) || *number < 0 || text[0] == '-') {
    return InvalidArgument("'" + std::string(text) + "' does not start with a non-negative number");
  }
  *unit = Lower(Trim(std::string_view(ptr, static_cast<size_t>(end - ptr))));
  return Status::Ok();
}

std::string FormatMs(std::chrono::microseconds duration) {
  const int64_t us = duration.count();
  if (us % 1000 == 0) return std::to_string(us / 1000);
  char text[32];
  std::snprintf(text, sizeof(text), "%.3f", static_cast<double>(us) / 1000.0);
  return text;
}

// Time to put `bytes` on a link of `rate_bps`, rounded up so that nothing is ever delivered early.
std::chrono::nanoseconds SerializationTime(size_t bytes, int64_t rate_bps) {
  if (rate_bps <= 0) return std::chrono::nanoseconds(0);
  const int64_t bits = static_cast<int64_t>(bytes) * 8;
  return std::chrono::nanoseconds((bits * 1'000'000'000 + rate_bps - 1) / rate_bps);
}

std::chrono::nanoseconds OneWayDelay(const LinkConditions& conditions) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(conditions.rtt) / 2;
}

// "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT" (the last two only when `default_host` is not empty).
Status SplitHostPort(const std::string& text, const std::string& default_host, std::string* host,
                     uint16_t* port) {
  const size_t colon = text.rfind(':');
  std::string port_text = colon == std::string::npos ? text : text.substr(colon + 1);
  *host = colon == std::string::npos ? "" : text.substr(0, colon);
  if (host->size() >= 2 && host->front() == '[' && host->back() == ']')
    *host = host->substr(1, host->size() - 2);
  if (host->empty()) *host = default_host;
  if (host->empty()) return InvalidArgument("'" + text + "' is not HOST:PORT");
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, error] = std::from_chars(port_text.data(), end, *port);
  if (port_text.empty() || error != std::errc() || ptr != end) {
    return InvalidArgument("'" + text + "': '" + port_text + "' is not a port number");
  }
  return Status::Ok();
}

// The bytes of one read (a "packet"), or the sender's end of stream, on their way across the link.
struct Chunk {
  std::vector<char> bytes;
  bool eof = false;      // the source closed: shut down the destination's sending side once delivered
  bool planned = false;  // start/sent/deliver hold; false while the link is down or after a re-plan
  TimePoint start{};     // serialization begins
  TimePoint sent{};      // serialization ends (the link is free again)
  TimePoint deliver{};   // sent + one-way delay
};

// One direction of a connection: its own serialization clock (the link is full duplex), queue and timer.
struct Direction {
  Direction(const asio::any_io_executor& executor, tcp::socket* from_socket, tcp::socket* to_socket,
            size_t chunk_bytes)
      : from(from_socket), to(to_socket), read_buffer(chunk_bytes), timer(executor) {}

  tcp::socket* from;
  tcp::socket* to;
  std::deque<Chunk> queue;  // read, not yet handed to `to`
  size_t queued_bytes = 0;  // in `queue` and in the write in progress
  TimePoint link_free{};
  std::vector<char> read_buffer;
  Chunk in_write;
  bool reading = false;
  bool read_done = false;  // the source ended (EOF or error) or is no longer read
  bool writing = false;
  bool write_done = false;  // the destination was shut down or failed
  asio::steady_timer timer;
  uint64_t timer_generation = 0;  // a wait whose generation is stale does nothing
  bool timer_armed = false;
  TimePoint timer_at{};
  uint64_t delivered_bytes = 0;
};

}  // namespace

Result<int64_t> ParseLinkRate(std::string_view text) {
  const std::string_view trimmed = Trim(text);
  double number = 0;
  std::string unit;
  TANDEM_RETURN_IF_ERROR(SplitNumberAndUnit(trimmed, &number, &unit).WithContext("rate"));
  double scale = 0;
  if (unit == "bit") {
    scale = 1;
  } else if (unit == "kbit") {
    scale = 1e3;
  } else if (unit == "mbit") {
    scale = 1e6;
  } else if (unit == "gbit") {
    scale = 1e9;
  } else {
    // tc's "mbps" means megabytes per second; refuse it rather than guess.
    return InvalidArgument("rate '" + std::string(trimmed) + "': unit must be bit, kbit, mbit or gbit");
  }
  const double bps = std::round(number * scale);
  if (bps < 1 || bps > 1e13) {
    return InvalidArgument("rate '" + std::string(trimmed) + "' must be between 1bit and 10000gbit");
  }
  return static_cast<int64_t>(bps);
}

Result<std::chrono::microseconds> ParseLinkDuration(std::string_view text) {
  const std::string_view trimmed = Trim(text);
  double number = 0;
  std::string unit;
  TANDEM_RETURN_IF_ERROR(SplitNumberAndUnit(trimmed, &number, &unit).WithContext("duration"));
  double scale = 0;
  if (unit == "us") {
    scale = 1;
  } else if (unit == "ms") {
    scale = 1e3;
  } else if (unit == "s") {
    scale = 1e6;
  } else if (unit == "m") {
    scale = 60e6;
  } else {
    return InvalidArgument("duration '" + std::string(trimmed) + "': unit must be us, ms, s or m");
  }
  const double us = std::round(number * scale);
  if (us > 1e15) return InvalidArgument("duration '" + std::string(trimmed) + "' is too long");
  return std::chrono::microseconds(static_cast<int64_t>(us));
}

Result<std::vector<LinkPhase>> ParseLinkSchedule(std::string_view text) {
  if (Trim(text).empty()) return InvalidArgument("schedule is empty");
  std::vector<LinkPhase> phases;
  for (const std::string_view piece : SplitList(text)) {
    const std::string_view phase_text = Trim(piece);
    const std::string context =
        "schedule phase " + std::to_string(phases.size()) + " ('" + std::string(phase_text) + "')";
    std::vector<std::string_view> fields = SplitList(phase_text, ':');
    for (std::string_view& field : fields) field = Trim(field);
    const bool down = fields.size() == 2 && Lower(fields[1]) == "down";
    if (!down && fields.size() != 3) {
      return InvalidArgument(context + ": expected DURATION:RATE:RTT or DURATION:down");
    }
    LinkPhase phase;
    auto duration = ParseLinkDuration(fields[0]);
    if (!duration.ok()) return duration.status().WithContext(context);
    if (duration->count() <= 0) return InvalidArgument(context + ": the duration must be positive");
    phase.duration = *duration;
    if (down) {
      phase.conditions = LinkConditions{.up = false};
    } else {
      auto rate = ParseLinkRate(fields[1]);
      if (!rate.ok()) return rate.status().WithContext(context);
      auto rtt = ParseLinkDuration(fields[2]);
      if (!rtt.ok()) return rtt.status().WithContext(context + " rtt");
      phase.conditions = LinkConditions{.rate_bps = *rate, .rtt = *rtt, .up = true};
    }
    phases.push_back(phase);
  }
  return phases;
}

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

  // For connections, on the I/O thread.
  const LinkProxyOptions& options() const { return options_; }
  const LinkConditions& current() const { return conditions_; }
  void Forget(uint64_t id) { connections_.erase(id); }

 private:
  class Connection;

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
  std::map<uint64_t, std::shared_ptr<Connection>> connections_;
  uint64_t next_id_ = 1;

  mutable std::mutex conditions_mutex_;
  LinkConditions shared_conditions_;  // a copy of conditions_ for other threads

  std::mutex stop_mutex_;  // Stop and SetConditions: no post to an I/O thread that is gone
  bool stopped_ = false;
  std::thread thread_;
};

// A client connection and its connection to the target: two directions, each its own emulated link.
// Everything runs on the proxy's single I/O thread, so no state here is locked.
class LinkProxy::Impl::Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(Impl& proxy, uint64_t id, tcp::socket client)
      : proxy_(proxy),
        id_(id),
        client_(std::move(client)),
        server_(client_.get_executor()),
        up_(client_.get_executor(), &client_, &server_, proxy.options().chunk_bytes),
        down_(client_.get_executor(), &server_, &client_, proxy.options().chunk_bytes) {}

  void Start(const tcp::resolver::results_type& target) {
    error_code ec;
    const tcp::endpoint peer = client_.remote_endpoint(ec);
    Log(LogLevel::kInfo, kComponent, "connection opened",
        {{"id", std::to_string(id_)},
         {"peer", ec ? "?" : peer.address().to_string() + ":" + std::to_string(peer.port())}});
    // Small messages (a decode step) must not wait for Nagle on the proxy's own writes.
    client_.set_option(tcp::no_delay(true), ec);
    StartRead(up_);  // what the client sends before the target answers is held like any other data
    asio::async_connect(server_, target,
                        [self = shared_from_this()](const error_code& error, const tcp::endpoint&) {
                          if (self->closed_) return;
                          if (error) {
                            self->Close("cannot connect to the target: " + error.message());
                            return;
                          }
                          error_code ignored;
                          self->server_.set_option(tcp::no_delay(true), ignored);
                          self->server_connected_ = true;
                          self->StartRead(self->down_);
                          self->Pump(self->up_);
                        });
  }

  void OnConditions(TimePoint now, const LinkConditions& before, const LinkConditions& after) {
    if (closed_) return;
    for (Direction* direction : {&up_, &down_}) {
      Replan(*direction, now, before, after);
      Pump(*direction);
    }
  }

  void Close(const std::string& reason) {
    if (closed_) return;
    closed_ = true;
    error_code ignored;
    for (Direction* direction : {&up_, &down_}) direction->timer.cancel();
    client_.close(ignored);
    server_.close(ignored);
    Log(LogLevel::kInfo, kComponent, "connection closed",
        {{"id", std::to_string(id_)},
         {"reason", reason},
         {"bytes_up", std::to_string(up_.delivered_bytes)},
         {"bytes_down", std::to_string(down_.delivered_bytes)}});
    proxy_.Forget(id_);  // may drop the last owner: nothing after this line
  }

 private:
  // The client side exists from the start; the target side once the connection to it is made.
  bool CanRead(const Direction& direction) const { return &direction == &up_ || server_connected_; }
  bool CanWrite(const Direction& direction) const { return &direction == &down_ || server_connected_; }

  void StartRead(Direction& direction) {
    if (closed_ || direction.reading || direction.read_done || !CanRead(direction)) return;
    if (direction.queued_bytes >= proxy_.options().max_queued_bytes) return;  // resumed by a write
    direction.reading = true;
    direction.from->async_read_some(
        asio::buffer(direction.read_buffer),
        [self = shared_from_this(), &direction](const error_code& error, size_t bytes) {
          direction.reading = false;
          if (self->closed_) return;
          self->OnRead(direction, error, bytes);
        });
  }

  void OnRead(Direction& direction, const error_code& error, size_t bytes) {
    if (direction.write_done) {  // the destination is gone: nowhere to deliver, stop reading
      direction.read_done = true;
      return;
    }
    if (bytes > 0) {
      Chunk chunk;
      chunk.bytes.assign(direction.read_buffer.begin(),
                         direction.read_buffer.begin() + static_cast<ptrdiff_t>(bytes));
      direction.queued_bytes += bytes;
      direction.queue.push_back(std::move(chunk));
    }
    if (error) {
      // EOF or a reset: what was read still crosses the link, then the destination's send side closes.
      direction.read_done = true;
      direction.queue.push_back(Chunk{.eof = true});
    }
    Plan(direction, Clock::now());
    Pump(direction);
    StartRead(direction);
  }

  // Gives every unplanned chunk its times: serialized back to back after `link_free`, then the delay.
  void Plan(Direction& direction, TimePoint now) {
    const LinkConditions& conditions = proxy_.current();
    if (!conditions.up) return;
    for (Chunk& chunk : direction.queue) {
      if (chunk.planned) continue;
      chunk.start = std::max(now, direction.link_free);
      chunk.sent = chunk.start + SerializationTime(chunk.bytes.size(), conditions.rate_bps);
      chunk.deliver = chunk.sent + OneWayDelay(conditions);
      chunk.planned = true;
      direction.link_free = chunk.sent;
    }
  }

  void Replan(Direction& direction, TimePoint now, const LinkConditions& before,
              const LinkConditions& after) {
    if (!after.up) {
      // Held: whatever has not reached the destination is sent again once the link is back.
      for (Chunk& chunk : direction.queue) chunk.planned = false;
      return;
    }
    if (!before.up) {
      direction.link_free = now;
    } else {
      // Chunks already on the wire keep their times; the rest go out at the new rate.
      TimePoint kept_until = now;
      for (Chunk& chunk : direction.queue) {
        if (chunk.planned && chunk.start <= now) {
          kept_until = std::max(kept_until, chunk.sent);
        } else {
          chunk.planned = false;
        }
      }
      direction.link_free = kept_until;
    }
    Plan(direction, now);
  }

  // Hands the head chunk to the destination once it is due; otherwise waits for it on the timer.
  void Pump(Direction& direction) {
    if (closed_ || direction.writing || direction.write_done || !CanWrite(direction)) return;
    if (direction.queue.empty() || !direction.queue.front().planned) return;
    const TimePoint deliver = direction.queue.front().deliver;
    if (deliver > Clock::now()) {
      ArmTimer(direction, deliver);
      return;
    }
    direction.in_write = std::move(direction.queue.front());
    direction.queue.pop_front();
    if (direction.in_write.eof) {
      error_code ignored;
      direction.to->shutdown(tcp::socket::shutdown_send, ignored);
      direction.write_done = true;
      MaybeFinish();
      return;
    }
    direction.writing = true;
    asio::async_write(*direction.to, asio::buffer(direction.in_write.bytes),
                      [self = shared_from_this(), &direction](const error_code& error, size_t bytes) {
                        direction.writing = false;
                        if (self->closed_) return;
                        self->OnWritten(direction, error, bytes);
                      });
  }

  void OnWritten(Direction& direction, const error_code& error, size_t bytes) {
    if (error) {
      // The destination is gone. Its own direction ends with the EOF or reset it reads; this one can
      // deliver nothing more.
      direction.write_done = true;
      direction.read_done = true;
      direction.queue.clear();
      direction.queued_bytes = 0;
      if (first_error_.empty()) first_error_ = "write failed: " + error.message();
      MaybeFinish();
      return;
    }
    direction.queued_bytes -= bytes;
    direction.delivered_bytes += bytes;
    direction.in_write.bytes = {};
    StartRead(direction);
    Pump(direction);
  }

  void ArmTimer(Direction& direction, TimePoint at) {
    if (direction.timer_armed && direction.timer_at == at) return;
    direction.timer_armed = true;
    direction.timer_at = at;
    const uint64_t generation = ++direction.timer_generation;
    direction.timer.expires_at(at);
    direction.timer.async_wait([self = shared_from_this(), &direction, generation](const error_code& error) {
      if (generation != direction.timer_generation) return;
      direction.timer_armed = false;
      if (error || self->closed_) return;
      self->Pump(direction);
    });
  }

  void MaybeFinish() {
    if (up_.write_done && down_.write_done) Close(first_error_.empty() ? "both sides closed" : first_error_);
  }

  Impl& proxy_;
  const uint64_t id_;
  tcp::socket client_;
  tcp::socket server_;
  bool server_connected_ = false;
  bool closed_ = false;
  std::string first_error_;
  Direction up_;    // client → target
  Direction down_;  // target → client
};

Status LinkProxy::Impl::Listen() {
  std::string host;
  uint16_t port = 0;
  TANDEM_RETURN_IF_ERROR(
      SplitHostPort(options_.listen, "127.0.0.1", &host, &port).WithContext("listen address"));
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

  std::string target_host;
  uint16_t target_port = 0;
  TANDEM_RETURN_IF_ERROR(
      SplitHostPort(options_.target, "", &target_host, &target_port).WithContext("target address"));
  if (target_port == 0) return InvalidArgument("target address '" + options_.target + "': port 0");
  tcp::resolver resolver(ioc_);
  target_ = resolver.resolve(target_host, std::to_string(target_port), tcp::resolver::numeric_service, ec);
  if (ec || target_.empty()) {
    return Unavailable("target address '" + options_.target + "': cannot resolve '" + target_host +
                       "': " + (ec ? ec.message() : "no address"));
  }

  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) local_ = acceptor_.local_endpoint(ec);
  if (ec) return Unavailable("cannot listen on " + options_.listen + ": " + ec.message());
  return Status::Ok();
}

void LinkProxy::Impl::Run() {
  started_ = Clock::now();
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
    auto connection = std::make_shared<Connection>(*this, id, std::move(socket));
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
  const LinkConditions before = conditions_;
  conditions_ = conditions;
  {
    std::lock_guard lock(conditions_mutex_);
    shared_conditions_ = conditions;
  }
  const TimePoint now = Clock::now();
  // A re-plan may deliver an EOF at once and close its connection, which erases it from the map.
  std::vector<std::shared_ptr<Connection>> open;
  for (const auto& [id, connection] : connections_) open.push_back(connection);
  for (const auto& connection : open) connection->OnConditions(now, before, conditions);
}

LinkProxy::Impl::ConditionFields LinkProxy::Impl::Describe(const LinkConditions& conditions) const {
  const auto t_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started_).count();
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
    std::vector<std::shared_ptr<Connection>> open;
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

namespace {

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
