// The edge's side of the split: RemoteTail, the TailRunner that sends one session's boundary rows to a
// cloud tail and gets its tokens back, and OpenRemoteSplit, which opens the tail side of a split on a
// connection, a RemoteTail or, for private output, a RemoteMiddle followed by the last blocks here.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "tandem/edge_agent/cloud_connection.hpp"
#include "tandem/edge_agent/cut_log.hpp"
#include "tandem/edge_agent/remote_middle.hpp"
#include "tandem/edge_agent/remote_session.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem {
class Transformer;
}

namespace tandem::edge_agent {

// One session on a cloud tail running blocks [cut, L), the head and sampling (TOKEN replies). Not
// thread-safe; one per session.
class RemoteTail final : public TailRunner {
 public:
  // Sends OPEN without waiting (see RemoteSession::Open). A request with end_block (private output) is
  // refused: that session is a RemoteMiddle's.
  static Result<std::unique_ptr<RemoteTail>> Open(CloudConnection& connection, wire::OpenRequest request);

  // Sends the rows (in chunks when the tail's HELLO limits require) and returns the last row's token.
  Result<int> Forward(const HiddenRows& rows) override;
  // The same with drafts: the last chunk goes as a VERIFY, answered by a VERDICT.
  Result<VerifyOutcome> Verify(const HiddenRows& rows, std::span<const int> draft) override;
  // A replay: sends every step's chunks, then collects the replies (one round trip for all of them).
  Result<std::vector<VerifyOutcome>> ForwardAll(std::span<const TailStep> steps) override;
  int64_t BytesSent() const override { return session_->BytesSent(); }
  const WireStats* wire_stats() const override { return &session_->stats(); }

  uint64_t session_id() const { return session_->request().session; }
  const CutLog& cut_log() const { return session_->cut_log(); }
  const WireStats& stats() const { return session_->stats(); }
  void set_step_observer(StepObserver observer) { session_->set_step_observer(std::move(observer)); }

 private:
  explicit RemoteTail(std::unique_ptr<RemoteSession> session) : session_(std::move(session)) {}
  // Reads a TOKEN or VERDICT into outcomes[sent.step] (a step's last chunk's answer is the step's).
  RemoteSession::ReadReply OutcomeReader(std::span<VerifyOutcome> outcomes);

  std::unique_ptr<RemoteSession> session_;
};

// The tail side of a split through a cloud tail: a RemoteTail, or for private output (request.end_block
// > 0) a UShapedTail of a RemoteMiddle and a LocalTail running blocks [end_block, L), the head and the
// sampler here (with the request's max_positions and sampling). `observer` sees the remote steps.
Result<std::unique_ptr<TailRunner>> OpenRemoteSplit(CloudConnection& connection, wire::OpenRequest request,
                                                    std::shared_ptr<const Transformer> model,
                                                    StepObserver observer = {});

}  // namespace tandem::edge_agent
