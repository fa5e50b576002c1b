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
  wanted_ = std::min(Limit(), expected());  // counted now: a session may have closed since the last batch
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
  return !alone_ && batch_.size() < wanted_ && now < deadline_;
}

std::vector<Job> StepBatcher::Finish() {
  if (!alone_) {
    std::vector<std::weak_ptr<Session>> sessions;
    for (const Job& job : batch_) sessions.push_back(job.session);
    recent_.push_back(std::move(sessions));
    if (recent_.size() > kRecentBatches) recent_.pop_front();
  } else if (!batch_.front().opens() && !batch_.front().session->private_output()) {
    if (recent_.empty()) recent_.emplace_back();
    recent_.back().push_back(batch_.front().session);
  }
  std::vector<Job> batch = std::move(batch_);
  batch_.clear();
  return batch;
}

size_t StepBatcher::expected() const {
  std::vector<const Session*> distinct;
  for (const auto& sessions : recent_) {
    for (const std::weak_ptr<Session>& weak : sessions) {
      const std::shared_ptr<Session> session = weak.lock();
      if (session && std::find(distinct.begin(), distinct.end(), session.get()) == distinct.end()) {
        distinct.push_back(session.get());
      }
    }
  }
  return std::max<size_t>(1, distinct.size());
}

}  // namespace tandem::cloud_tail
