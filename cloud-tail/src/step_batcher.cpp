#include "tandem/cloud_tail/step_batcher.hpp"

#include <algorithm>

namespace tandem::cloud_tail {

bool RunsAlone(const Job& job) {
  return job.opens() || job.message.header.type == wire::MessageType::kVerify ||
         job.message.header.rows > 1 || job.session->private_output();
}

size_t StepBatcher::Limit() const {
  return static_cast<size_t>(std::max(1, policy_.max_batch));
}

void StepBatcher::Begin(std::deque<Job>& queue, Clock::TimePoint now) {
  batch_.clear();
  alone_ = RunsAlone(queue.front());
  deadline_ = now + policy_.max_wait;
  if (alone_) {
    batch_.push_back(std::move(queue.front()));
    queue.pop_front();
    return;
  }
  Collect(queue);
}

void StepBatcher::Collect(std::deque<Job>& queue) {
  if (alone_) return;
  // Sessions whose next step must not be taken: in the batch already, or queued behind one that runs
  // alone, so that a session's steps keep their order.
  std::vector<const Session*> held;
  for (const Job& job : batch_) held.push_back(job.session.get());
  for (auto it = queue.begin(); it != queue.end() && batch_.size() < Limit();) {
    const Session* session = it->session.get();
    const bool free = std::find(held.begin(), held.end(), session) == held.end();
    held.push_back(session);
    if (free && !RunsAlone(*it)) {
      batch_.push_back(std::move(*it));
      it = queue.erase(it);
    } else {
      ++it;
    }
  }
}

bool StepBatcher::ShouldWait(Clock::TimePoint now) const {
  return !alone_ && batch_.size() < std::min(Limit(), expected_) && now < deadline_;
}

std::vector<Job> StepBatcher::Finish() {
  if (!alone_) {
    expected_ = batch_.size();
  } else if (!batch_.front().opens()) {
    ++expected_;
  }
  std::vector<Job> batch = std::move(batch_);
  batch_.clear();
  return batch;
}

}  // namespace tandem::cloud_tail
