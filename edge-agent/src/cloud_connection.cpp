#include "tandem/edge_agent/cloud_connection.hpp"

#include <algorithm>

#include "tandem/base/retry.hpp"

namespace tandem::edge_agent {
namespace {

using Clock = std::chrono::steady_clock;

// The longest a wait for a reply goes without checking the link's liveness.
constexpr auto kLivenessSlice = std::chrono::milliseconds(50);
// How long a connection must have gone without a message before a down link ends a wait on it.
constexpr auto kSilenceBeforeGivingUp = std::chrono::milliseconds(300);

Status CheckRemoteModel(const wire::Hello& local, const wire::Hello& remote, const std::string& endpoint) {
  if (Status same = wire::CheckSameModel(local, remote); !same.ok()) {
    return same.WithContext("the cloud tail at " + endpoint + " serves another model");
  }
  return Status::Ok();
}

}  // namespace

int64_t WireSize(const wire::Message& message) {
  return static_cast<int64_t>(wire::kHeaderBytes + message.payload.size());
}

Result<std::unique_ptr<CloudConnection>> CloudConnection::Connect(zmq::context_t& context,
                                                                  const CloudOptions& options,
                                                                  const wire::Hello& local) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<MessageChannel> channel,
                          ConnectDealer(context, options.endpoint, options.security, options.limits));
  auto connection = Handshake(std::move(channel), options.timeout, local);
  if (connection.ok()) (*connection)->set_resends(options.resend_after, options.max_resends);
  if (!connection.ok() && connection.status().code() == StatusCode::kDeadlineExceeded &&
      !options.security.insecure) {
    // CURVE refusals are silent by design: say what usually causes them.
    return connection.status().WithContext(
        "HELLO unanswered (is the tail running there, does --cloud-key hold its public key, and is this "
        "client's public key in its --allow-clients list?)");
  }
  return connection;
}

Result<std::unique_ptr<CloudConnection>> CloudConnection::Handshake(std::unique_ptr<MessageChannel> channel,
                                                                    std::chrono::milliseconds timeout,
                                                                    const wire::Hello& local) {
  TANDEM_RETURN_IF_ERROR(channel->Send(wire::MakeHello(local)));
  TANDEM_ASSIGN_OR_RETURN(wire::Message reply, channel->Receive(timeout));
  if (reply.header.type == wire::MessageType::kError) {
    TANDEM_ASSIGN_OR_RETURN(wire::ErrorReply error, wire::ParseError(reply));
    return wire::ErrorToStatus(error);
  }
  TANDEM_ASSIGN_OR_RETURN(wire::Hello remote, wire::ParseHello(reply));
  TANDEM_RETURN_IF_ERROR(CheckRemoteModel(local, remote, channel->endpoint()));
  return std::unique_ptr<CloudConnection>(
      new CloudConnection(std::move(channel), timeout, std::move(remote)));
}

Result<wire::Message> CloudConnection::AwaitReply(uint64_t session, uint64_t sequence,
                                                  wire::MessageType expected, int64_t& bytes_received,
                                                  const wire::Message* resend, int* resends) {
  const auto start = Clock::now();
  const auto deadline = start + timeout_;
  const bool may_resend = resend != nullptr && resend_after_.count() > 0;
  Backoff backoff({.initial = resend_after_, .max = timeout_, .jitter = 0.2});
  auto resend_at = may_resend ? start + backoff.Next() : deadline;
  int sent_again = 0;
  auto last_heard = start;
  while (true) {
    const auto now = Clock::now();
    if (now >= deadline) {
      return DeadlineExceeded(
          "no reply from the cloud tail at " + channel_->endpoint() + " within " +
          std::to_string(timeout_.count()) + " ms" +
          (sent_again > 0 ? " (the step was sent " + std::to_string(sent_again + 1) + " times)" : ""));
    }
    // The monitor's verdict ends a wait only once this connection has been silent for a while too: replies
    // still coming in (a replay in full flow) prove the tail alive, whatever its probes say.
    if (alive_ && now - last_heard >= kSilenceBeforeGivingUp && !alive_()) {
      return Unavailable("the link to the cloud tail at " + channel_->endpoint() +
                         " is down (its probes go unanswered, or another step on it failed)");
    }
    if (now >= resend_at) {
      // The reply may have been lost with a connection that ZeroMQ re-established: ask again. A tail
      // still computing the step drops the resend.
      TANDEM_RETURN_IF_ERROR(channel_->Send(*resend));
      ++sent_again;
      if (resends != nullptr) ++*resends;
      resend_at = sent_again < max_resends_ ? now + backoff.Next() : deadline;
    }
    // Short slices, so that liveness and resends are looked at while waiting.
    const auto wait = std::min({resend_at, deadline, now + kLivenessSlice}) - now;
    auto received = channel_->Receive(
        std::max(std::chrono::duration_cast<std::chrono::milliseconds>(wait), std::chrono::milliseconds(1)));
    if (!received.ok()) {
      if (received.status().code() == StatusCode::kDeadlineExceeded) continue;
      return received.status();
    }
    wire::Message& reply = *received;
    last_heard = Clock::now();
    bytes_received += WireSize(reply);
    const wire::Header& header = reply.header;
    if (header.type == wire::MessageType::kError && (header.session == session || header.session == 0)) {
      TANDEM_ASSIGN_OR_RETURN(wire::ErrorReply error, wire::ParseError(reply));
      return wire::ErrorToStatus(error);
    }
    if (header.type == expected && header.session == session && header.sequence == sequence) {
      return std::move(reply);
    }
    // Anything else is a late reply to an abandoned request: skip it.
  }
}

}  // namespace tandem::edge_agent
