// One proxied connection of tandem-link: the client's socket and the one dialled to the target, and for
// each direction a LinkModel that says when the bytes read may be written on. This is the I/O half of the
// emulator; when to deliver is the model's (link_model.hpp).
//
// Threads: everything runs on the proxy's single I/O thread, so nothing here is locked. Failures: a
// failed dial or both sides done close the connection; a side that closes (or fails) gets the other
// side's sending half shut down once the bytes before the close are delivered.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>

#include "tandem/netem/link_model.hpp"

namespace tandem::netem {

struct LinkConnectionLimits {
  size_t chunk_bytes = 0;       // largest read, i.e. the "packet" size
  size_t max_queued_bytes = 0;  // per direction, before reads pause (backpressure)
};

class LinkConnection : public std::enable_shared_from_this<LinkConnection> {
 public:
  // `on_closed(id)` runs once, at the end of Close; it may drop the last owner of the connection.
  LinkConnection(uint64_t id, boost::asio::ip::tcp::socket client, const LinkConditions& conditions,
                 LinkConnectionLimits limits, std::function<void(uint64_t)> on_closed);

  // Starts reading the client and dials the target.
  void Start(const boost::asio::ip::tcp::resolver::results_type& target);

  // New conditions for both directions, from now on.
  void OnConditions(const LinkConditions& conditions);

  // Closes both sockets and logs the connection's byte counts. Idempotent.
  void Close(const std::string& reason);

 private:
  // One direction: its own emulated link (the link is full duplex), queue and timer.
  struct Direction {
    Direction(const boost::asio::any_io_executor& executor, boost::asio::ip::tcp::socket* from_socket,
              boost::asio::ip::tcp::socket* to_socket, size_t chunk_bytes, const LinkConditions& conditions);

    boost::asio::ip::tcp::socket* from;
    boost::asio::ip::tcp::socket* to;
    LinkModel link;           // read, not yet handed to `to`
    size_t queued_bytes = 0;  // in `link` and in the write in progress
    std::vector<char> read_buffer;
    LinkChunk in_write;
    bool reading = false;
    bool read_done = false;  // the source ended (EOF or error) or is no longer read
    bool writing = false;
    bool write_done = false;  // the destination was shut down or failed
    boost::asio::steady_timer timer;
    uint64_t timer_generation = 0;  // a wait whose generation is stale does nothing
    bool timer_armed = false;
    Clock::TimePoint timer_at{};
    uint64_t delivered_bytes = 0;
  };

  void OnConnected();
  // The client side exists from the start; the target side once the connection to it is made.
  bool CanRead(const Direction& direction) const { return &direction == &up_ || server_connected_; }
  bool CanWrite(const Direction& direction) const { return &direction == &down_ || server_connected_; }
  void StartRead(Direction& direction);
  void OnRead(Direction& direction, const boost::system::error_code& error, size_t bytes);
  // Hands the head chunk to the destination once it is due; otherwise waits for it on the timer.
  void Pump(Direction& direction);
  void OnWritten(Direction& direction, const boost::system::error_code& error, size_t bytes);
  void ArmTimer(Direction& direction, Clock::TimePoint at);
  void MaybeFinish();

  const uint64_t id_;
  const LinkConnectionLimits limits_;
  const std::function<void(uint64_t)> on_closed_;
  boost::asio::ip::tcp::socket client_;
  boost::asio::ip::tcp::socket server_;
  bool server_connected_ = false;
  bool closed_ = false;
  std::string first_error_;
  Direction up_;    // client → target
  Direction down_;  // target → client
};

}  // namespace tandem::netem
