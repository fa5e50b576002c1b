// Private output's remote half: RemoteMiddle, the MiddleRunner that sends one session's boundary rows to a
// cloud tail running blocks [cut, end_block) and gets their rows back (ROWS replies), so that no token
// or logit comes from the tail.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "tandem/edge_agent/cloud_connection.hpp"
#include "tandem/edge_agent/remote_session.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem::edge_agent {

// Not thread-safe; one per session.
class RemoteMiddle final : public MiddleRunner {
 public:
  // Sends OPEN without waiting (see RemoteSession::Open). The request must have end_block.
  static Result<std::unique_ptr<RemoteMiddle>> Open(CloudConnection& connection, wire::OpenRequest request);

  // Sends the rows (in chunks when the tail's HELLO limits require) and returns every row after block
  // end_block - 1.
  Result<HiddenRows> ForwardRows(const HiddenRows& rows) override;
  // A replay: every step's chunks sent, then every reply collected; the rows of each step.
  Result<std::vector<HiddenRows>> ForwardAllRows(std::span<const TailStep> steps) override;
  Status DropPositions(int count) override;
  int64_t BytesSent() const override { return session_->BytesSent(); }
  const WireStats* wire_stats() const override { return &session_->stats(); }

  const RemoteSession& session() const { return *session_; }
  void set_step_observer(StepObserver observer) { session_->set_step_observer(std::move(observer)); }

 private:
  explicit RemoteMiddle(std::unique_ptr<RemoteSession> session) : session_(std::move(session)) {}
  // Checks a ROWS against its ACTIVATIONS and appends its rows to steps[sent.step].
  RemoteSession::ReadReply RowsReader(std::span<HiddenRows> steps) const;

  std::unique_ptr<RemoteSession> session_;
};

}  // namespace tandem::edge_agent
