// The compute side of the tail, without sockets: builds a session's runner (its KV cache allocated and
// zeroed) from its OPEN, decodes a step's rows, brings the runner to the step's position, runs the step
// (decode steps of many sessions through the weights together; a VERIFY alone) and turns the outcome into
// the TOKEN, ROWS, VERDICT or ERROR that goes back.
//
// Threads: called from the workers (with --workers 0, from the I/O thread); a session's jobs always on the
// same thread, one at a time. Exceptions from LibTorch become ERROR replies (kInternal), never escape.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "tail_metrics.hpp"
#include "tandem/cloud_tail/step_batcher.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem {
class Transformer;
}

namespace tandem::cloud_tail {

class StepExecutor {
 public:
  StepExecutor(std::shared_ptr<const Transformer> model, TailMetrics& metrics)
      : model_(std::move(model)), metrics_(metrics) {}

  // A session's OPEN: builds its tail (or middle) as admitted by the session table. OPEN has no reply:
  // returns the ERROR to send only when the runner cannot be built; the session's later steps then get
  // "no open session", as they would had the OPEN been refused.
  std::optional<wire::Message> Open(Session& session);
  // The answers to steps taken together (none an OPEN), in order: one decode batch through the weights,
  // or a lone step as it would run unbatched.
  std::vector<wire::Message> Run(std::vector<Job>& jobs);
  // Step compute since the last call, all threads together (the utilization a planner sees).
  int64_t TakeBusyMicroseconds() { return busy_us_.exchange(0); }

 private:
  using TimePoint = std::chrono::steady_clock::time_point;

  // What a step's payload carries: its rows and, for a VERIFY, the drafted tokens of its last rows.
  struct StepInput {
    HiddenRows rows;
    std::vector<int> draft;
  };

  wire::Message RunOne(const Job& job);
  std::vector<wire::Message> RunBatch(std::vector<Job>& jobs);
  wire::Message RunMiddle(const Job& job, const HiddenRows& rows, TimePoint start);
  wire::Message RunVerify(const Job& job, const StepInput& input, TimePoint start);
  // A step's input from its payload (the I/O thread checked the header against the session); an error when
  // the payload does not decode, or the session has no runner.
  Result<StepInput> DecodeStep(const Job& job);
  // Brings the session's runner to the step's position, or returns the ERROR that answers the step.
  static std::optional<wire::Message> Reconcile(const Job& job);
  // Accounts a pass of `steps` steps begun at `start`; returns its seconds.
  double FinishPass(TimePoint start, size_t steps);
  // The TOKEN of a computed step, or its ERROR.
  wire::Message Answer(const Job& job, const Result<int>& token, double seconds);

  std::shared_ptr<const Transformer> model_;
  TailMetrics& metrics_;
  std::atomic<int64_t> busy_us_{0};
};

}  // namespace tandem::cloud_tail
