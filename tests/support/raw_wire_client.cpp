#include "raw_wire_client.hpp"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <utility>

namespace tandem::testing {
namespace {

// "ERROR bad_frame: ..." for an ERROR, else the type's name.
std::string Describe(const wire::Message& message) {
  std::string text(wire::MessageTypeName(message.header.type));
  if (auto error = wire::ParseError(message); error.ok()) {
    text += std::string(" ") + std::string(wire::ErrorCodeName(error->code)) + ": " + error->message;
  }
  return text;
}

}  // namespace

Bytes HeaderFrame(const wire::Header& header) {
  const wire::HeaderBytes bytes = wire::SerializeHeader(header);
  return Bytes(bytes.begin(), bytes.end());
}

RawClient::RawClient(zmq::context_t& context, const std::string& endpoint, const SocketSecurity& security,
                     SocketLimits limits, const std::string& routing_id)
    : socket_(context, zmq::socket_type::dealer) {
  if (!routing_id.empty()) socket_.set(zmq::sockopt::routing_id, routing_id);
  limits.max_message_bytes = 64 << 20;  // the client side never limits what the test sends
  const Status configured = ConfigureSocket(socket_, security, limits, /*server=*/false);
  EXPECT_TRUE(configured.ok()) << configured.ToString();
  socket_.set(zmq::sockopt::sndtimeo, 5000);  // a send that cannot be queued fails instead of hanging
  socket_.connect(endpoint);
}

void RawClient::SendFrames(const std::vector<Bytes>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
    ASSERT_TRUE(socket_.send(zmq::buffer(frames[i].data(), frames[i].size()), flags).has_value())
        << "send timed out";
  }
}

std::optional<wire::Message> RawClient::Receive(std::chrono::milliseconds timeout) {
  std::array<zmq::pollitem_t, 1> items = {{{socket_.handle(), 0, ZMQ_POLLIN, 0}}};
  if (zmq::poll(items.data(), items.size(), timeout) == 0) return std::nullopt;
  std::vector<zmq::message_t> frames = ReceiveMultipart(socket_);
  auto message = ParseFrames(frames, SIZE_MAX);
  EXPECT_TRUE(message.ok()) << "the tail sent an unparsable message: " << message.status().ToString();
  if (!message.ok()) return std::nullopt;
  return std::move(*message);
}

std::optional<wire::Message> RawClient::ExpectReply(wire::MessageType type) {
  auto message = Receive(kReplyTimeout);
  if (!message) {
    ADD_FAILURE() << "no reply; expected " << wire::MessageTypeName(type);
    return std::nullopt;
  }
  if (message->header.type != type) {
    ADD_FAILURE() << "got " << Describe(*message) << "; expected " << wire::MessageTypeName(type);
    return std::nullopt;
  }
  return message;
}

std::optional<wire::ErrorReply> RawClient::ExpectError(wire::ErrorCode code,
                                                       std::optional<uint64_t> session) {
  const auto message = Receive(kReplyTimeout);
  if (!message) {
    ADD_FAILURE() << "no reply; expected ERROR " << wire::ErrorCodeName(code);
    return std::nullopt;
  }
  if (message->header.type != wire::MessageType::kError) {
    ADD_FAILURE() << "got " << wire::MessageTypeName(message->header.type) << "; expected ERROR "
                  << wire::ErrorCodeName(code);
    return std::nullopt;
  }
  auto error = wire::ParseError(*message);
  if (!error.ok()) {
    ADD_FAILURE() << error.status().ToString();
    return std::nullopt;
  }
  EXPECT_EQ(wire::ErrorCodeName(error->code), wire::ErrorCodeName(code)) << "message: " << error->message;
  if (session) {
    EXPECT_EQ(error->session, *session);
  }
  return *error;
}

std::optional<int> RawClient::ExpectToken(uint64_t session, uint64_t sequence) {
  const auto message = ExpectReply(wire::MessageType::kToken);
  if (!message) return std::nullopt;
  auto token = wire::ParseToken(*message);
  if (!token.ok()) {
    ADD_FAILURE() << token.status().ToString();
    return std::nullopt;
  }
  EXPECT_EQ(token->session, session);
  EXPECT_EQ(token->sequence, sequence);
  EXPECT_GE(token->token, 0);
  EXPECT_LT(token->token, kStories260KVocab);
  return token->token;
}

void RawClient::Sync() {
  Send(wire::MakePing({}));
  const auto pong = Receive(kReplyTimeout);
  if (!pong) {
    ADD_FAILURE() << "no PONG";
  } else if (pong->header.type != wire::MessageType::kPong) {
    ADD_FAILURE() << "got " << wire::MessageTypeName(pong->header.type) << "; expected the PONG";
  }
}

void RawClient::ExpectSilence(std::chrono::milliseconds timeout) {
  if (auto message = Receive(timeout)) ADD_FAILURE() << "expected no reply, got " << Describe(*message);
}

}  // namespace tandem::testing
