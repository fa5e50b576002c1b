// Who may generate: at most --max-concurrent requests at once, --max-queue more waiting for a slot (first
// come, first served, each for at most the slot wait), none once draining. A request beyond that gets a
// 503 at once, so a client backs off instead of piling up; every refusal is an OpenAI error with its code
// (shutting_down, queue_full, queue_timeout). Thread-safe: every handler thread admits through it.
#pragma once

#include <prometheus/gauge.h>

#include <atomic>
#include <chrono>
#include <memory>

#include "tandem/base/fair_semaphore.hpp"
#include "tandem/edge_agent/api_error.hpp"

namespace tandem::edge_agent {

struct AdmissionLimits {
  int max_concurrent = 2;
  int max_queue = 8;
  std::chrono::milliseconds slot_wait{10000};  // the longest wait for a slot (the cloud timeout)
};

class Admission {
 public:
  // An admitted request: counted until the ticket is gone, holding one generation slot. Shared by the
  // handler and its stream producer; the last owner releases it.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;

   private:
    friend class Admission;
    explicit Ticket(Admission& admission);
    Admission& admission_;
    bool counted_within_limit_;
    bool holds_slot_ = false;
  };

  // `queue_depth` counts the requests waiting for a slot.
  Admission(AdmissionLimits limits, prometheus::Gauge& queue_depth);

  // Counts the request and waits for its slot. Errors (503): shutting_down, queue_full (slots and queue
  // taken), queue_timeout (no slot within the wait).
  ApiResult<std::shared_ptr<Ticket>> Admit();
  // From now on every Admit is refused; tickets already out stay valid.
  void BeginDrain() { draining_ = true; }
  bool draining() const { return draining_.load(); }

 private:
  const AdmissionLimits limits_;
  prometheus::Gauge& queue_depth_;
  std::atomic<int> admitted_{0};  // in flight: waiting or generating
  std::atomic<bool> draining_{false};
  FairSemaphore slots_;
};

}  // namespace tandem::edge_agent
