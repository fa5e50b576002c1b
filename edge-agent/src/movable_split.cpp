#include "tandem/edge_agent/movable_split.hpp"

#include "tandem/engine/transformer.hpp"

namespace tandem::edge_agent {
namespace {

bool Lossless(const scheduler::Candidate& choice) {
  return choice.local() || choice.codec.lossless();
}

}  // namespace

MovableSplit::MovableSplit(std::shared_ptr<const Transformer> model, int capacity, TailOpener open_tail,
                           TailRetired retired)
    : model_(std::move(model)),
      capacity_(capacity),
      open_tail_(std::move(open_tail)),
      retired_(std::move(retired)) {}

MovableSplit::~MovableSplit() {
  if (tail_ && retired_) retired_(*tail_);
}

int MovableSplit::positions() const {
  int total = 0;
  for (const LoggedStep& step : steps_) {
    total += static_cast<int>(step.tokens.size() - step.draft.size()) + step.outcome.kept;
  }
  return total;
}

Status MovableSplit::Start(const scheduler::Candidate& choice) {
  if (tail_) return Internal("the split has already started");
  return MoveTo(choice);
}

Result<VerifyOutcome> MovableSplit::Step(std::span<const int> tokens, std::span<const int> draft) {
  if (!tail_) return Internal("the split has not started");
  LoggedStep step{.tokens = {tokens.begin(), tokens.end()}, .draft = {draft.begin(), draft.end()}};
  step.tokens.insert(step.tokens.end(), draft.begin(), draft.end());
  TANDEM_ASSIGN_OR_RETURN(step.outcome, StepThrough(*edge_, *tail_, step.tokens, draft));
  steps_.push_back(std::move(step));
  return steps_.back().outcome;
}

Status MovableSplit::MoveTo(const scheduler::Candidate& choice) {
  const int cut = choice.local() ? model_->n_layers() : choice.cut;
  auto edge = std::make_unique<EdgeRunner>(model_, cut, capacity_);
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<TailRunner> tail, open_tail_(choice));
  // The edge part runs step by step (its sums must follow the original chunking); the tail gets all the
  // boundary rows at once, which a remote tail pipelines.
  std::vector<TailStep> rows;
  rows.reserve(steps_.size());
  for (const LoggedStep& step : steps_) {
    TANDEM_ASSIGN_OR_RETURN(HiddenRows step_rows, edge->Forward(step.tokens));
    edge->DropPositions(static_cast<int>(step.draft.size()) - step.outcome.kept);
    rows.push_back({.rows = std::move(step_rows), .draft = step.draft, .kept = step.outcome.kept});
  }
  if (!rows.empty()) {
    TANDEM_ASSIGN_OR_RETURN(const std::vector<VerifyOutcome> replayed, tail->ForwardAll(rows));
    // Through lossless codecs a replay must reproduce every step; with a lossy one on either side the
    // rebuilt state may differ slightly, and the tokens already produced stand (a verify step that keeps
    // other drafts, though, leaves the positions out of step: that is an error whatever the codec).
    size_t at = 0;
    while (at < replayed.size() && replayed[at] == steps_[at].outcome) ++at;
    const bool positions_differ = at < replayed.size() && replayed[at].kept != steps_[at].outcome.kept;
    if (at < replayed.size() && (positions_differ || (Lossless(choice) && (!tail_ || Lossless(choice_))))) {
      return Internal("moving the split to " + choice.Describe() + ": the replay diverged at step " +
                      std::to_string(at) + " (a lossy codec or different arithmetic on the new side)");
    }
  }
  if (tail_ && retired_) retired_(*tail_);
  if (tail_) ++moves_;
  edge_ = std::move(edge);
  tail_ = std::move(tail);
  choice_ = choice;
  return Status::Ok();
}

}  // namespace tandem::edge_agent
