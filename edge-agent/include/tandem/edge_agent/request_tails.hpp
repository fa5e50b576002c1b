// The tails one request uses: a session on a cloud tail for each remote choice its split takes, on a
// connection leased for the rest of the request (one per tail, returned to its pool when the request
// ends, or dropped when marked broken). The seam between a generation and the network: the service gets
// a TailProvider, the real one leases from the TailSet's pools, tests give sessions in this process.
//
// One per request, used from the request's thread only. Every session it opened must be gone before it is.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "tandem/base/status.hpp"
#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/scheduler/planner.hpp"

namespace tandem {
class Transformer;
}

namespace tandem::edge_agent {

class TailSet;

class RequestTails {
 public:
  virtual ~RequestTails() = default;
  // Takes a connection to `choice`'s tail ahead of the first step, so that a tail that cannot be reached
  // is still an HTTP status, not a broken stream. Unavailable, saying why, when none is up.
  virtual Status Reserve(const scheduler::Candidate& choice) = 0;
  // A session for the remote side of `choice` (never all-local): blocks [cut, L) and sampling, or with
  // private output [cut, end) there and the rest here.
  virtual Result<std::unique_ptr<TailRunner>> Open(const scheduler::Candidate& choice,
                                                   const SamplingParams& sampling, int positions) = 0;
  // A session the split dropped (moved away, or at the end): its wire figures count.
  virtual void Retire(TailRunner& tail) = 0;
  // The wire figures of every session retired so far.
  virtual const WireStats& wire() const = 0;
  // The request ended in a way that may have left replies in flight: its connections are not reused.
  virtual void MarkBroken() = 0;
};

using TailProvider = std::function<std::unique_ptr<RequestTails>()>;

// Sessions on connections leased from `tails`' pools, waiting up to `wait` for a free one while the tail
// has any. `model` runs the edge's last blocks and head of a private-output choice.
std::unique_ptr<RequestTails> LeaseCloudTails(TailSet& tails, std::shared_ptr<const Transformer> model,
                                              std::chrono::milliseconds wait);

}  // namespace tandem::edge_agent
