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
  for (const auto& step : steps_) total += static_cast<int>(step.size());
  return total;
}

Status MovableSplit::Start(const scheduler::Candidate& choice) {
  if (tail_) return Internal("the split has already started");
  return MoveTo(choice);
}

Result<int> MovableSplit::Step(std::span<const int> tokens) {
  if (!tail_) return Internal("the split has not started");
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows rows, edge_->Forward(tokens));
  TANDEM_ASSIGN_OR_RETURN(const int token, tail_->Forward(rows));
  steps_.emplace_back(tokens.begin(), tokens.end());
  outputs_.push_back(token);
  return token;
}

Status MovableSplit::MoveTo(const scheduler::Candidate& choice) {
  const int cut = choice.local() ? model_->n_layers() : choice.cut;
  auto edge = std::make_unique<EdgeRunner>(model_, cut, capacity_);
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<TailRunner> tail, open_tail_(choice));
  // The edge part runs step by step (its sums must follow the original chunking); the tail gets all the
  // boundary rows at once, which a remote tail pipelines.
  std::vector<TailStep> rows;
  rows.reserve(steps_.size());
  for (const auto& step : steps_) {
    TANDEM_ASSIGN_OR_RETURN(HiddenRows step_rows, edge->Forward(step));
    rows.push_back({.rows = std::move(step_rows)});
  }
  if (!rows.empty()) {
    TANDEM_ASSIGN_OR_RETURN(const std::vector<VerifyOutcome> outcomes, tail->ForwardAll(rows));
    std::vector<int> replayed;
    for (const VerifyOutcome& outcome : outcomes) replayed.push_back(outcome.tokens.back());
    // Through lossless codecs a replay must reproduce every token; with a lossy one on either side the
    // rebuilt state may differ slightly, and the tokens already produced stand.
    if (replayed != outputs_ && Lossless(choice) && (!tail_ || Lossless(choice_))) {
      size_t at = 0;
      while (at < replayed.size() && at < outputs_.size() && replayed[at] == outputs_[at]) ++at;
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
