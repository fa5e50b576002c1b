#include "tandem/wire/transport.hpp"

#include <array>
#include <cstring>

namespace tandem {
namespace {

Status ZmqError(const std::string& what, const zmq::error_t& error) {
  return Unavailable(what + ": " + error.what());
}

class DealerChannel final : public MessageChannel {
 public:
  DealerChannel(zmq::socket_t socket, std::string endpoint, size_t max_payload_bytes)
      : socket_(std::move(socket)), endpoint_(std::move(endpoint)), max_payload_bytes_(max_payload_bytes) {}

  Status Send(const wire::Message& message) override { return SendMessage(socket_, message); }

  Result<wire::Message> Receive(std::chrono::milliseconds timeout) override {
    std::array<zmq::pollitem_t, 1> items = {{{socket_.handle(), 0, ZMQ_POLLIN, 0}}};
    try {
      if (zmq::poll(items.data(), items.size(), timeout) == 0) {
        return DeadlineExceeded("no reply from the cloud tail at " + endpoint_ + " within " +
                                std::to_string(timeout.count()) + " ms");
      }
      std::vector<zmq::message_t> frames = ReceiveMultipart(socket_);
      return ParseFrames(frames, max_payload_bytes_);
    } catch (const zmq::error_t& error) {
      return ZmqError("receiving from " + endpoint_, error);
    }
  }

  const std::string& endpoint() const override { return endpoint_; }

 private:
  zmq::socket_t socket_;
  std::string endpoint_;
  size_t max_payload_bytes_;
};

}  // namespace

std::vector<zmq::message_t> ReceiveMultipart(zmq::socket_t& socket) {
  // A multipart message arrives whole, so this never blocks once its first frame is readable. Frames past
  // a valid message's two (plus routing id) are drained and dropped, keeping the next message aligned.
  constexpr size_t kMaxKeptFrames = 4;
  std::vector<zmq::message_t> frames;
  bool more = true;
  while (more) {
    zmq::message_t frame;
    if (!socket.recv(frame, zmq::recv_flags::dontwait)) break;
    more = frame.more();
    if (frames.size() < kMaxKeptFrames) frames.push_back(std::move(frame));
  }
  return frames;
}

Status ConfigureSocket(zmq::socket_t& socket, const SocketSecurity& security, const SocketLimits& limits,
                       bool server) {
  // libzmq checks ZMQ_MAXMSGSIZE against the frame on the wire, and CURVE sends each frame as a MESSAGE
  // command 33 bytes longer (command name 8, nonce 8, flags 1, MAC 16). Allow for that, so that the limit
  // is the size of the frame the application sent: under CURVE too, a frame of exactly max_message_bytes
  // is accepted and one byte more drops the connection.
  constexpr int64_t kCurveFrameOverhead = 33;
  const int64_t max_message_bytes = security.insecure || limits.max_message_bytes < 0
                                        ? limits.max_message_bytes
                                        : limits.max_message_bytes + kCurveFrameOverhead;
  try {
    socket.set(zmq::sockopt::linger, 0);  // never hang at exit on unsent messages
    socket.set(zmq::sockopt::maxmsgsize, max_message_bytes);
    socket.set(zmq::sockopt::sndhwm, limits.high_water_mark);
    socket.set(zmq::sockopt::rcvhwm, limits.high_water_mark);
  } catch (const zmq::error_t& error) {
    return ZmqError("configuring a socket", error);
  }
  if (security.insecure) return Status::Ok();
  return server ? ApplyCurveServer(socket, security.own_keys)
                : ApplyCurveClient(socket, security.own_keys, security.server_public_key);
}

Status SendMessage(zmq::socket_t& socket, const wire::Message& message, const std::string& routing_id) {
  const wire::HeaderBytes header = wire::SerializeHeader(message.header);
  try {
    if (!routing_id.empty()) socket.send(zmq::buffer(routing_id), zmq::send_flags::sndmore);
    socket.send(zmq::buffer(header.data(), header.size()), zmq::send_flags::sndmore);
    socket.send(zmq::buffer(message.payload.data(), message.payload.size()), zmq::send_flags::none);
  } catch (const zmq::error_t& error) {
    return ZmqError("sending " + std::string(wire::MessageTypeName(message.header.type)), error);
  }
  return Status::Ok();
}

Result<wire::Message> ParseFrames(std::span<zmq::message_t> frames, size_t max_payload_bytes) {
  if (frames.size() != 2 || frames[1].more()) {
    return InvalidArgument("a message must have exactly two frames (header, payload), got " +
                           std::string(frames.size() > 2 ? "more" : std::to_string(frames.size())));
  }
  TANDEM_ASSIGN_OR_RETURN(
      wire::Header header,
      wire::ParseHeader({static_cast<const std::byte*>(frames[0].data()), frames[0].size()}));
  if (frames[1].size() > max_payload_bytes) {
    return InvalidArgument("payload of " + std::to_string(frames[1].size()) + " bytes exceeds the limit of " +
                           std::to_string(max_payload_bytes));
  }
  const auto* payload = static_cast<const std::byte*>(frames[1].data());
  return wire::Message{header, std::vector<std::byte>(payload, payload + frames[1].size())};
}

Result<std::unique_ptr<MessageChannel>> ConnectDealer(zmq::context_t& context, const std::string& endpoint,
                                                      const SocketSecurity& security,
                                                      const SocketLimits& limits) {
  try {
    zmq::socket_t socket(context, zmq::socket_type::dealer);
    TANDEM_RETURN_IF_ERROR(ConfigureSocket(socket, security, limits, /*server=*/false));
    // A short linger lets a last CLOSE leave before the process exits, without ever hanging on a dead tail.
    socket.set(zmq::sockopt::linger, 200);
    socket.connect(endpoint);
    return std::unique_ptr<MessageChannel>(std::make_unique<DealerChannel>(
        std::move(socket), endpoint, static_cast<size_t>(limits.max_message_bytes)));
  } catch (const zmq::error_t& error) {
    return InvalidArgument("cannot connect to '" + endpoint + "': " + error.what());
  }
}

}  // namespace tandem
