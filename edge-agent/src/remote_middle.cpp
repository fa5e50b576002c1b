#include "tandem/edge_agent/remote_middle.hpp"

namespace tandem::edge_agent {

Result<std::unique_ptr<RemoteMiddle>> RemoteMiddle::Open(CloudConnection& connection,
                                                         wire::OpenRequest request) {
  if (!request.private_output()) {
    return InvalidArgument("a session without end_block returns tokens, not rows: open it as a RemoteTail");
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RemoteSession> session, RemoteSession::Open(connection, request));
  return std::unique_ptr<RemoteMiddle>(new RemoteMiddle(std::move(session)));
}

RemoteSession::ReadReply RemoteMiddle::RowsReader(std::span<HiddenRows> steps) const {
  return [this, steps](const wire::Message& reply,
                       const RemoteSession::Sent& sent) -> Result<RemoteSession::ReplyFacts> {
    TANDEM_ASSIGN_OR_RETURN(const wire::RowsReply rows, wire::ParseRows(reply));
    const auto dim = static_cast<uint32_t>(session_->tail().dim);
    if (rows.position != sent.position || rows.rows != static_cast<uint32_t>(sent.rows) || rows.cols != dim ||
        rows.codec.precision != session_->request().codec.precision) {
      return InvalidArgument("the cloud tail's ROWS for sequence " + std::to_string(sent.sequence) +
                             " do not match its ACTIVATIONS (position, shape or codec)");
    }
    const int64_t count = int64_t{rows.rows} * rows.cols;
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> values,
                            DecodeActivations(rows.payload, rows.rows, rows.cols, rows.codec, count));
    // A step's chunks come back in order: its rows are theirs, joined.
    HiddenRows& step = steps[sent.step];
    step.cols = rows.cols;
    step.rows += rows.rows;
    if (step.values.empty()) {
      step.values = std::move(values);
    } else {
      step.values.insert(step.values.end(), values.begin(), values.end());
    }
    return RemoteSession::ReplyFacts{.compute_us = rows.compute_us,
                                     .returned_payload_bytes = static_cast<int64_t>(rows.payload.size())};
  };
}

Result<HiddenRows> RemoteMiddle::ForwardRows(const HiddenRows& rows) {
  HiddenRows out;
  TANDEM_RETURN_IF_ERROR(session_->Step(rows, {}, RowsReader(std::span(&out, 1))));
  return out;
}

Result<std::vector<HiddenRows>> RemoteMiddle::ForwardAllRows(std::span<const TailStep> steps) {
  std::vector<HiddenRows> out(steps.size());
  TANDEM_RETURN_IF_ERROR(session_->Replay(steps, RowsReader(out)));
  return out;
}

Status RemoteMiddle::DropPositions(int count) {
  // The tail learns it from the next step's position.
  session_->DropPositions(count);
  return Status::Ok();
}

}  // namespace tandem::edge_agent
