// FailoverPolicy with a scripted host: which failures move a generation, to which choice, how often it
// tries, the pause before asking a busy tail again, and the error when no tail is left.
#include "tandem/edge_agent/failover_policy.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

namespace tandem::edge_agent {
namespace {

using std::chrono::milliseconds;

scheduler::Candidate Tail(const std::string& endpoint) {
  return {.tail = 0, .endpoint = endpoint, .cut = 2};
}

// Answers Alternative from a script and MoveTo by destination ("local" for all-local), recording calls.
class ScriptedHost final : public FailoverHost {
 public:
  void Penalize(const scheduler::Candidate& failed, const Status& failure) override {
    penalized.push_back(failed.endpoint + ": " + failure.message());
  }
  Result<scheduler::Candidate> Alternative(const scheduler::Candidate&) override {
    if (alternatives.empty()) return Unavailable("no feasible choice");
    Result<scheduler::Candidate> next = alternatives.front();
    alternatives.pop_front();
    return next;
  }
  Status MoveTo(const scheduler::Candidate& failed, const scheduler::Candidate& next,
                const Status&) override {
    const std::string to = next.local() ? "local" : next.endpoint;
    moves.push_back(failed.endpoint + " -> " + to);
    const auto scripted = move_results.find(to);
    return scripted == move_results.end() ? Status::Ok() : scripted->second;
  }
  void Pause(Clock::Duration pause) override { pauses.push_back(pause); }

  std::deque<Result<scheduler::Candidate>> alternatives;
  std::map<std::string, Status> move_results;  // by destination; absent: the move works
  std::vector<std::string> penalized;
  std::vector<std::string> moves;
  std::vector<Clock::Duration> pauses;
};

TEST(FailoverPolicyTest, OnlyTailFailuresOfARemoteSplitAreCovered) {
  const FailoverPolicy policy;
  for (const Status& failure : {Unavailable("gone"), DeadlineExceeded("silent"), ResourceExhausted("busy")}) {
    EXPECT_TRUE(FailoverPolicy::IsTailFailure(failure)) << failure.ToString();
    EXPECT_TRUE(policy.Covers(Tail("a"), failure)) << failure.ToString();
    EXPECT_FALSE(policy.Covers(scheduler::Candidate{}, failure)) << "all-local has no tail to leave";
  }
  for (const Status& failure : {Internal("replay diverged"), InvalidArgument("bad rows"), NotFound("x")}) {
    EXPECT_FALSE(FailoverPolicy::IsTailFailure(failure)) << failure.ToString();
    EXPECT_FALSE(policy.Covers(Tail("a"), failure)) << failure.ToString();
  }
}

TEST(FailoverPolicyTest, AFailedTailIsPenalizedAndTheGenerationMovesToTheNext) {
  ScriptedHost host;
  host.alternatives = {Tail("b")};
  EXPECT_TRUE(FailoverPolicy{}.Recover(Tail("a"), Unavailable("tail a gone"), host).ok());
  EXPECT_EQ(host.penalized, std::vector<std::string>{"a: tail a gone"});
  EXPECT_EQ(host.moves, std::vector<std::string>{"a -> b"});
  EXPECT_TRUE(host.pauses.empty());
}

TEST(FailoverPolicyTest, AMoveThatFailsGoesOnToTheNextChoice) {
  ScriptedHost host;
  host.alternatives = {Tail("b"), scheduler::Candidate{}};
  host.move_results["b"] = DeadlineExceeded("tail b silent during the replay");
  EXPECT_TRUE(FailoverPolicy{}.Recover(Tail("a"), Unavailable("tail a gone"), host).ok());
  EXPECT_EQ(host.penalized,
            (std::vector<std::string>{"a: tail a gone", "b: tail b silent during the replay"}));
  EXPECT_EQ(host.moves, (std::vector<std::string>{"a -> b", "b -> local"}));
}

TEST(FailoverPolicyTest, GivesUpAfterMaxMovesWithTheLastFailure) {
  ScriptedHost host;
  host.alternatives = {Tail("b"), Tail("c"), Tail("d"), Tail("e")};
  for (const char* tail : {"b", "c", "d", "e"})
    host.move_results[tail] = Unavailable(std::string(tail) + " gone");
  const Status status = FailoverPolicy{.max_moves = 3}.Recover(Tail("a"), Unavailable("a gone"), host);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "no tail took the generation after 3 moves: d gone");
  EXPECT_EQ(host.moves, (std::vector<std::string>{"a -> b", "b -> c", "c -> d"}));
  EXPECT_EQ(host.penalized.size(), 3u);
}

TEST(FailoverPolicyTest, WithNoChoiceLeftTheGenerationFailsWithThePlannersError) {
  ScriptedHost host;  // no alternatives: Unavailable("no feasible choice")
  const Status status = FailoverPolicy{}.Recover(Tail("a"), Unavailable("a gone"), host);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_EQ(status.message(), "no feasible choice");
  EXPECT_EQ(host.penalized, std::vector<std::string>{"a: a gone"});
  EXPECT_TRUE(host.moves.empty());
}

TEST(FailoverPolicyTest, ABusyTailWithNoAlternativeIsAskedAgainAfterAJitteredPause) {
  ScriptedHost host;
  host.move_results["a"] = ResourceExhausted("a still busy");
  const FailoverPolicy policy{.max_moves = 3,
                              .busy_retry = {.initial = milliseconds(50), .max = milliseconds(400)}};
  const Status status = policy.Recover(Tail("a"), ResourceExhausted("a busy"), host);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(host.moves, (std::vector<std::string>{"a -> a", "a -> a", "a -> a"}));
  ASSERT_EQ(host.pauses.size(), 3u);
  // Growing, each drawn from [d/2, d] with d = 50, 100, 200 ms.
  for (size_t i = 0; i < host.pauses.size(); ++i) {
    const Clock::Duration full = milliseconds(50 << i);
    EXPECT_GE(host.pauses[i], full / 2) << i;
    EXPECT_LE(host.pauses[i], full) << i;
  }
}

TEST(FailoverPolicyTest, AFailedMoveToLocalOrANonTailErrorEndsTheRecovery) {
  ScriptedHost to_local;
  to_local.alternatives = {scheduler::Candidate{}, Tail("c")};
  to_local.move_results["local"] = Unavailable("cannot build the edge part");
  EXPECT_EQ(FailoverPolicy{}.Recover(Tail("a"), Unavailable("a gone"), to_local).message(),
            "cannot build the edge part");
  EXPECT_EQ(to_local.moves, std::vector<std::string>{"a -> local"});

  ScriptedHost diverged;
  diverged.alternatives = {Tail("b"), Tail("c")};
  diverged.move_results["b"] = Internal("the replay diverged at step 3");
  const Status status = FailoverPolicy{}.Recover(Tail("a"), DeadlineExceeded("a silent"), diverged);
  EXPECT_EQ(status.code(), StatusCode::kInternal);
  EXPECT_EQ(diverged.moves, std::vector<std::string>{"a -> b"});
}

}  // namespace
}  // namespace tandem::edge_agent
