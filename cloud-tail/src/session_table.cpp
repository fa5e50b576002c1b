#include "tandem/cloud_tail/session_table.hpp"

#include <string_view>

#include "tandem/base/log.hpp"
#include "tandem/engine/pipeline.hpp"

namespace tandem::cloud_tail {
namespace {

using wire::ErrorCode;

wire::ErrorReply Refusal(uint64_t session, uint64_t sequence, ErrorCode code, std::string text,
                         bool retryable = false) {
  return {.session = session,
          .sequence = sequence,
          .code = code,
          .retryable = retryable,
          .message = std::move(text)};
}

Admission Refused(wire::ErrorReply refusal) {
  return {.refusal = std::move(refusal)};
}

std::string Range(int first, int last) {
  return std::to_string(first) + ":" + std::to_string(last);
}

// The blocks a session runs: to end_block for private output, else to the last.
int EndBlock(const wire::OpenRequest& open, int n_layers) {
  return open.private_output() ? open.end_block : n_layers;
}

}  // namespace

Session::Session() = default;
Session::~Session() = default;

uint64_t StepDigest(const wire::Message& message) {
  const wire::Header& header = message.header;
  const std::string_view payload(reinterpret_cast<const char*>(message.payload.data()),
                                 message.payload.size());
  uint64_t digest = std::hash<std::string_view>{}(payload);
  for (const uint64_t field :
       {uint64_t{header.position}, uint64_t{header.rows}, uint64_t{header.cols}, uint64_t{header.precision},
        uint64_t{header.compression}, uint64_t{static_cast<uint8_t>(header.type)}}) {
    digest = (digest ^ field) * 0x100000001b3ULL;  // FNV-1a's prime: mixes each field in
  }
  return digest;
}

SessionTable::SessionTable(ServedModel model, SessionLimits limits, const Clock& clock,
                           ChangeObserver on_change)
    : model_(model), limits_(limits), clock_(clock), on_change_(std::move(on_change)) {}

SessionTable::~SessionTable() = default;

std::optional<wire::ErrorReply> SessionTable::AdmitPeer(const std::string& peer) {
  if (draining_.load()) return Refusal(0, 0, ErrorCode::kOverloaded, "the tail is shutting down", true);
  if (!peers_.contains(peer) && peers_.size() >= static_cast<size_t>(limits_.max_peers) &&
      !ForgetIdlestPeer()) {
    return Refusal(0, 0, ErrorCode::kOverloaded, "too many connections", /*retryable=*/true);
  }
  peers_[peer] = clock_.Now();
  return std::nullopt;
}

bool SessionTable::TouchPeer(const std::string& peer) {
  const auto known = peers_.find(peer);
  if (known == peers_.end()) return false;
  known->second = clock_.Now();
  return true;
}

std::optional<std::string> SessionTable::InvalidOpen(const wire::OpenRequest& open) const {
  const int layers = model_.n_layers;
  if (open.cut < 0 || open.cut > layers) {
    return "cut " + std::to_string(open.cut) + " is outside [0, " + std::to_string(layers) + "]";
  }
  const int end_block = EndBlock(open, layers);
  if (open.private_output() && (end_block <= open.cut || end_block > layers)) {
    return "end_block " + std::to_string(end_block) + " is outside [" + std::to_string(open.cut + 1) + ", " +
           std::to_string(layers) + "]";
  }
  // A block-range checkpoint runs what it holds, and answers TOKEN only with the head.
  const BlockRange held = model_.held;
  if (open.cut < end_block && (open.cut < held.first || end_block > held.last)) {
    return "this tail holds blocks " + Range(held.first, held.last) + " only, not " +
           Range(open.cut, end_block);
  }
  if (!open.private_output() && !model_.holds_head) {
    return "this tail holds no head (blocks " + Range(held.first, held.last) +
           " only): open the session with end_block (private output)";
  }
  if (open.max_positions > static_cast<uint32_t>(model_.seq_len)) {
    return "max_positions " + std::to_string(open.max_positions) + " exceeds the context length " +
           std::to_string(model_.seq_len);
  }
  return std::nullopt;
}

Admission SessionTable::Open(const std::string& peer, uint64_t id, const wire::OpenRequest& open) {
  const auto refuse = [id](ErrorCode code, std::string text, bool retryable = false) {
    return Refused(Refusal(id, 0, code, std::move(text), retryable));
  };
  if (id == 0) return refuse(ErrorCode::kBadArgument, "session id 0 is reserved");
  if (draining_.load()) return refuse(ErrorCode::kOverloaded, "the tail is shutting down", true);
  if (auto invalid = InvalidOpen(open)) return refuse(ErrorCode::kBadArgument, std::move(*invalid));
  if (sessions_.contains({peer, id})) return refuse(ErrorCode::kSessionExists, "session is already open");
  if (sessions_.size() >= static_cast<size_t>(limits_.max_sessions)) {
    return refuse(ErrorCode::kOverloaded,
                  "the tail holds its maximum of " + std::to_string(limits_.max_sessions) + " sessions",
                  true);
  }
  const uint32_t capacity =
      open.max_positions == 0 ? static_cast<uint32_t>(model_.seq_len) : open.max_positions;
  // K and V, float32, for every tail block and position the session may use.
  const int64_t kv_bytes =
      int64_t{2} * (EndBlock(open, model_.n_layers) - open.cut) * model_.kv_dim * capacity * 4;
  if (kv_bytes_.load() + kv_bytes > limits_.max_kv_bytes) {
    return refuse(ErrorCode::kOverloaded,
                  "KV-cache memory is full (" + std::to_string(kv_bytes_.load()) + " of " +
                      std::to_string(limits_.max_kv_bytes) + " bytes in use)",
                  true);
  }
  auto session = std::make_shared<Session>();
  session->peer = peer;
  session->id = id;
  session->serial = ++next_serial_;
  session->worker = limits_.workers <= 0 ? 0 : static_cast<int>(next_worker_++ % limits_.workers);
  session->kv_bytes = kv_bytes;
  session->capacity = capacity;
  session->open = open;
  session->open.session = id;
  session->last_active = clock_.Now();
  sessions_.emplace(std::make_pair(peer, id), session);
  kv_bytes_ += kv_bytes;
  ++open_sessions_;
  Changed();
  return {.session = std::move(session)};
}

std::optional<std::pair<wire::ErrorCode, std::string>> SessionTable::InvalidStep(
    const Session& session, const wire::Message& message) const {
  const wire::Header& header = message.header;
  if (header.sequence != session.next_sequence) {
    // A gap, or a step before the last one: the edge only ever resends its last step.
    return {{ErrorCode::kOutOfOrder, "expected sequence " + std::to_string(session.next_sequence)}};
  }
  // After a step the edge may rewind over the drafts it did not keep: the next step starts anywhere past
  // the last one's first position, up to the end of its rows. (A tail checks its own count exactly.)
  const uint32_t lowest = session.next_sequence == 0 ? 0 : session.last_position + 1;
  if (header.position < lowest || header.position > session.next_position) {
    return {{ErrorCode::kOutOfOrder, lowest == session.next_position
                                         ? "expected position " + std::to_string(lowest)
                                         : "expected a position in [" + std::to_string(lowest) + ", " +
                                               std::to_string(session.next_position) + "]"}};
  }
  if (header.cols != static_cast<uint32_t>(model_.dim)) {
    return {{ErrorCode::kBadArgument, "rows must have " + std::to_string(model_.dim) + " columns"}};
  }
  if (header.rows == 0) return {{ErrorCode::kBadArgument, "no rows"}};
  if (header.rows > static_cast<uint32_t>(limits_.max_rows)) {
    return {{ErrorCode::kTooLarge, "rows must be in [1, " + std::to_string(limits_.max_rows) + "]"}};
  }
  if (uint64_t{header.position} + header.rows > session.capacity) {
    return {{ErrorCode::kTooLarge, "the session holds " + std::to_string(session.capacity) + " positions"}};
  }
  if (!PrecisionFromWire(header.precision).ok() || !CompressionFromWire(header.compression).ok()) {
    return {{ErrorCode::kBadArgument, "unknown activation codec"}};
  }
  // The session's codec, or its precision sent uncompressed (when compressing did not pay).
  const ActivationCodec opened = session.open.codec;
  const ActivationCodec sent{static_cast<Precision>(header.precision),
                             static_cast<Compression>(header.compression)};
  if (sent.precision != opened.precision ||
      (sent.compression != opened.compression && sent.compression != Compression::kNone)) {
    return {{ErrorCode::kBadArgument,
             "the session was opened with codec " + opened.Name() + ", not " + sent.Name()}};
  }
  if (header.type == wire::MessageType::kVerify) {
    if (session.private_output()) {
      return {{ErrorCode::kBadArgument, "a private-output session verifies on the edge: send ACTIVATIONS"}};
    }
    if (auto verify = wire::ParseVerify(message); !verify.ok()) {
      return {{ErrorCode::kBadFrame, verify.status().message()}};
    }
  }
  return std::nullopt;
}

Admission SessionTable::AcceptStep(const std::string& peer, const wire::Message& message) {
  const wire::Header& header = message.header;
  const auto it = sessions_.find({peer, header.session});
  if (it == sessions_.end()) {
    return Refused(
        Refusal(header.session, header.sequence, ErrorCode::kUnknownSession, "no open session with this id"));
  }
  Session& session = *it->second;
  if (session.next_sequence > 0 && header.sequence == session.next_sequence - 1) {
    return AnswerResend(session, message);
  }
  if (auto invalid = InvalidStep(session, message)) {
    return Refused(Refusal(header.session, header.sequence, invalid->first, std::move(invalid->second)));
  }
  ++session.next_sequence;
  session.last_position = header.position;
  session.next_position = header.position + header.rows;
  session.last_step_digest = StepDigest(message);
  session.last_reply.reset();
  ++session.in_flight;
  session.last_active = clock_.Now();
  return {.session = it->second};
}

// Steps are idempotent: the same rows get the same reply, from the cache. The same sequence number with
// other rows is refused: that is not a resend.
Admission SessionTable::AnswerResend(Session& session, const wire::Message& message) {
  const wire::Header& header = message.header;
  if (StepDigest(message) != session.last_step_digest) {
    return Refused(Refusal(header.session, header.sequence, ErrorCode::kOutOfOrder,
                           "sequence " + std::to_string(header.sequence) +
                               " was already used for other rows; expected " +
                               std::to_string(session.next_sequence)));
  }
  session.last_active = clock_.Now();
  return {.resend = true, .cached_reply = session.last_reply};
}

void SessionTable::Close(const std::string& peer, uint64_t id) {
  if (const auto it = sessions_.find({peer, id}); it != sessions_.end()) Erase(it);
}

void SessionTable::Settle(const std::string& peer, uint64_t serial, const wire::Message& reply) {
  const auto it = sessions_.find({peer, reply.header.session});
  if (it == sessions_.end() || it->second->serial != serial) return;
  Session& session = *it->second;
  --session.in_flight;
  session.last_active = clock_.Now();
  if (reply.header.type == wire::MessageType::kError) {
    Erase(it);
  } else if (reply.header.sequence + 1 == session.next_sequence) {
    session.last_reply = reply;
  }
}

int SessionTable::ExpireIdle() {
  const auto now = clock_.Now();
  int expired = 0;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    const Session& session = *it->second;
    if (session.in_flight == 0 && now - session.last_active > limits_.idle_timeout) {
      Log(LogLevel::kInfo, "cloud", "idle session expired", {{"session", std::to_string(session.id)}});
      ++expired;
      Erase(it++);
    } else {
      ++it;
    }
  }
  return expired;
}

void SessionTable::Erase(SessionMap::iterator it) {
  // A worker still holding the session finishes its step; the reply then finds no session.
  kv_bytes_ -= it->second->kv_bytes;
  --open_sessions_;
  sessions_.erase(it);
  Changed();
}

// Connections are not expired on a timer: an edge may keep one open, idle, between requests.
bool SessionTable::ForgetIdlestPeer() {
  auto idlest = peers_.end();
  for (auto it = peers_.begin(); it != peers_.end(); ++it) {
    const auto first_session = sessions_.lower_bound({it->first, 0});
    const bool has_sessions = first_session != sessions_.end() && first_session->first.first == it->first;
    if (!has_sessions && (idlest == peers_.end() || it->second < idlest->second)) idlest = it;
  }
  if (idlest == peers_.end()) return false;
  peers_.erase(idlest);
  return true;
}

void SessionTable::Changed() {
  if (on_change_) on_change_(open_sessions_.load(), kv_bytes_.load());
}

}  // namespace tandem::cloud_tail
