// The one place the edge service opens RemoteTail sessions and reads their statistics.
#include <map>
#include <string>

#include "tandem/edge_agent/cloud_pool.hpp"
#include "tandem/edge_agent/request_tails.hpp"
#include "tandem/edge_agent/tail_set.hpp"

namespace tandem::edge_agent {
namespace {

void AddWire(WireStats& total, const WireStats& tail) {
  total.raw_bytes += tail.raw_bytes;
  total.payload_bytes += tail.payload_bytes;
  total.wire_bytes_sent += tail.wire_bytes_sent;
  total.wire_bytes_received += tail.wire_bytes_received;
  total.resends += tail.resends;
}

class CloudRequestTails final : public RequestTails {
 public:
  CloudRequestTails(TailSet& tails, std::shared_ptr<const Transformer> model, std::chrono::milliseconds wait)
      : tails_(tails), model_(std::move(model)), wait_(wait) {}

  Status Reserve(const scheduler::Candidate& choice) override {
    TailLink* tail = tails_.Get(choice.endpoint);
    std::unique_ptr<CloudLease> lease = tail != nullptr ? Lease(*tail) : nullptr;
    if (lease) {
      leases_[choice.endpoint] = std::move(lease);
      return Status::Ok();
    }
    const std::string reason = tail != nullptr ? tail->pool.last_error() : "too many tails";
    return Unavailable("the cloud tail is not reachable: " +
                       (reason.empty() ? std::string("no handshake with it yet") : reason));
  }

  Result<std::unique_ptr<TailRunner>> Open(const scheduler::Candidate& choice, const SamplingParams& sampling,
                                           int positions) override {
    TailLink* link = tails_.Get(choice.endpoint);
    if (link == nullptr) return Unavailable("too many tails to add " + choice.endpoint);
    // The planner only picks a tail whose breaker is open when no other is left (see PlanningEstimate);
    // a half-open breaker's one trial is this request.
    (void)link->breaker.Allow();
    std::unique_ptr<CloudLease>& lease = leases_[choice.endpoint];
    if (!lease) lease = Lease(*link);
    if (!lease) return Unavailable("no connection to the cloud tail at " + choice.endpoint);
    // A wait for this tail ends as soon as its link is given up, not at --timeout-ms.
    lease->connection().set_liveness([link] { return link->link.Estimate().up; });
    const auto record_step = [link](int64_t bytes, double round_trip_ms, double compute_ms) {
      link->link.RecordTransfer(bytes, round_trip_ms, compute_ms);
    };
    // Private output (an end block): the tail's rows come back to the last blocks, the head and the sampler
    // here.
    return OpenRemoteSplit(lease->connection(),
                           {.cut = choice.cut,
                            .codec = choice.codec,
                            .sampling = sampling,
                            .max_positions = static_cast<uint32_t>(positions),
                            .end_block = choice.end},
                           model_, record_step);
  }

  void Retire(TailRunner& tail) override {
    if (const WireStats* stats = tail.wire_stats()) AddWire(wire_, *stats);
  }
  const WireStats& wire() const override { return wire_; }

  void MarkBroken() override {
    for (auto& [endpoint, lease] : leases_) {
      if (lease) lease->MarkBroken();
    }
  }

 private:
  // A connection to `tail` for this request: waits for a free one while the tail has any; nullptr when
  // none is up.
  std::unique_ptr<CloudLease> Lease(TailLink& tail) const {
    const bool any = tail.pool.connected() > 0;
    auto connection = tail.pool.Acquire(any ? wait_ : std::chrono::milliseconds(0));
    return connection ? std::make_unique<CloudLease>(tail.pool, std::move(connection)) : nullptr;
  }

  TailSet& tails_;
  const std::shared_ptr<const Transformer> model_;
  const std::chrono::milliseconds wait_;
  std::map<std::string, std::unique_ptr<CloudLease>> leases_;
  WireStats wire_;
};

}  // namespace

std::unique_ptr<RequestTails> LeaseCloudTails(TailSet& tails, std::shared_ptr<const Transformer> model,
                                              std::chrono::milliseconds wait) {
  return std::make_unique<CloudRequestTails>(tails, std::move(model), wait);
}

}  // namespace tandem::edge_agent
