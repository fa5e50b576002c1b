// One session on a cloud tail: the part a remote tail (TOKEN replies) and a remote middle (ROWS replies,
// private output) share. OPEN and CLOSE, the chunking of a step within the tail's HELLO limits, sending
// with the cut log and the wire statistics, and the wait for each reply, resending a lost one.
//
// Not thread-safe: one per session, used by its generation's thread. Every failure (the connection, the
// tail's ERROR, a reply that does not answer the step) is the step's Status.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>

#include "tandem/edge_agent/cloud_connection.hpp"
#include "tandem/edge_agent/cut_log.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem::edge_agent {

// Sees every step answered one at a time (not replays): bytes both ways, round trip, tail compute.
using StepObserver = std::function<void(int64_t bytes, double round_trip_ms, double compute_ms)>;

class RemoteSession {
 public:
  // Sends OPEN without waiting: a refused OPEN surfaces as the first step's error, saving a round trip.
  // `request.session` is assigned here.
  static Result<std::unique_ptr<RemoteSession>> Open(CloudConnection& connection, wire::OpenRequest request);
  ~RemoteSession();  // sends CLOSE
  RemoteSession(const RemoteSession&) = delete;
  RemoteSession& operator=(const RemoteSession&) = delete;

  // One sent ACTIVATIONS (or VERIFY), which its reply must answer: of step `step` (in a replay, its
  // index).
  struct Sent {
    size_t step = 0;
    uint64_t sequence = 0;
    std::chrono::steady_clock::time_point at;
    uint32_t position = 0;
    int64_t rows = 0;
    int drafts = 0;  // VERIFY: the drafted tokens among the rows
  };
  // What a reply told beyond its answer, for the statistics.
  struct ReplyFacts {
    uint32_t compute_us = 0;
    int64_t returned_payload_bytes = 0;  // ROWS only
  };
  // Takes one reply (TOKEN, or ROWS for private output) to `sent` into the runner's answer.
  using ReadReply = std::function<Result<ReplyFacts>(const wire::Message& reply, const Sent& sent)>;

  // One step: its chunks in order, each awaited before the next (and sent again while unanswered). With
  // `draft` (a session answering TOKEN), its last chunk is a VERIFY holding the drafts' rows and at least
  // one row before them, answered by a VERDICT.
  Status Step(const HiddenRows& rows, std::span<const int> draft, const ReadReply& read);
  // A replay: every step's chunks sent, then every reply read (one round trip for all). Each step's
  // positions follow the kept ones of the step before (TailStep::kept, from the log): a private-output
  // session's rows carry drafts but no VERIFY. A pipelined replay is not resent: the tail only resends
  // its last reply, and a replay that fails is redone elsewhere.
  Status Replay(std::span<const TailStep> steps, const ReadReply& read);
  // The last `count` positions sent were drafts not kept: the next step starts where they did.
  void DropPositions(int count) { cut_log_.Drop(count); }

  const wire::OpenRequest& request() const { return request_; }
  const wire::Hello& tail() const { return connection_.remote(); }
  const CutLog& cut_log() const { return cut_log_; }
  const WireStats& stats() const { return stats_; }
  // Payload bytes both ways (what crossed the cut).
  int64_t BytesSent() const { return stats_.payload_bytes + stats_.returned_payload_bytes; }
  void set_step_observer(StepObserver observer) { observer_ = std::move(observer); }

 private:
  RemoteSession(CloudConnection& connection, wire::OpenRequest request)
      : connection_(connection), request_(request) {}
  // The chunks `rows` goes in, within the tail's HELLO limits; the last holds at least `drafts` + 1 rows.
  Result<std::vector<HiddenRows>> Chunks(const HiddenRows& rows, int drafts) const;
  // Sends one chunk: a VERIFY when it carries `draft`, else an ACTIVATIONS.
  Result<Sent> Send(const HiddenRows& rows, std::span<const int> draft, size_t step);
  // Its reply, read; `resend` (the step's ACTIVATIONS) goes again while none comes.
  Status Await(const Sent& sent, const ReadReply& read, const wire::Message* resend = nullptr);

  CloudConnection& connection_;
  wire::OpenRequest request_;
  uint64_t next_sequence_ = 0;
  wire::Message last_sent_;  // the last ACTIVATIONS or VERIFY, for a resend
  CutLog cut_log_;
  WireStats stats_;
  StepObserver observer_;
};

}  // namespace tandem::edge_agent
