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

RemoteSession::ReadReply RemoteTail::OutcomeReader(std::span<VerifyOutcome> outcomes) {
  return [this, outcomes](const wire::Message& reply,
                          const RemoteSession::Sent& sent) -> Result<RemoteSession::ReplyFacts> {
    VerifyOutcome outcome;
    uint32_t compute_us = 0;
    if (reply.header.type == wire::MessageType::kVerdict) {
      TANDEM_ASSIGN_OR_RETURN(wire::VerdictReply verdict, wire::ParseVerdict(reply));
      if (verdict.kept > sent.drafts) {
        return InvalidArgument("the cloud tail kept " + std::to_string(verdict.kept) + " of " +
                               std::to_string(sent.drafts) + " drafts");
      }
      outcome = {.kept = verdict.kept, .tokens = std::move(verdict.tokens)};
      compute_us = verdict.compute_us;
    } else {
      TANDEM_ASSIGN_OR_RETURN(const wire::TokenReply token, wire::ParseToken(reply));
      outcome = {.kept = 0, .tokens = {token.token}};
      compute_us = token.compute_us;
    }
    for (const int token : outcome.tokens) {
      if (token < 0 || token >= static_cast<int>(session_->tail().vocab_size)) {
        return InvalidArgument("the cloud tail returned token " + std::to_string(token) +
                               ", outside the vocabulary");
      }
    }
    outcomes[sent.step] = std::move(outcome);
    return RemoteSession::ReplyFacts{.compute_us = compute_us};
  };
}

Result<int> RemoteTail::Forward(const HiddenRows& rows) {
  TANDEM_ASSIGN_OR_RETURN(const VerifyOutcome outcome, Verify(rows, {}));
  return outcome.tokens.back();
}

Result<VerifyOutcome> RemoteTail::Verify(const HiddenRows& rows, std::span<const int> draft) {
  VerifyOutcome outcome;
  TANDEM_RETURN_IF_ERROR(session_->Step(rows, draft, OutcomeReader(std::span(&outcome, 1))));
  // The tail forgot the drafts it did not keep; the next step starts after the kept ones.
  session_->DropPositions(static_cast<int>(draft.size()) - outcome.kept);
  return outcome;
}

Result<std::vector<VerifyOutcome>> RemoteTail::ForwardAll(std::span<const TailStep> steps) {
  std::vector<VerifyOutcome> outcomes(steps.size());
  TANDEM_RETURN_IF_ERROR(session_->Replay(steps, OutcomeReader(outcomes)));
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
