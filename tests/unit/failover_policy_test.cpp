// FailoverPolicy with a scripted host: which failures move a generation, to which choice, how often it
// tries, the pause before asking a busy tail again, and the error when no tail is left. Then where a fixed
// split starts and moves (fixed_split.hpp), alone and as the policy's alternatives.
#include "tandem/edge_agent/failover_policy.hpp"

#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "tandem/edge_agent/fixed_split.hpp"

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

// --split 2 at int8, with private output to block 4, as the config resolves it: on the first --cloud tail.
scheduler::Candidate FixedSplit() {
  return {.tail = 0, .endpoint = "a", .cut = 2, .end = 4, .codec = {.precision = Precision::kInt8}};
}

// Tails "a", "b", ... in --cloud order; those named in `down` are not usable.
std::vector<FixedSplitTail> Tails(const std::string& names, const std::string& down = "") {
  std::vector<FixedSplitTail> tails;
  for (const char name : names) tails.push_back({std::string(1, name), down.find(name) == std::string::npos});
  return tails;
}

// Only the tail changes, and its index names it among the tails.
void ExpectOnTail(const scheduler::Candidate& choice, const std::string& endpoint, int index) {
  EXPECT_EQ(choice.endpoint, endpoint);
  EXPECT_EQ(choice.tail, index);
  scheduler::Candidate expected = FixedSplit();
  expected.endpoint = endpoint;
  EXPECT_TRUE(choice.SameChoice(expected)) << choice.Describe();
}

TEST(FixedSplitTest, StartsOnTheFirstUsableTailInOrder) {
  ExpectOnTail(StartFixedSplit(FixedSplit(), Tails("abc")), "a", 0);
  ExpectOnTail(StartFixedSplit(FixedSplit(), Tails("abc", "a")), "b", 1);
  ExpectOnTail(StartFixedSplit(FixedSplit(), Tails("abc", "ab")), "c", 2);
  // None usable: the first tail as configured, whose reservation then says why.
  ExpectOnTail(StartFixedSplit(FixedSplit(), Tails("abc", "abc")), "a", 0);
}

TEST(FixedSplitTest, MovesToTheNextUsableTailAfterItsOwnAtTheSameCut) {
  scheduler::Candidate on_b = FixedSplit();
  on_b.endpoint = "b";
  ExpectOnTail(*MoveFixedSplit(FixedSplit(), Tails("abc")), "b", 1);
  ExpectOnTail(*MoveFixedSplit(on_b, Tails("abc")), "c", 2);
  ExpectOnTail(*MoveFixedSplit(on_b, Tails("abc", "c")), "a", 0);  // wrapping around
  ExpectOnTail(*MoveFixedSplit(FixedSplit(), Tails("abcd", "bc")), "d", 3);
  scheduler::Candidate elsewhere = FixedSplit();
  elsewhere.endpoint = "x";  // not a tail of the set: from the first
  ExpectOnTail(*MoveFixedSplit(elsewhere, Tails("ab")), "a", 0);
}

TEST(FixedSplitTest, NeverMovesBackToItsOwnTailOrAnywhereWhenNoOtherIsUsable) {
  for (const auto& tails : {Tails("a"), Tails("ab", "b"), Tails("abc", "bc"), Tails("")}) {
    const Result<scheduler::Candidate> next = MoveFixedSplit(FixedSplit(), tails);
    ASSERT_FALSE(next.ok()) << next->Describe();
    EXPECT_EQ(next.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(next.status().message().find("no other tail can take over"), std::string::npos)
        << next.status().message();
  }
}

TEST(FixedSplitTest, ATailServesItOnlyWithItsBlocksAndCodec) {
  wire::Hello hello{.n_layers = 5, .codecs = AllActivationCodecs()};
  EXPECT_TRUE(ServesFixedSplit(hello, FixedSplit())) << "every block";
  hello.held_first = 2;
  hello.held_last = 4;
  EXPECT_TRUE(ServesFixedSplit(hello, FixedSplit())) << "blocks [2, 4), as the private output needs";
  hello.held_first = 3;
  EXPECT_FALSE(ServesFixedSplit(hello, FixedSplit())) << "block 2 missing";
  scheduler::Candidate to_the_head = FixedSplit();
  to_the_head.end = 0;
  hello.held_first = 2;
  EXPECT_FALSE(ServesFixedSplit(hello, to_the_head)) << "blocks 4 and the head missing";
  hello.held_last = 5;
  EXPECT_TRUE(ServesFixedSplit(hello, to_the_head));
  hello.codecs = {ActivationCodec{}};
  EXPECT_FALSE(ServesFixedSplit(hello, to_the_head)) << "fp32 only";
}

// A host whose alternatives are a fixed split's: a penalized tail is no longer usable, and moving onto a
// tail in `dies_on_replay` fails as a dead tail does.
class FixedSplitHost final : public FailoverHost {
 public:
  explicit FixedSplitHost(std::vector<FixedSplitTail> tails) : tails_(std::move(tails)) {}
  void Penalize(const scheduler::Candidate& failed, const Status&) override {
    for (FixedSplitTail& tail : tails_) tail.usable = tail.usable && tail.endpoint != failed.endpoint;
  }
  Result<scheduler::Candidate> Alternative(const scheduler::Candidate& failed) override {
    return MoveFixedSplit(failed, tails_);
  }
  Status MoveTo(const scheduler::Candidate& failed, const scheduler::Candidate& next,
                const Status&) override {
    moves.push_back(failed.endpoint + " -> " + next.Describe());
    if (dies_on_replay.find(next.endpoint) != std::string::npos) return Unavailable(next.endpoint + " gone");
    return Status::Ok();
  }
  void Pause(Clock::Duration) override {}

  std::string dies_on_replay;
  std::vector<std::string> moves;

 private:
  std::vector<FixedSplitTail> tails_;
};

TEST(FixedSplitTest, ThePolicyMovesAFixedSplitAlongTheTailsAtItsCut) {
  FixedSplitHost host(Tails("abc"));
  host.dies_on_replay = "b";
  EXPECT_TRUE(FailoverPolicy{}.Recover(FixedSplit(), Unavailable("a gone"), host).ok());
  EXPECT_EQ(host.moves, (std::vector<std::string>{"a -> k=2 m=4 int8 @b", "b -> k=2 m=4 int8 @c"}));
}

TEST(FixedSplitTest, WithNoTailLeftTheFixedSplitFails) {
  FixedSplitHost host(Tails("ab"));
  host.dies_on_replay = "b";
  const Status status = FailoverPolicy{}.Recover(FixedSplit(), Unavailable("a gone"), host);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable);
  EXPECT_NE(status.message().find("no other tail can take over"), std::string::npos) << status.message();
  EXPECT_EQ(host.moves, std::vector<std::string>{"a -> k=2 m=4 int8 @b"}) << "never back to a, never local";
}

}  // namespace
}  // namespace tandem::edge_agent
