// The edge's side of the split: a connection to a cloud tail (HELLO done), and RemoteTail, the TailRunner
// that sends the boundary rows of one session over it and keeps the session's cut log.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "tandem/common/pipeline.hpp"
#include "tandem/common/transport.hpp"
#include "tandem/common/wire.hpp"

namespace tandem::edge {

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

// Every boundary row a session sent, in order and with its chunking (rows per ACTIVATIONS), so that a tail
// can be rebuilt by replaying it exactly as it was first computed.
class CutLog {
 public:
  void Append(const HiddenRows& rows);
  int64_t positions() const { return positions_; }
  int64_t cols() const { return cols_; }
  const std::vector<float>& values() const { return values_; }
  const std::vector<int64_t>& chunks() const { return chunks_; }
  // Heap memory the log holds.
  int64_t bytes() const {
    return static_cast<int64_t>(values_.capacity() * sizeof(float) + chunks_.capacity() * sizeof(int64_t));
  }

 private:
  int64_t positions_ = 0;
  int64_t cols_ = 0;
  std::vector<float> values_;
  std::vector<int64_t> chunks_;
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

struct RemoteTailStats {
  int64_t raw_bytes = 0;        // float32 bytes of the rows sent (before the codec)
  int64_t payload_bytes = 0;    // codec output (after compression)
  int64_t wire_bytes_sent = 0;  // headers + payloads of every message sent
  int64_t wire_bytes_received = 0;
  std::vector<int64_t> step_payload_bytes;  // per ACTIVATIONS: the prefill chunk, then one per token
  std::vector<double> step_round_trip_ms;   // ACTIVATIONS sent -> TOKEN (or ROWS) received
  std::vector<double> step_cloud_compute_ms;
  int resends = 0;  // steps sent again for want of a reply
  int64_t returned_payload_bytes = 0;  // private output: codec payloads of the ROWS received
};

// One session on a cloud tail. Not thread-safe; one per session. As a TailRunner it runs blocks [cut, L),
// the head and sampling there (TOKEN replies); opened with `end_block` (private output) it is a
// MiddleRunner, running blocks [cut, end_block) there and returning their rows (ROWS replies).
class RemoteTail final : public TailRunner, public MiddleRunner {
 public:
  // Sends OPEN without waiting: a refused OPEN surfaces as the first Forward's error, saving a round trip.
  // `request.session` is assigned here.
  static Result<std::unique_ptr<RemoteTail>> Open(CloudConnection& connection, wire::OpenRequest request);
  ~RemoteTail() override;  // sends CLOSE

  // Sends the rows (in chunks when the tail's HELLO limits require) and returns the last row's token.
  Result<int> Forward(const HiddenRows& rows) override;
  // A replay: sends every step's chunks, then collects the replies (one round trip for all of them).
  Result<std::vector<int>> ForwardAll(std::span<const HiddenRows> steps) override;
  // Private output: the same, returning every row after block end_block - 1.
  Result<HiddenRows> ForwardRows(const HiddenRows& rows) override;
  Result<std::vector<HiddenRows>> ForwardAllRows(std::span<const HiddenRows> steps) override;
  // Payload bytes both ways (what crossed the cut).
  int64_t BytesSent() const override { return stats_.payload_bytes + stats_.returned_payload_bytes; }

  uint64_t session_id() const { return request_.session; }
  const CutLog& cut_log() const { return cut_log_; }
  const RemoteTailStats& stats() const { return stats_; }
  const wire::TokenReply& last_reply() const { return last_reply_; }

  // Sees every step answered one at a time (not replays): bytes both ways, round trip, tail compute.
  using StepObserver = std::function<void(int64_t bytes, double round_trip_ms, double compute_ms)>;
  void set_step_observer(StepObserver observer) { observer_ = std::move(observer); }

 private:
  RemoteTail(CloudConnection& connection, wire::OpenRequest request)
      : connection_(connection), request_(std::move(request)) {}
  // What one ACTIVATIONS got back: a token, or (private output) the middle's rows.
  struct ChunkReply {
    int token = -1;
    HiddenRows rows;
  };
  // The chunks `rows` goes in, within the tail's HELLO limits.
  Result<std::vector<HiddenRows>> Chunks(const HiddenRows& rows) const;
  // Each step's chunks and their replies, one chunk in flight at a time (a resend may repeat it).
  Result<std::vector<ChunkReply>> Step(const HiddenRows& rows);
  // A replay: every step's chunks sent, then every reply collected; the replies of each step.
  Result<std::vector<std::vector<ChunkReply>>> Pipeline(std::span<const HiddenRows> steps);
  // A step's rows: its chunks' rows, in order.
  static HiddenRows JoinRows(std::vector<ChunkReply>& chunks);
  // One sent ACTIVATIONS: ROWS must answer it with its position and shape.
  struct Sent {
    uint64_t sequence = 0;
    std::chrono::steady_clock::time_point at;
    uint32_t position = 0;
    int64_t rows = 0;
  };
  Result<Sent> Send(const HiddenRows& rows);
  // Its reply, checked; `resend` (the step's ACTIVATIONS) goes again while none comes.
  Result<ChunkReply> Await(const Sent& sent, const wire::Message* resend = nullptr);

  CloudConnection& connection_;
  wire::OpenRequest request_;
  uint64_t next_sequence_ = 0;
  wire::Message last_sent_;  // the last ACTIVATIONS, for a resend
  CutLog cut_log_;
  RemoteTailStats stats_;
  wire::TokenReply last_reply_;
  StepObserver observer_;
};

// The session on a cloud tail behind `tail` (a RemoteTail, or a UShapedTail's remote middle), or null.
const RemoteTail* RemoteOf(const TailRunner& tail);

}  // namespace tandem::edge
