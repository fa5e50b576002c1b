// A raw DEALER speaking the wire protocol to a tail, as any peer on the network could: frames and
// messages sent as given, replies read one by one and checked (gtest failures, not exceptions). For tests
// that need what the edge's own client would never send, or to see every reply as it comes.
#pragma once

#include <zmq.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "tandem/wire/protocol.hpp"
#include "tandem/wire/transport.hpp"

namespace tandem::testing {

using Bytes = std::vector<std::byte>;

inline constexpr std::chrono::milliseconds kReplyTimeout{20000};  // a reply that must come (loaded hosts)
inline constexpr std::chrono::milliseconds kSilence{400};         // "no reply at all"
inline constexpr int kStories260KVocab = 512;

Bytes HeaderFrame(const wire::Header& header);

class RawClient {
 public:
  RawClient(zmq::context_t& context, const std::string& endpoint, const SocketSecurity& security,
            SocketLimits limits = {}, const std::string& routing_id = "");

  zmq::socket_t& socket() { return socket_; }

  void SendFrames(const std::vector<Bytes>& frames);
  void Send(const wire::Message& message) { SendFrames({HeaderFrame(message.header), message.payload}); }

  // The next message (any frames, parsed as a wire message), or nothing after `timeout`.
  std::optional<wire::Message> Receive(std::chrono::milliseconds timeout);
  // The next reply, which must be of `type` (an ERROR instead is reported with its code and text).
  std::optional<wire::Message> ExpectReply(wire::MessageType type);
  // The next reply, which must be an ERROR with `code` (and, when given, for `session`).
  std::optional<wire::ErrorReply> ExpectError(wire::ErrorCode code,
                                              std::optional<uint64_t> session = std::nullopt);
  // The next reply, which must be a TOKEN for (session, sequence) with an id in stories260K's vocabulary.
  std::optional<int> ExpectToken(uint64_t session, uint64_t sequence);

  // The tail answers one connection in order, so a PONG shows that all sent before (CLOSE is silent) was
  // handled; the client's socket drops unsent messages when it is destroyed.
  void Sync();
  void Close(uint64_t session) {
    Send(wire::MakeClose(session));
    Sync();
  }
  void ExpectSilence(std::chrono::milliseconds timeout = kSilence);

 private:
  zmq::socket_t socket_;
};

}  // namespace tandem::testing
