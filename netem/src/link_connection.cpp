#include "link_connection.hpp"

#include <utility>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>

#include "tandem/base/log.hpp"

namespace tandem::netem {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr std::string_view kComponent = "link";

}  // namespace

LinkConnection::Direction::Direction(const asio::any_io_executor& executor, tcp::socket* from_socket,
                                     tcp::socket* to_socket, size_t chunk_bytes,
                                     const LinkConditions& conditions)
    : from(from_socket),
      to(to_socket),
      link(SteadyClock::Instance(), conditions),  // the clock `timer` waits on
      read_buffer(chunk_bytes),
      timer(executor) {}

LinkConnection::LinkConnection(uint64_t id, tcp::socket client, const LinkConditions& conditions,
                               LinkConnectionLimits limits, std::function<void(uint64_t)> on_closed)
    : id_(id),
      limits_(limits),
      on_closed_(std::move(on_closed)),
      client_(std::move(client)),
      server_(client_.get_executor()),
      up_(client_.get_executor(), &client_, &server_, limits.chunk_bytes, conditions),
      down_(client_.get_executor(), &server_, &client_, limits.chunk_bytes, conditions) {}

void LinkConnection::Start(const tcp::resolver::results_type& target) {
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
                        if (error) return self->Close("cannot connect to the target: " + error.message());
                        self->OnConnected();
                      });
}

void LinkConnection::OnConnected() {
  error_code ignored;
  server_.set_option(tcp::no_delay(true), ignored);
  server_connected_ = true;
  StartRead(down_);
  Pump(up_);
}

void LinkConnection::OnConditions(const LinkConditions& conditions) {
  if (closed_) return;
  for (Direction* direction : {&up_, &down_}) {
    direction->link.SetConditions(conditions);
    Pump(*direction);
  }
}

void LinkConnection::Close(const std::string& reason) {
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
  on_closed_(id_);  // may drop the last owner: nothing after this line
}

void LinkConnection::StartRead(Direction& direction) {
  if (closed_ || direction.reading || direction.read_done || !CanRead(direction)) return;
  if (direction.queued_bytes >= limits_.max_queued_bytes) return;  // resumed by a write
  direction.reading = true;
  direction.from->async_read_some(
      asio::buffer(direction.read_buffer),
      [self = shared_from_this(), &direction](const error_code& error, size_t bytes) {
        direction.reading = false;
        if (self->closed_) return;
        self->OnRead(direction, error, bytes);
      });
}

void LinkConnection::OnRead(Direction& direction, const error_code& error, size_t bytes) {
  if (direction.write_done) {  // the destination is gone: nowhere to deliver, stop reading
    direction.read_done = true;
    return;
  }
  if (bytes > 0) {
    const auto begin = direction.read_buffer.begin();
    direction.queued_bytes += bytes;
    direction.link.Push(LinkChunk{.bytes = std::vector<char>(begin, begin + static_cast<ptrdiff_t>(bytes))});
  }
  if (error) {
    // EOF or a reset: what was read still crosses the link, then the destination's send side closes.
    direction.read_done = true;
    direction.link.Push(LinkChunk{.eof = true});
  }
  Pump(direction);
  StartRead(direction);
}

void LinkConnection::Pump(Direction& direction) {
  if (closed_ || direction.writing || direction.write_done || !CanWrite(direction)) return;
  std::optional<LinkChunk> due = direction.link.PopDue();
  if (!due) {
    if (const auto deliver = direction.link.NextDelivery()) ArmTimer(direction, *deliver);
    return;
  }
  direction.in_write = std::move(*due);
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

void LinkConnection::OnWritten(Direction& direction, const error_code& error, size_t bytes) {
  if (error) {
    // The destination is gone. Its own direction ends with the EOF or reset it reads; this one can
    // deliver nothing more.
    direction.write_done = true;
    direction.read_done = true;
    direction.link.Clear();
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

void LinkConnection::ArmTimer(Direction& direction, Clock::TimePoint at) {
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

void LinkConnection::MaybeFinish() {
  if (up_.write_done && down_.write_done) Close(first_error_.empty() ? "both sides closed" : first_error_);
}

}  // namespace tandem::netem
