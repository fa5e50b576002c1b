// Admission: --max-concurrent slots, --max-queue waiting, a bounded wait, and the drain; every refusal a
// 503 with its OpenAI code, and the queue-depth gauge back at 0 after each wait.
#include "tandem/edge_agent/admission.hpp"

#include <gtest/gtest.h>
#include <prometheus/registry.h>

#include <future>
#include <thread>

namespace tandem::edge_agent {
namespace {

using std::chrono::milliseconds;

class AdmissionTest : public ::testing::Test {
 private:
  prometheus::Registry registry_;  // before the gauge registered in it

 protected:
  prometheus::Gauge& queue_depth_ = prometheus::BuildGauge().Name("queue_depth").Register(registry_).Add({});
};

// A ticket, or null (and a failure) when refused.
std::shared_ptr<Admission::Ticket> Admitted(Admission& admission) {
  auto admitted = admission.Admit();
  EXPECT_TRUE(admitted.ok()) << admitted.error().message;
  return admitted.ok() ? *admitted : nullptr;
}

void ExpectRefused(const ApiResult<std::shared_ptr<Admission::Ticket>>& admitted, const std::string& code) {
  ASSERT_FALSE(admitted.ok()) << "admitted; expected " << code;
  EXPECT_EQ(admitted.error().status, 503);
  EXPECT_EQ(admitted.error().type, "server_error");
  EXPECT_EQ(admitted.error().code, code);
  EXPECT_TRUE(admitted.error().param.empty());
}

TEST_F(AdmissionTest, BeyondTheSlotsAndTheQueueARequestIsRefusedAtOnce) {
  Admission admission({.max_concurrent = 1, .max_queue = 0, .slot_wait = milliseconds(0)}, queue_depth_);
  auto first = Admitted(admission);
  const auto refused = admission.Admit();
  ExpectRefused(refused, "queue_full");
  EXPECT_EQ(refused.error().message, "all generation slots and the queue are full");
  first.reset();  // the first request ends: its slot is free again
  EXPECT_NE(Admitted(admission), nullptr);
}

TEST_F(AdmissionTest, AQueuedRequestGivesUpAfterTheSlotWait) {
  Admission admission({.max_concurrent = 1, .max_queue = 1, .slot_wait = milliseconds(0)}, queue_depth_);
  const auto first = Admitted(admission);
  const auto timed_out = admission.Admit();
  ExpectRefused(timed_out, "queue_timeout");
  EXPECT_EQ(timed_out.error().message, "no generation slot became free within 0 ms");
  EXPECT_EQ(queue_depth_.Value(), 0);
  // The refused request left the queue: the next one queues (and times out) rather than finding it full.
  ExpectRefused(admission.Admit(), "queue_timeout");
}

TEST_F(AdmissionTest, AQueuedRequestGetsTheSlotWhenItIsReleased) {
  Admission admission({.max_concurrent = 1, .max_queue = 1, .slot_wait = milliseconds(60000)}, queue_depth_);
  auto first = Admitted(admission);
  auto queued = std::async(std::launch::async, [&] { return admission.Admit().ok(); });
  while (queue_depth_.Value() < 1) std::this_thread::yield();
  ExpectRefused(admission.Admit(), "queue_full");  // one generating, one waiting
  first.reset();
  EXPECT_TRUE(queued.get());
  EXPECT_EQ(queue_depth_.Value(), 0);
}

TEST_F(AdmissionTest, DrainingRefusesNewRequestsAndKeepsTheAdmittedOnes) {
  Admission admission({.max_concurrent = 2, .max_queue = 0, .slot_wait = milliseconds(0)}, queue_depth_);
  const auto admitted = Admitted(admission);
  EXPECT_FALSE(admission.draining());
  admission.BeginDrain();
  EXPECT_TRUE(admission.draining());
  const auto refused = admission.Admit();
  ExpectRefused(refused, "shutting_down");
  EXPECT_EQ(refused.error().message, "the edge is shutting down");
  EXPECT_NE(admitted, nullptr);
}

}  // namespace
}  // namespace tandem::edge_agent
