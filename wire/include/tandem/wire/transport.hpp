// ZeroMQ transport for wire::Message: framing over multipart messages, socket limits, and the channel seam
// the edge talks through (tests substitute their own MessageChannel).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <zmq.hpp>

#include "tandem/base/status.hpp"
#include "tandem/wire/curve.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem {

// How a socket authenticates: CURVE unless `insecure` (plaintext, for trusted test networks only).
struct SocketSecurity {
  bool insecure = false;
  CurveKeyPair own_keys;          // client: its pair; server: the server pair
  std::string server_public_key;  // client only: the pinned server key (Z85)
};

struct SocketLimits {
  int64_t max_message_bytes = 16 << 20;  // ZMQ_MAXMSGSIZE: larger frames drop the connection
  int high_water_mark = 1000;            // messages queued per peer before send blocks / drops
};

// Applies limits, linger and security to a fresh socket; `server` picks the CURVE role.
Status ConfigureSocket(zmq::socket_t& socket, const SocketSecurity& security, const SocketLimits& limits,
                       bool server);

// Sends [header][payload], prefixed by `routing_id` when it is not empty (ROUTER side).
Status SendMessage(zmq::socket_t& socket, const wire::Message& message, const std::string& routing_id = {});

// Receives every frame of the next multipart message (without waiting), keeping at most the first four.
std::vector<zmq::message_t> ReceiveMultipart(zmq::socket_t& socket);

// Parses the frames of one received multipart message (routing frame already removed): exactly a header
// and a payload frame. `max_payload_bytes` bounds the payload.
Result<wire::Message> ParseFrames(std::span<zmq::message_t> frames, size_t max_payload_bytes);

// What the edge sends and receives through. One user at a time (ZeroMQ sockets are not thread-safe).
class MessageChannel {
 public:
  virtual ~MessageChannel() = default;
  virtual Status Send(const wire::Message& message) = 0;
  // The next message, or DeadlineExceeded after `timeout`.
  virtual Result<wire::Message> Receive(std::chrono::milliseconds timeout) = 0;
  virtual const std::string& endpoint() const = 0;
};

// A DEALER connected to a cloud tail's ROUTER at `endpoint` ("tcp://host:port").
Result<std::unique_ptr<MessageChannel>> ConnectDealer(zmq::context_t& context, const std::string& endpoint,
                                                      const SocketSecurity& security,
                                                      const SocketLimits& limits);

}  // namespace tandem
