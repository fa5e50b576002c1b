#include "tandem/edge_agent/fixed_split.hpp"

#include <algorithm>

#include "tandem/edge_agent/tail_set.hpp"

namespace tandem::edge_agent {
namespace {

scheduler::Candidate OnTail(scheduler::Candidate split, std::span<const FixedSplitTail> tails, size_t index) {
  split.tail = static_cast<int>(index);
  split.endpoint = tails[index].endpoint;
  return split;
}

}  // namespace

bool ServesFixedSplit(const wire::Hello& hello, const scheduler::Candidate& split) {
  const std::vector<ActivationCodec>& codecs = hello.codecs;
  if (std::find(codecs.begin(), codecs.end(), split.codec) == codecs.end()) return false;
  if (hello.HoldsEveryBlock()) return true;
  const int last_needed = split.private_output() ? split.end : static_cast<int>(hello.n_layers);
  return static_cast<int>(hello.held_first) <= split.cut && static_cast<int>(hello.held_last) >= last_needed;
}

std::vector<FixedSplitTail> FixedSplitTails(const TailSet& tails, const scheduler::Candidate& split) {
  const bool honour_breakers = tails.BreakersLeaveATail();
  std::vector<FixedSplitTail> seen;
  for (const auto& [endpoint, link] : tails.All()) {
    const std::optional<TailSnapshot> reported = link->monitor.tail();
    seen.push_back({.endpoint = endpoint,
                    .usable = link->pool.connected() > 0 && link->PlanningEstimate(honour_breakers).up &&
                              (!reported || ServesFixedSplit(reported->hello, split))});
  }
  return seen;
}

scheduler::Candidate StartFixedSplit(const scheduler::Candidate& split, std::span<const FixedSplitTail> tails) {
  for (size_t i = 0; i < tails.size(); ++i) {
    if (tails[i].usable) return OnTail(split, tails, i);
  }
  return split;
}

Result<scheduler::Candidate> MoveFixedSplit(const scheduler::Candidate& failed,
                                            std::span<const FixedSplitTail> tails) {
  const auto own = std::find_if(tails.begin(), tails.end(),
                                [&](const FixedSplitTail& tail) { return tail.endpoint == failed.endpoint; });
  // After its own tail; from the first when its own is not listed.
  const size_t after = own == tails.end() ? tails.size() - 1 : static_cast<size_t>(own - tails.begin());
  for (size_t step = 1; step <= tails.size(); ++step) {
    const size_t index = (after + step) % tails.size();
    if (tails[index].usable && tails[index].endpoint != failed.endpoint) return OnTail(failed, tails, index);
  }
  return Unavailable("the tail of the fixed split " + failed.Describe() +
                     " failed, and no other tail can take over (every other one is down, unreachable, failing "
                     "or without the split's blocks)");
}

}  // namespace tandem::edge_agent
