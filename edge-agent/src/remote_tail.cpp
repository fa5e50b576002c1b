#include "tandem/edge_agent/remote_tail.hpp"

#include "tandem/engine/transformer.hpp"

namespace tandem::edge_agent {

Result<std::unique_ptr<RemoteTail>> RemoteTail::Open(CloudConnection& connection, wire::OpenRequest request) {
  if (request.private_output()) {
    return InvalidArgument("a session with end_block returns rows, not tokens: open it as a RemoteMiddle");
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RemoteSession> session, RemoteSession::Open(connection, request));
  return std::unique_ptr<RemoteTail>(new RemoteTail(std::move(session)));
}

RemoteSession::ReadReply RemoteTail::TokenReader(std::span<int> tokens) {
  return [this, tokens](const wire::Message& reply,
                        const RemoteSession::Sent& sent) -> Result<RemoteSession::ReplyFacts> {
    TANDEM_ASSIGN_OR_RETURN(last_reply_, wire::ParseToken(reply));
    if (last_reply_.token < 0 || last_reply_.token >= static_cast<int>(session_->tail().vocab_size)) {
      return InvalidArgument("the cloud tail returned token " + std::to_string(last_reply_.token) +
                             ", outside the vocabulary");
    }
    tokens[sent.step] = last_reply_.token;
    return RemoteSession::ReplyFacts{.compute_us = last_reply_.compute_us};
  };
}

Result<int> RemoteTail::Forward(const HiddenRows& rows) {
  int token = -1;
  TANDEM_RETURN_IF_ERROR(session_->Step(rows, TokenReader(std::span(&token, 1))));
  return token;
}

Result<std::vector<VerifyOutcome>> RemoteTail::ForwardAll(std::span<const TailStep> steps) {
  std::vector<HiddenRows> rows;
  for (const TailStep& step : steps) {
    if (!step.draft.empty()) return InvalidArgument("TODO: verify steps over the wire");
    rows.push_back(step.rows);
  }
  std::vector<int> tokens(steps.size(), -1);
  TANDEM_RETURN_IF_ERROR(session_->Replay(rows, TokenReader(tokens)));
  std::vector<VerifyOutcome> outcomes;
  for (const int token : tokens) outcomes.push_back({.kept = 0, .tokens = {token}});
  return outcomes;
}

Result<std::unique_ptr<TailRunner>> OpenRemoteSplit(CloudConnection& connection, wire::OpenRequest request,
                                                    std::shared_ptr<const Transformer> model,
                                                    StepObserver observer) {
  if (!request.private_output()) {
    TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RemoteTail> tail, RemoteTail::Open(connection, request));
    tail->set_step_observer(std::move(observer));
    return std::unique_ptr<TailRunner>(std::move(tail));
  }
  const int end_block = request.end_block;
  const auto capacity = static_cast<int>(request.max_positions);
  const SamplingParams sampling = request.sampling;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<RemoteMiddle> middle, RemoteMiddle::Open(connection, request));
  middle->set_step_observer(std::move(observer));
  // The tail's rows come back to the last blocks, the head and the sampler here.
  return std::unique_ptr<TailRunner>(std::make_unique<UShapedTail>(
      std::move(middle), std::make_unique<LocalTail>(std::move(model), end_block, capacity, sampling)));
}

}  // namespace tandem::edge_agent
