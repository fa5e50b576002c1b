// Where a fixed split runs. A fixed split (--split K, or a request's "tandem": {"split": K}) pins the cut,
// the end block and the codec, not the tail: it starts on the first usable tail in the order the tails
// came (--cloud's), and when its tail fails, the FailoverPolicy moves it to the next usable one at the same
// cut (replaying its steps there), as it moves an auto split to the planner's alternative. It never goes
// anywhere else: no other cut, never all-local, no re-planning.
//
// The choices are plain functions of the tails' state, read once from a TailSet, so they are tested
// without tails.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/scheduler/planner.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem::edge_agent {

class TailSet;

// A tail as a fixed split sees it.
struct FixedSplitTail {
  std::string endpoint;
  // Connected, its link up, its breaker letting work through (ignored when every breaker is open, as the
  // planner does: see TailSet::BreakersLeaveATail), and holding the split's blocks and codec as far as its
  // HELLO tells.
  bool usable = false;
};

// Whether the tail that said `hello` holds the blocks `split` sends it and speaks its codec.
bool ServesFixedSplit(const wire::Hello& hello, const scheduler::Candidate& split);

// The tails of `tails` in the order they came, each usable for `split` or not, as they are now.
std::vector<FixedSplitTail> FixedSplitTails(const TailSet& tails, const scheduler::Candidate& split);

// `split` on the first usable tail; `split` as given when none is (reserving its tail then says why not).
scheduler::Candidate StartFixedSplit(const scheduler::Candidate& split, std::span<const FixedSplitTail> tails);

// `failed`'s cut, end block and codec on the next usable tail after its own (in order, wrapping around);
// Unavailable when no other tail is usable.
Result<scheduler::Candidate> MoveFixedSplit(const scheduler::Candidate& failed,
                                            std::span<const FixedSplitTail> tails);

}  // namespace tandem::edge_agent
