#include "tandem/edge_agent/remote_session.hpp"

#include <algorithm>

namespace tandem::edge_agent {
namespace {

using Clock = std::chrono::steady_clock;

}  // namespace

Result<std::unique_ptr<RemoteSession>> RemoteSession::Open(CloudConnection& connection,
                                                           wire::OpenRequest request) {
  request.session = connection.NextSessionId();
  const wire::Message open = wire::MakeOpen(request);
  TANDEM_RETURN_IF_ERROR(connection.channel().Send(open));
  std::unique_ptr<RemoteSession> session(new RemoteSession(connection, request));
  session->stats_.wire_bytes_sent += WireSize(open);
  return session;
}

RemoteSession::~RemoteSession() {
  // Best effort: the tail also expires idle sessions.
  (void)connection_.channel().Send(wire::MakeClose(request_.session));
}

Result<std::vector<HiddenRows>> RemoteSession::Chunks(const HiddenRows& rows, int drafts) const {
  // Within the tail's limits from HELLO: a prompt longer than its rows or payload limit goes in chunks,
  // and the last chunk's answer is the prompt's.
  const wire::Hello& limits = tail();
  TANDEM_ASSIGN_OR_RETURN(const int64_t row_bytes,
                          PrecisionPayloadBytes(request_.codec.precision, 1, rows.cols));
  int64_t chunk_rows = rows.rows;
  if (limits.max_rows > 0) chunk_rows = std::min<int64_t>(chunk_rows, limits.max_rows);
  if (limits.max_payload_bytes > 0) {
    chunk_rows = std::min<int64_t>(chunk_rows, static_cast<int64_t>(limits.max_payload_bytes) / row_bytes);
  }
  if (chunk_rows <= 0) return InvalidArgument("one row does not fit in the tail's payload limit");
  if (drafts + 1 > chunk_rows) {
    return InvalidArgument("a verify step of " + std::to_string(drafts) +
                           " drafts does not fit in the tail's " + std::to_string(chunk_rows) +
                           " rows per message");
  }
  // A VERIFY is the last chunk: it holds its drafts and the row before them.
  const int64_t last_rows = rows.rows <= chunk_rows ? rows.rows : std::max<int64_t>(drafts + 1, 1);
  const int64_t head_rows = drafts > 0 ? rows.rows - last_rows : rows.rows;
  std::vector<HiddenRows> chunks;
  const auto cut = [&](int64_t first, int64_t n) {
    const auto begin = rows.values.begin() + first * rows.cols;
    chunks.push_back(HiddenRows{n, rows.cols, std::vector<float>(begin, begin + n * rows.cols)});
  };
  for (int64_t first = 0; first < head_rows; first += chunk_rows)
    cut(first, std::min(chunk_rows, head_rows - first));
  if (drafts > 0) cut(head_rows, last_rows);
  return chunks;
}

Status RemoteSession::Step(const HiddenRows& rows, std::span<const int> draft, const ReadReply& read) {
  TANDEM_ASSIGN_OR_RETURN(const std::vector<HiddenRows> chunks, Chunks(rows, static_cast<int>(draft.size())));
  for (size_t i = 0; i < chunks.size(); ++i) {
    const int64_t sent_before = stats_.wire_bytes_sent, received_before = stats_.wire_bytes_received;
    const bool last = i + 1 == chunks.size();
    TANDEM_ASSIGN_OR_RETURN(const Sent sent, Send(chunks[i], last ? draft : std::span<const int>(), 0));
    // One step in flight: it may be sent again.
    TANDEM_RETURN_IF_ERROR(Await(sent, read, &last_sent_));
    if (observer_) {
      observer_(stats_.wire_bytes_sent - sent_before + stats_.wire_bytes_received - received_before,
                stats_.step_round_trip_ms.back(), stats_.step_cloud_compute_ms.back());
    }
  }
  return Status::Ok();
}

Status RemoteSession::Replay(std::span<const TailStep> steps, const ReadReply& read) {
  std::vector<Sent> sent;
  for (size_t step = 0; step < steps.size(); ++step) {
    const TailStep& logged = steps[step];
    // A private-output session sends its drafts' rows as ACTIVATIONS; the edge verified them.
    const std::span<const int> draft = request_.private_output() ? std::span<const int>() : logged.draft;
    TANDEM_ASSIGN_OR_RETURN(const std::vector<HiddenRows> chunks,
                            Chunks(logged.rows, static_cast<int>(draft.size())));
    for (size_t i = 0; i < chunks.size(); ++i) {
      TANDEM_ASSIGN_OR_RETURN(const Sent one,
                              Send(chunks[i], i + 1 == chunks.size() ? draft : std::span<const int>(), step));
      sent.push_back(one);
    }
    cut_log_.Drop(static_cast<int64_t>(logged.draft.size()) - logged.kept);
  }
  for (const Sent& one : sent) TANDEM_RETURN_IF_ERROR(Await(one, read));
  return Status::Ok();
}

Result<RemoteSession::Sent> RemoteSession::Send(const HiddenRows& rows, std::span<const int> draft,
                                                size_t step) {
  TANDEM_ASSIGN_OR_RETURN(EncodedActivations encoded,
                          EncodeActivations(rows.values, rows.rows, rows.cols, request_.codec));
  const int64_t payload_bytes = static_cast<int64_t>(encoded.payload.size());
  const Sent sent{.step = step,
                  .sequence = next_sequence_,
                  .at = Clock::now(),
                  .position = static_cast<uint32_t>(cut_log_.positions()),
                  .rows = rows.rows,
                  .drafts = static_cast<int>(draft.size())};
  const auto n = static_cast<uint32_t>(rows.rows), cols = static_cast<uint32_t>(rows.cols);
  last_sent_ = draft.empty()
                   ? wire::MakeActivations(request_.session, sent.sequence, sent.position, n, cols,
                                           request_.codec, encoded.compression, std::move(encoded.payload))
                   : wire::MakeVerify(request_.session, sent.sequence, sent.position, n, cols, request_.codec,
                                      encoded.compression, draft, std::move(encoded.payload));
  TANDEM_RETURN_IF_ERROR(connection_.channel().Send(last_sent_));
  // Logged once sent: a replay must resend exactly the chunking the tail has seen.
  cut_log_.Append(rows.rows);
  ++next_sequence_;
  stats_.raw_bytes += encoded.raw_bytes;
  stats_.payload_bytes += payload_bytes;
  stats_.wire_bytes_sent += WireSize(last_sent_);
  stats_.step_payload_bytes.push_back(payload_bytes);
  return sent;
}

Status RemoteSession::Await(const Sent& sent, const ReadReply& read, const wire::Message* resend) {
  const wire::MessageType expected = request_.private_output() ? wire::MessageType::kRows
                                     : sent.drafts > 0         ? wire::MessageType::kVerdict
                                                               : wire::MessageType::kToken;
  TANDEM_ASSIGN_OR_RETURN(const wire::Message reply,
                          connection_.AwaitReply(request_.session, sent.sequence, expected,
                                                 stats_.wire_bytes_received, resend, &stats_.resends));
  stats_.step_round_trip_ms.push_back(
      std::chrono::duration<double, std::milli>(Clock::now() - sent.at).count());
  TANDEM_ASSIGN_OR_RETURN(const ReplyFacts facts, read(reply, sent));
  stats_.step_cloud_compute_ms.push_back(facts.compute_us / 1000.0);
  stats_.returned_payload_bytes += facts.returned_payload_bytes;
  return Status::Ok();
}

}  // namespace tandem::edge_agent
