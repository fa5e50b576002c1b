// A connection from the edge to one cloud tail: the DEALER socket (or any MessageChannel, in tests), the
// HELLO that checked both sides hold the same model, and the wait for a step's reply with resends and
// the link's liveness. Sessions (RemoteTail, RemoteMiddle) share a connection, one generation at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "tandem/wire/protocol.hpp"
#include "tandem/wire/transport.hpp"

namespace tandem::edge_agent {

struct CloudOptions {
  std::string endpoint;  // "tcp://127.0.0.1:5555"
  SocketSecurity security;
  SocketLimits limits;
  std::chrono::milliseconds timeout{10000};  // the longest wait for any reply
  // A step unanswered this long is sent again (the tail answers a resend from its cache), then again
  // after a growing, jittered pause, at most `max_resends` times, all within `timeout`. 0: never.
  std::chrono::milliseconds resend_after{500};
  int max_resends = 2;
};

// A DEALER connection to one cloud tail whose HELLO matched this edge's model.
class CloudConnection {
 public:
  // Connects and handshakes: the tail must hold the same weights (fingerprint) and shape.
  static Result<std::unique_ptr<CloudConnection>> Connect(zmq::context_t& context,
                                                          const CloudOptions& options,
                                                          const wire::Hello& local);
  // The same over any channel (tests use in-memory ones).
  static Result<std::unique_ptr<CloudConnection>> Handshake(std::unique_ptr<MessageChannel> channel,
                                                            std::chrono::milliseconds timeout,
                                                            const wire::Hello& local);

  const wire::Hello& remote() const { return remote_; }
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) { timeout_ = timeout; }
  void set_resends(std::chrono::milliseconds after, int max) {
    resend_after_ = after;
    max_resends_ = max;
  }
  // Asked while waiting for a reply: false ends the wait at once (Unavailable), as when the link's
  // monitor has given the tail up. Set per request; none by default.
  void set_liveness(std::function<bool()> alive) { alive_ = std::move(alive); }
  MessageChannel& channel() { return *channel_; }
  uint64_t NextSessionId() { return ++last_session_; }

  // Waits for the reply of type `expected` (TOKEN, or ROWS) answering (session, sequence); an ERROR for it
  // becomes its Status. Replies to other sessions or older sequences (left over from an abandoned session,
  // or a resend's second answer) are skipped. With `resend`, the step's own ACTIVATIONS, it is sent again
  // while no reply comes (see CloudOptions::resend_after); `resends` counts them.
  Result<wire::Message> AwaitReply(uint64_t session, uint64_t sequence, wire::MessageType expected,
                                   int64_t& bytes_received, const wire::Message* resend = nullptr,
                                   int* resends = nullptr);

 private:
  CloudConnection(std::unique_ptr<MessageChannel> channel, std::chrono::milliseconds timeout,
                  wire::Hello remote)
      : channel_(std::move(channel)), timeout_(timeout), remote_(std::move(remote)) {}

  std::unique_ptr<MessageChannel> channel_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds resend_after_{0};
  int max_resends_ = 0;
  std::function<bool()> alive_;
  wire::Hello remote_;
  uint64_t last_session_ = 0;
};

// Bytes a message takes on the wire: its header and payload.
int64_t WireSize(const wire::Message& message);

}  // namespace tandem::edge_agent
