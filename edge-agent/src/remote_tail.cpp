#include "tandem/edge/remote_tail.hpp"

#include <algorithm>
#include <chrono>

#include "tandem/base/retry.hpp"

namespace tandem::edge {
namespace {

using Clock = std::chrono::steady_clock;

// The longest a wait for a reply goes without checking the link's liveness.
constexpr auto kLivenessSlice = std::chrono::milliseconds(50);
// How long a connection must have gone without a message before a down link ends a wait on it.
constexpr auto kSilenceBeforeGivingUp = std::chrono::milliseconds(300);

int64_t WireSize(const wire::Message& message) {
  return static_cast<int64_t>(wire::kHeaderBytes + message.payload.size());
}

Status CheckRemoteModel(const wire::Hello& local, const wire::Hello& remote, const std::string& endpoint) {
  if (Status same = wire::CheckSameModel(local, remote); !same.ok()) {
    return same.WithContext("the cloud tail at " + endpoint + " serves another model");
  }
  return Status::Ok();
}

Status RequireMode(bool private_output, bool wanted) {
  if (private_output == wanted) return Status::Ok();
  return InvalidArgument(
      private_output ? "this session was opened for private output: its steps return rows, not tokens"
                     : "this session was opened without end_block: its steps return tokens, not rows");
}

}  // namespace

const RemoteTail* RemoteOf(const TailRunner& tail) {
  if (const auto* u_shaped = dynamic_cast<const UShapedTail*>(&tail)) {
    return dynamic_cast<const RemoteTail*>(&u_shaped->middle());
  }
  return dynamic_cast<const RemoteTail*>(&tail);
}

void CutLog::Append(const HiddenRows& rows) {
  cols_ = rows.cols;
  values_.insert(values_.end(), rows.values.begin(), rows.values.end());
  chunks_.push_back(rows.rows);
  positions_ += rows.rows;
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

Result<std::unique_ptr<RemoteTail>> RemoteTail::Open(CloudConnection& connection, wire::OpenRequest request) {
  request.session = connection.NextSessionId();
  const wire::Message open = wire::MakeOpen(request);
  TANDEM_RETURN_IF_ERROR(connection.channel().Send(open));
  std::unique_ptr<RemoteTail> tail(new RemoteTail(connection, std::move(request)));
  tail->stats_.wire_bytes_sent += WireSize(open);
  return tail;
}

RemoteTail::~RemoteTail() {
  // Best effort: the tail also expires idle sessions.
  (void)connection_.channel().Send(wire::MakeClose(request_.session));
}

Result<std::vector<HiddenRows>> RemoteTail::Chunks(const HiddenRows& rows) const {
  // Within the tail's limits from HELLO: a prompt longer than its rows or payload limit goes in chunks,
  // and the last chunk's token is the prompt's.
  const wire::Hello& tail = connection_.remote();
  TANDEM_ASSIGN_OR_RETURN(const int64_t row_bytes,
                          PrecisionPayloadBytes(request_.codec.precision, 1, rows.cols));
  int64_t chunk_rows = rows.rows;
  if (tail.max_rows > 0) chunk_rows = std::min<int64_t>(chunk_rows, tail.max_rows);
  if (tail.max_payload_bytes > 0) {
    chunk_rows = std::min<int64_t>(chunk_rows, static_cast<int64_t>(tail.max_payload_bytes) / row_bytes);
  }
  if (chunk_rows <= 0) return InvalidArgument("one row does not fit in the tail's payload limit");
  std::vector<HiddenRows> chunks;
  for (int64_t first = 0; first < rows.rows; first += chunk_rows) {
    const int64_t n = std::min(chunk_rows, rows.rows - first);
    const auto begin = rows.values.begin() + first * rows.cols;
    chunks.push_back(HiddenRows{n, rows.cols, std::vector<float>(begin, begin + n * rows.cols)});
  }
  return chunks;
}

Result<std::vector<RemoteTail::ChunkReply>> RemoteTail::Step(const HiddenRows& rows) {
  TANDEM_ASSIGN_OR_RETURN(const std::vector<HiddenRows> chunks, Chunks(rows));
  std::vector<ChunkReply> replies;
  for (const HiddenRows& chunk : chunks) {
    const int64_t sent_before = stats_.wire_bytes_sent, received_before = stats_.wire_bytes_received;
    TANDEM_ASSIGN_OR_RETURN(const Sent sent, Send(chunk));
    // One step in flight: it may be sent again. (A pipelined replay is not: the tail only resends its
    // last reply, and a replay that fails is redone elsewhere.)
    TANDEM_ASSIGN_OR_RETURN(ChunkReply reply, Await(sent, &last_sent_));
    replies.push_back(std::move(reply));
    if (observer_) {
      observer_(stats_.wire_bytes_sent - sent_before + stats_.wire_bytes_received - received_before,
                stats_.step_round_trip_ms.back(), stats_.step_cloud_compute_ms.back());
    }
  }
  return replies;
}

Result<std::vector<std::vector<RemoteTail::ChunkReply>>> RemoteTail::Pipeline(
    std::span<const HiddenRows> steps) {
  std::vector<std::vector<Sent>> sent(steps.size());
  for (size_t s = 0; s < steps.size(); ++s) {
    TANDEM_ASSIGN_OR_RETURN(const std::vector<HiddenRows> chunks, Chunks(steps[s]));
    for (const HiddenRows& chunk : chunks) {
      TANDEM_ASSIGN_OR_RETURN(const Sent one, Send(chunk));
      sent[s].push_back(one);
    }
  }
  std::vector<std::vector<ChunkReply>> replies(steps.size());
  for (size_t s = 0; s < steps.size(); ++s) {
    for (const Sent& one : sent[s]) {
      TANDEM_ASSIGN_OR_RETURN(ChunkReply reply, Await(one));
      replies[s].push_back(std::move(reply));
    }
  }
  return replies;
}

Result<int> RemoteTail::Forward(const HiddenRows& rows) {
  TANDEM_RETURN_IF_ERROR(RequireMode(request_.private_output(), false));
  TANDEM_ASSIGN_OR_RETURN(const std::vector<ChunkReply> replies, Step(rows));
  return replies.back().token;  // the prompt's token is its last chunk's
}

Result<std::vector<int>> RemoteTail::ForwardAll(std::span<const HiddenRows> steps) {
  TANDEM_RETURN_IF_ERROR(RequireMode(request_.private_output(), false));
  TANDEM_ASSIGN_OR_RETURN(const auto replies, Pipeline(steps));
  std::vector<int> tokens;
  for (const std::vector<ChunkReply>& step : replies) tokens.push_back(step.back().token);
  return tokens;
}

Result<HiddenRows> RemoteTail::ForwardRows(const HiddenRows& rows) {
  TANDEM_RETURN_IF_ERROR(RequireMode(request_.private_output(), true));
  TANDEM_ASSIGN_OR_RETURN(std::vector<ChunkReply> replies, Step(rows));
  return JoinRows(replies);
}

Result<std::vector<HiddenRows>> RemoteTail::ForwardAllRows(std::span<const HiddenRows> steps) {
  TANDEM_RETURN_IF_ERROR(RequireMode(request_.private_output(), true));
  TANDEM_ASSIGN_OR_RETURN(auto replies, Pipeline(steps));
  std::vector<HiddenRows> rows;
  for (std::vector<ChunkReply>& step : replies) rows.push_back(JoinRows(step));
  return rows;
}

HiddenRows RemoteTail::JoinRows(std::vector<ChunkReply>& chunks) {
  if (chunks.size() == 1) return std::move(chunks.front().rows);
  HiddenRows joined{0, chunks.front().rows.cols, {}};
  for (const ChunkReply& chunk : chunks) {
    joined.rows += chunk.rows.rows;
    joined.values.insert(joined.values.end(), chunk.rows.values.begin(), chunk.rows.values.end());
  }
  return joined;
}

Result<RemoteTail::Sent> RemoteTail::Send(const HiddenRows& rows) {
  TANDEM_ASSIGN_OR_RETURN(EncodedActivations encoded,
                          EncodeActivations(rows.values, rows.rows, rows.cols, request_.codec));
  const int64_t payload_bytes = static_cast<int64_t>(encoded.payload.size());
  const Sent sent{.sequence = next_sequence_,
                  .at = Clock::now(),
                  .position = static_cast<uint32_t>(cut_log_.positions()),
                  .rows = rows.rows};
  last_sent_ = wire::MakeActivations(request_.session, sent.sequence, sent.position,
                                     static_cast<uint32_t>(rows.rows), static_cast<uint32_t>(rows.cols),
                                     request_.codec, encoded.compression, std::move(encoded.payload));
  const wire::Message& message = last_sent_;
  TANDEM_RETURN_IF_ERROR(connection_.channel().Send(message));
  // The rows are logged once sent: a replay must resend exactly what the tail has seen.
  cut_log_.Append(rows);
  ++next_sequence_;
  stats_.raw_bytes += encoded.raw_bytes;
  stats_.payload_bytes += payload_bytes;
  stats_.wire_bytes_sent += WireSize(message);
  stats_.step_payload_bytes.push_back(payload_bytes);
  return sent;
}

Result<RemoteTail::ChunkReply> RemoteTail::Await(const Sent& sent, const wire::Message* resend) {
  const bool rows_back = request_.private_output();
  TANDEM_ASSIGN_OR_RETURN(
      const wire::Message reply,
      connection_.AwaitReply(request_.session, sent.sequence,
                             rows_back ? wire::MessageType::kRows : wire::MessageType::kToken,
                             stats_.wire_bytes_received, resend, &stats_.resends));
  stats_.step_round_trip_ms.push_back(
      std::chrono::duration<double, std::milli>(Clock::now() - sent.at).count());
  ChunkReply answer;
  if (rows_back) {
    TANDEM_ASSIGN_OR_RETURN(const wire::RowsReply rows, wire::ParseRows(reply));
    stats_.step_cloud_compute_ms.push_back(rows.compute_us / 1000.0);
    const auto dim = static_cast<uint32_t>(connection_.remote().dim);
    if (rows.position != sent.position || rows.rows != static_cast<uint32_t>(sent.rows) || rows.cols != dim ||
        rows.codec.precision != request_.codec.precision) {
      return InvalidArgument("the cloud tail's ROWS for sequence " + std::to_string(sent.sequence) +
                             " do not match its ACTIVATIONS (position, shape or codec)");
    }
    stats_.returned_payload_bytes += static_cast<int64_t>(rows.payload.size());
    const int64_t count = int64_t{rows.rows} * rows.cols;
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> values,
                            DecodeActivations(rows.payload, rows.rows, rows.cols, rows.codec, count));
    answer.rows = HiddenRows{rows.rows, rows.cols, std::move(values)};
    return answer;
  }
  TANDEM_ASSIGN_OR_RETURN(last_reply_, wire::ParseToken(reply));
  stats_.step_cloud_compute_ms.push_back(last_reply_.compute_us / 1000.0);
  if (last_reply_.token < 0 || last_reply_.token >= static_cast<int>(connection_.remote().vocab_size)) {
    return InvalidArgument("the cloud tail returned token " + std::to_string(last_reply_.token) +
                           ", outside the vocabulary");
  }
  answer.token = last_reply_.token;
  return answer;
}

}  // namespace tandem::edge
