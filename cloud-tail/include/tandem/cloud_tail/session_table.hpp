// The tail's session bookkeeping, apart from its sockets and its compute: which connections passed HELLO,
// which sessions are open, and whether an OPEN or an ACTIVATIONS is admitted. Every wire check the I/O
// thread makes before handing a step to a worker lives here, so tests run it without ZeroMQ or a model.
//
// Threads: one thread (the server's I/O thread) calls everything but open_sessions() and kv_bytes(), which
// any thread may read. Failures are not errors of the table: a refused message comes back as the ERROR
// (wire::ErrorReply) the edge is to receive.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

#include "tandem/base/clock.hpp"
#include "tandem/model/model_config.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem {
class LocalTail;
class LocalMiddle;
}  // namespace tandem

namespace tandem::cloud_tail {

// What the tail serves, as OPEN and ACTIVATIONS are checked against it.
struct ServedModel {
  int n_layers = 0;
  int dim = 0;
  int seq_len = 0;
  int kv_dim = 0;
  BlockRange held;  // a block-range checkpoint runs only these
  bool holds_head = true;
};

struct SessionLimits {
  int max_rows = 0;  // rows per ACTIVATIONS
  int max_sessions = 256;
  int64_t max_kv_bytes = int64_t{2} << 30;
  int max_peers = 4096;  // connections past HELLO remembered; then the idlest without sessions is forgotten
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(2)};
  int workers = 1;  // sessions are spread over this many workers (0: all on the I/O thread)
};

struct Session {
  std::string peer;
  uint64_t id = 0;
  uint64_t serial = 0;  // unique per OPEN: a reused (peer, id) must not receive the old session's replies
  int worker = 0;
  int64_t kv_bytes = 0;  // reserved at OPEN, whether or not the runner is built yet
  uint32_t capacity = 0;
  wire::OpenRequest open;  // as admitted; codec, cut, end_block, sampling do not change
  bool private_output() const { return open.private_output(); }

  // Used by the session's worker only, which builds them from `open` before the session's first step: the
  // tail (blocks [cut, L), head, sampling; answers TOKEN), or for a private-output session the middle
  // (blocks [cut, end_block); answers ROWS). Neither: not built yet, or it could not be.
  std::unique_ptr<LocalTail> tail;
  std::unique_ptr<LocalMiddle> middle;

  // I/O thread only.
  uint64_t next_sequence = 0;
  // The last step's first position and the one after its rows: the next step starts in
  // [last_position + 1, next_position] (a rewind forgets drafts the edge did not keep); the first at 0.
  uint32_t last_position = 0;
  uint32_t next_position = 0;
  int in_flight = 0;
  Clock::TimePoint last_active;
  // The last step, so that an edge that lost its reply can send it again: the digest of its ACTIVATIONS
  // (or VERIFY) and, once computed, its TOKEN (ROWS, VERDICT).
  uint64_t last_step_digest = 0;
  std::optional<wire::Message> last_reply;

  // Out of line: LocalTail and LocalMiddle are only declared here.
  Session();
  ~Session();
};

// The table's answer to an OPEN or a step: the session to run it on, or the ERROR to send back.
struct Admission {
  std::shared_ptr<Session> session;
  std::optional<wire::ErrorReply> refusal;
  // Steps only: the edge sent its last step again. Nothing is computed: `cached_reply` answers it,
  // or, while the step is still being computed, nothing does (its reply is on the way).
  bool resend = false;
  std::optional<wire::Message> cached_reply;
};

class SessionTable {
 public:
  // Sees the open-session count and reserved KV bytes after every change (for the gauges).
  using ChangeObserver = std::function<void(int64_t sessions, int64_t kv_bytes)>;

  SessionTable(ServedModel model, SessionLimits limits, const Clock& clock, ChangeObserver on_change = {});
  ~SessionTable();
  SessionTable(const SessionTable&) = delete;
  SessionTable& operator=(const SessionTable&) = delete;

  // From now on new connections and sessions are refused with a retryable "overloaded".
  void BeginDrain() { draining_ = true; }

  // A HELLO that matched the model: remembers `peer`, making room by forgetting the idlest connection
  // without sessions when `max_peers` are known. Refused (session 0) while draining or when all are busy.
  std::optional<wire::ErrorReply> AdmitPeer(const std::string& peer);
  // Whether `peer` passed HELLO; if so, marks it seen now.
  bool TouchPeer(const std::string& peer);

  // OPEN of session `id`: checks it against the model and the limits, reserves its KV memory and assigns
  // its worker. The session's runner is not built here: its KV cache is the worker's to allocate.
  Admission Open(const std::string& peer, uint64_t id, const wire::OpenRequest& open);
  // ACTIVATIONS or VERIFY: the session, sequence, position, shape and codec; a VERIFY also its draft list
  // (kBadFrame) and a session that answers TOKEN (kBadArgument). An admitted step advances the session.
  Admission AcceptStep(const std::string& peer, const wire::Message& message);
  // CLOSE; an unknown session is not an error (the edge closes best effort).
  void Close(const std::string& peer, uint64_t id);
  // A worker's reply (TOKEN, ROWS, VERDICT or ERROR) to a step of the session with `serial`: one step
  // less in flight, and any reply but an ERROR kept for a resend. An ERROR ends the session (its cache is
  // behind its bookkeeping). A reply for an older session with the same id changes nothing.
  void Settle(const std::string& peer, uint64_t serial, const wire::Message& reply);
  // Frees the sessions idle past `idle_timeout` with no step in flight; returns how many.
  int ExpireIdle();

  int64_t open_sessions() const { return open_sessions_.load(); }
  int64_t kv_bytes() const { return kv_bytes_.load(); }
  size_t peers() const { return peers_.size(); }

 private:
  using SessionMap = std::map<std::pair<std::string, uint64_t>, std::shared_ptr<Session>>;

  // The first reason to refuse `open` (not counting limits on what is open already).
  std::optional<std::string> InvalidOpen(const wire::OpenRequest& open) const;
  // The first reason to refuse a step for `session`: its code and text.
  std::optional<std::pair<wire::ErrorCode, std::string>> InvalidStep(const Session& session,
                                                                     const wire::Message& message) const;
  Admission AnswerResend(Session& session, const wire::Message& message);
  void Erase(SessionMap::iterator it);
  bool ForgetIdlestPeer();
  void Changed();

  ServedModel model_;
  SessionLimits limits_;
  const Clock& clock_;
  ChangeObserver on_change_;
  std::atomic<bool> draining_{false};

  SessionMap sessions_;
  std::unordered_map<std::string, Clock::TimePoint> peers_;  // connections past HELLO, last seen
  uint64_t next_worker_ = 0;
  uint64_t next_serial_ = 0;
  std::atomic<int64_t> open_sessions_{0};
  std::atomic<int64_t> kv_bytes_{0};
};

// Identifies a step (ACTIVATIONS or VERIFY) by everything it depends on. Not a MAC (CURVE authenticates the
// peer); it only tells an edge's resend from a different step under a reused sequence number.
uint64_t StepDigest(const wire::Message& message);

}  // namespace tandem::cloud_tail
