#include "tandem/edge_agent/admission.hpp"

#include <string>

namespace tandem::edge_agent {

Admission::Ticket::Ticket(Admission& admission)
    : admission_(admission),
      counted_within_limit_(++admission.admitted_ <=
                            admission.limits_.max_concurrent + admission.limits_.max_queue) {}

Admission::Ticket::~Ticket() {
  if (holds_slot_) admission_.slots_.Release();
  --admission_.admitted_;
}

Admission::Admission(AdmissionLimits limits, prometheus::Gauge& queue_depth)
    : limits_(limits), queue_depth_(queue_depth), slots_(limits.max_concurrent) {}

ApiResult<std::shared_ptr<Admission::Ticket>> Admission::Admit() {
  if (draining()) return ServiceUnavailable("shutting_down", "the edge is shutting down");
  std::shared_ptr<Ticket> ticket(new Ticket(*this));
  if (!ticket->counted_within_limit_) {
    return ServiceUnavailable("queue_full", "all generation slots and the queue are full");
  }
  queue_depth_.Increment();
  ticket->holds_slot_ = slots_.AcquireFor(limits_.slot_wait);
  queue_depth_.Decrement();
  if (!ticket->holds_slot_) {
    return ServiceUnavailable("queue_timeout", "no generation slot became free within " +
                                                   std::to_string(limits_.slot_wait.count()) + " ms");
  }
  return ticket;
}

}  // namespace tandem::edge_agent
