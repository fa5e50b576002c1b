// The tail's session table without ZeroMQ or a model: which OPEN and ACTIVATIONS it admits and the ERROR it
// answers the others with, resends, replies settling the bookkeeping, idle expiry on a ManualClock, and
// the connections it remembers. An admitted OPEN builds no runner: the KV cache is the worker's to
// allocate, never the I/O thread's.
#include "tandem/cloud_tail/session_table.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "tandem/base/clock.hpp"

namespace tandem::cloud_tail {
namespace {

using std::chrono::milliseconds;
using wire::ErrorCode;

constexpr int kLayers = 5;
constexpr int kDim = 64;
constexpr int kSeqLen = 512;
constexpr int kKvDim = 32;
const std::string kPeer = "edge-a";

ServedModel WholeModel() {
  return {.n_layers = kLayers,
          .dim = kDim,
          .seq_len = kSeqLen,
          .kv_dim = kKvDim,
          .held = {0, kLayers},
          .holds_head = true};
}

SessionLimits Limits() {
  return {.max_rows = 16,
          .max_sessions = 4,
          .max_kv_bytes = int64_t{1} << 30,
          .max_peers = 2,
          .idle_timeout = milliseconds(1000),
          .workers = 2};
}

wire::OpenRequest OpenAt(int cut, uint32_t max_positions = 32) {
  return {.cut = cut, .max_positions = max_positions};
}

wire::Message Step(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows = 1,
                   uint32_t cols = kDim, ActivationCodec codec = {}, std::byte fill = std::byte{1}) {
  return wire::MakeActivations(session, sequence, position, rows, cols, codec, codec.compression,
                               std::vector<std::byte>(rows * cols * 4, fill));
}

// A VERIFY of `rows` fp32 rows whose last draft.size() rows are the drafts'.
wire::Message Verify(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows,
                     const std::vector<int>& draft) {
  return wire::MakeVerify(session, sequence, position, rows, kDim, {}, Compression::kNone, draft,
                          std::vector<std::byte>(rows * kDim * 4, std::byte{1}));
}

wire::Message Token(uint64_t session, uint64_t sequence) {
  return wire::MakeToken({.session = session, .sequence = sequence, .token = 7});
}

class SessionTableTest : public ::testing::Test {
 protected:
  SessionTable& Table(ServedModel model = WholeModel(), SessionLimits limits = Limits()) {
    table_ = std::make_unique<SessionTable>(model, limits, clock_, [this](int64_t sessions, int64_t kv) {
      observed_sessions_ = sessions;
      observed_kv_bytes_ = kv;
    });
    EXPECT_FALSE(table_->AdmitPeer(kPeer).has_value());
    return *table_;
  }

  // The refusal of `admission`, expected to be one with `code`.
  static wire::ErrorReply Refused(const Admission& admission, ErrorCode code) {
    EXPECT_TRUE(admission.refusal.has_value());
    if (!admission.refusal) return {};
    EXPECT_EQ(admission.refusal->code, code) << admission.refusal->message;
    EXPECT_EQ(admission.session, nullptr);
    return *admission.refusal;
  }

  ManualClock clock_;
  std::unique_ptr<SessionTable> table_;
  int64_t observed_sessions_ = -1;
  int64_t observed_kv_bytes_ = -1;
};

TEST_F(SessionTableTest, AnAdmittedOpenReservesKvMemoryButBuildsNoRunner) {
  SessionTable& table = Table();
  const Admission opened = table.Open(kPeer, 9, OpenAt(2, 100));
  ASSERT_FALSE(opened.refusal.has_value()) << opened.refusal->message;
  ASSERT_NE(opened.session, nullptr);
  // K and V of blocks [2, 5), 100 positions, float32.
  const int64_t kv_bytes = int64_t{2} * 3 * kKvDim * 100 * 4;
  EXPECT_EQ(opened.session->kv_bytes, kv_bytes);
  EXPECT_EQ(opened.session->capacity, 100u);
  EXPECT_EQ(opened.session->open.session, 9u);
  EXPECT_EQ(opened.session->tail, nullptr);
  EXPECT_EQ(opened.session->middle, nullptr);
  EXPECT_EQ(table.open_sessions(), 1);
  EXPECT_EQ(table.kv_bytes(), kv_bytes);
  EXPECT_EQ(observed_sessions_, 1);
  EXPECT_EQ(observed_kv_bytes_, kv_bytes);
  // max_positions 0 is the whole context; sessions alternate between the workers; serials never repeat.
  const Admission whole = table.Open(kPeer, 10, OpenAt(0, 0));
  ASSERT_NE(whole.session, nullptr);
  EXPECT_EQ(whole.session->capacity, static_cast<uint32_t>(kSeqLen));
  EXPECT_NE(whole.session->worker, opened.session->worker);
  EXPECT_NE(whole.session->serial, opened.session->serial);
}

TEST_F(SessionTableTest, OpenRefusalsNameTheSessionAndWhy) {
  SessionTable& table = Table();
  const wire::ErrorReply reserved = Refused(table.Open(kPeer, 0, OpenAt(1)), ErrorCode::kBadArgument);
  EXPECT_EQ(reserved.message, "session id 0 is reserved");
  const wire::ErrorReply cut = Refused(table.Open(kPeer, 3, OpenAt(6)), ErrorCode::kBadArgument);
  EXPECT_EQ(cut.session, 3u);
  EXPECT_EQ(cut.sequence, 0u);
  EXPECT_EQ(cut.message, "cut 6 is outside [0, 5]");
  Refused(table.Open(kPeer, 3, OpenAt(-1)), ErrorCode::kBadArgument);
  wire::OpenRequest middle = OpenAt(2);
  middle.end_block = 2;
  EXPECT_EQ(Refused(table.Open(kPeer, 3, middle), ErrorCode::kBadArgument).message,
            "end_block 2 is outside [3, 5]");
  middle.end_block = 6;
  Refused(table.Open(kPeer, 3, middle), ErrorCode::kBadArgument);
  EXPECT_EQ(Refused(table.Open(kPeer, 3, OpenAt(1, kSeqLen + 1)), ErrorCode::kBadArgument).message,
            "max_positions 513 exceeds the context length 512");
  ASSERT_FALSE(table.Open(kPeer, 3, OpenAt(1)).refusal.has_value());
  Refused(table.Open(kPeer, 3, OpenAt(1)), ErrorCode::kSessionExists);
  // Another peer may use the same id.
  ASSERT_FALSE(table.AdmitPeer("edge-b").has_value());
  EXPECT_FALSE(table.Open("edge-b", 3, OpenAt(1)).refusal.has_value());
  EXPECT_EQ(table.open_sessions(), 2);
}

TEST_F(SessionTableTest, ABlockRangeTailAdmitsOnlyWhatItHolds) {
  ServedModel range = WholeModel();
  range.held = {2, kLayers};
  range.holds_head = false;
  SessionTable& table = Table(range);
  EXPECT_EQ(Refused(table.Open(kPeer, 1, OpenAt(2)), ErrorCode::kBadArgument).message,
            "this tail holds no head (blocks 2:5 only): open the session with end_block (private output)");
  wire::OpenRequest middle = OpenAt(1);
  middle.end_block = 3;
  EXPECT_EQ(Refused(table.Open(kPeer, 1, middle), ErrorCode::kBadArgument).message,
            "this tail holds blocks 2:5 only, not 1:3");
  middle.cut = 2;
  middle.end_block = 4;
  const Admission admitted = table.Open(kPeer, 1, middle);
  ASSERT_NE(admitted.session, nullptr);
  EXPECT_TRUE(admitted.session->private_output());
}

TEST_F(SessionTableTest, LimitsAndDrainingRefuseRetryably) {
  SessionLimits limits = Limits();
  limits.max_kv_bytes = int64_t{2} * kLayers * kKvDim * 32 * 4 * 2;  // two whole-model sessions of 32
  SessionTable& table = Table(WholeModel(), limits);
  ASSERT_NE(table.Open(kPeer, 1, OpenAt(0)).session, nullptr);
  ASSERT_NE(table.Open(kPeer, 2, OpenAt(0)).session, nullptr);
  const wire::ErrorReply full = Refused(table.Open(kPeer, 3, OpenAt(0)), ErrorCode::kOverloaded);
  EXPECT_TRUE(full.retryable);
  EXPECT_NE(full.message.find("KV-cache memory is full"), std::string::npos);
  // A session past the cut of every block reserves nothing.
  ASSERT_NE(table.Open(kPeer, 3, OpenAt(kLayers)).session, nullptr);
  ASSERT_NE(table.Open(kPeer, 4, OpenAt(kLayers)).session, nullptr);
  const wire::ErrorReply many = Refused(table.Open(kPeer, 5, OpenAt(kLayers)), ErrorCode::kOverloaded);
  EXPECT_EQ(many.message, "the tail holds its maximum of 4 sessions");
  EXPECT_TRUE(many.retryable);
  table.Close(kPeer, 1);
  EXPECT_EQ(table.open_sessions(), 3);
  table.BeginDrain();
  EXPECT_TRUE(Refused(table.Open(kPeer, 6, OpenAt(0)), ErrorCode::kOverloaded).retryable);
  const auto hello = table.AdmitPeer("edge-new");
  ASSERT_TRUE(hello.has_value());
  EXPECT_EQ(hello->message, "the tail is shutting down");
}

TEST_F(SessionTableTest, StepsForUnknownOrClosedSessionsAreRefused) {
  SessionTable& table = Table();
  const wire::ErrorReply unknown =
      Refused(table.AcceptStep(kPeer, Step(4, 0, 0)), ErrorCode::kUnknownSession);
  EXPECT_EQ(unknown.session, 4u);
  ASSERT_NE(table.Open(kPeer, 4, OpenAt(1)).session, nullptr);
  // Another peer's session with the same id is not this one.
  ASSERT_FALSE(table.AdmitPeer("edge-b").has_value());
  Refused(table.AcceptStep("edge-b", Step(4, 0, 0)), ErrorCode::kUnknownSession);
  ASSERT_NE(table.AcceptStep(kPeer, Step(4, 0, 0)).session, nullptr);
  table.Close(kPeer, 4);
  const wire::ErrorReply closed = Refused(table.AcceptStep(kPeer, Step(4, 1, 1)), ErrorCode::kUnknownSession);
  EXPECT_EQ(closed.sequence, 1u);
  EXPECT_EQ(table.open_sessions(), 0);
  EXPECT_EQ(table.kv_bytes(), 0);
}

TEST_F(SessionTableTest, StepsOfTheWrongShapeOrderOrCodecAreRefused) {
  SessionTable& table = Table();
  wire::OpenRequest open = OpenAt(1, 8);
  open.codec = {Precision::kFp16, Compression::kLz4};
  ASSERT_NE(table.Open(kPeer, 1, open).session, nullptr);
  const ActivationCodec fp16{Precision::kFp16, Compression::kNone};
  EXPECT_EQ(
      Refused(table.AcceptStep(kPeer, Step(1, 0, 0, 1, kDim - 1, fp16)), ErrorCode::kBadArgument).message,
      "rows must have 64 columns");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 0, 0, 0, kDim, fp16)), ErrorCode::kBadArgument).message,
            "no rows");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 0, 0, 17, kDim, fp16)), ErrorCode::kTooLarge).message,
            "rows must be in [1, 16]");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 0, 0, 9, kDim, fp16)), ErrorCode::kTooLarge).message,
            "the session holds 8 positions");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 1, 0, 1, kDim, fp16)), ErrorCode::kOutOfOrder).message,
            "expected sequence 0");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 0, 3, 1, kDim, fp16)), ErrorCode::kOutOfOrder).message,
            "expected position 0");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 0, 0, 1, kDim, {})), ErrorCode::kBadArgument).message,
            "the session was opened with codec fp16+lz4, not fp32");
  wire::Message unknown_codec = Step(1, 0, 0, 1, kDim, fp16);
  unknown_codec.header.precision = 99;
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, unknown_codec), ErrorCode::kBadArgument).message,
            "unknown activation codec");
  // The session's codec, or its precision uncompressed (when compressing did not pay).
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 0, 0, 4, kDim, fp16)).session, nullptr);
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 1, 4, 1, kDim, open.codec)).session, nullptr);
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 2, 4, 1, kDim, fp16)), ErrorCode::kOutOfOrder).message,
            "expected position 5");
}

TEST_F(SessionTableTest, AfterAStepTheNextMayRewindToJustPastItsFirstPosition) {
  SessionTable& table = Table();
  ASSERT_NE(table.Open(kPeer, 1, OpenAt(1)).session, nullptr);
  ASSERT_NE(table.Open(kPeer, 2, OpenAt(1)).session, nullptr);
  for (const uint64_t session : {1, 2}) {
    ASSERT_NE(table.AcceptStep(kPeer, Step(session, 0, 0, 2)).session, nullptr);
    ASSERT_NE(table.AcceptStep(kPeer, Step(session, 1, 2, 4)).session, nullptr);  // positions 2..5
  }
  // The last step began at 2 and ended before 6: the next begins in [3, 6].
  for (const uint32_t outside : {0u, 2u, 7u}) {
    EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 2, outside)), ErrorCode::kOutOfOrder).message,
              "expected a position in [3, 6]")
        << outside;
  }
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 2, 3)).session, nullptr);  // kept no draft of the last step
  ASSERT_NE(table.AcceptStep(kPeer, Step(2, 2, 6)).session, nullptr);  // kept every row
  // One row at 3: the next begins at 4, nowhere else.
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 3, 5)), ErrorCode::kOutOfOrder).message,
            "expected position 4");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Step(1, 3, 3)), ErrorCode::kOutOfOrder).message,
            "expected position 4");
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 3, 4)).session, nullptr);
  ASSERT_NE(table.AcceptStep(kPeer, Step(2, 3, 7)).session, nullptr);
}

TEST_F(SessionTableTest, AVerifyIsAdmittedAsAStepWithADraftListThatParses) {
  SessionTable& table = Table();
  const Admission opened = table.Open(kPeer, 1, OpenAt(1));
  ASSERT_NE(opened.session, nullptr);
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 0, 0, 3)).session, nullptr);
  // The header's checks first, as for ACTIVATIONS.
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Verify(1, 1, 9, 3, {5, 6})), ErrorCode::kOutOfOrder).message,
            "expected a position in [1, 3]");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Verify(1, 1, 3, 17, {5, 6})), ErrorCode::kTooLarge).message,
            "rows must be in [1, 16]");
  // Then the draft list: none, one per row, or cut short is a frame the tail cannot read.
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Verify(1, 1, 3, 3, {})), ErrorCode::kBadFrame).message,
            "VERIFY drafts 0 tokens; it takes 1 to 64");
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Verify(1, 1, 3, 2, {5, 6})), ErrorCode::kBadFrame).message,
            "VERIFY drafts 2 tokens in 2 rows: a row of the session's own must come first");
  wire::Message truncated = Verify(1, 1, 3, 3, {5, 6});
  truncated.payload.resize(5);
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, truncated), ErrorCode::kBadFrame).message,
            "VERIFY draft list is truncated");
  // None of that changed the session: the VERIFY is admitted, and a rewind past its first row follows.
  const Admission verify = table.AcceptStep(kPeer, Verify(1, 1, 3, 3, {5, 6}));
  ASSERT_NE(verify.session, nullptr);
  EXPECT_EQ(verify.session->next_position, 6u);
  EXPECT_EQ(verify.session->last_position, 3u);
  // Resent: answered by its VERDICT; the same number with other drafts is another step.
  const wire::Message verdict =
      wire::MakeVerdict({.session = 1, .sequence = 1, .kept = 0, .tokens = {9}, .compute_us = 1});
  table.Settle(kPeer, opened.session->serial, verdict);
  const Admission resent = table.AcceptStep(kPeer, Verify(1, 1, 3, 3, {5, 6}));
  ASSERT_TRUE(resent.resend);
  ASSERT_TRUE(resent.cached_reply.has_value());
  EXPECT_EQ(resent.cached_reply->header.type, wire::MessageType::kVerdict);
  EXPECT_EQ(resent.cached_reply->payload, verdict.payload);
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Verify(1, 1, 3, 3, {5, 7})), ErrorCode::kOutOfOrder).message,
            "sequence 1 was already used for other rows; expected 2");
  // An ACTIVATIONS with the VERIFY's very bytes is not its resend either.
  wire::Message same_bytes = Verify(1, 1, 3, 3, {5, 6});
  same_bytes.header.type = wire::MessageType::kActivations;
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, same_bytes), ErrorCode::kOutOfOrder).message,
            "sequence 1 was already used for other rows; expected 2");
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 2, 4)).session, nullptr);
}

TEST_F(SessionTableTest, APrivateOutputSessionIsRefusedVerifyButRewindsItsActivations) {
  SessionTable& table = Table();
  wire::OpenRequest middle = OpenAt(1);
  middle.end_block = 3;
  ASSERT_NE(table.Open(kPeer, 1, middle).session, nullptr);
  EXPECT_EQ(Refused(table.AcceptStep(kPeer, Verify(1, 0, 0, 3, {5})), ErrorCode::kBadArgument).message,
            "a private-output session verifies on the edge: send ACTIVATIONS");
  // Its drafts' rows come as ACTIVATIONS; the next step starts after the rows the edge kept.
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 0, 0, 3)).session, nullptr);
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 1, 2, 1)).session, nullptr);
}

TEST_F(SessionTableTest, AResendIsAnsweredFromTheCacheAndANewStepUnderItsNumberRefused) {
  SessionTable& table = Table();
  const Admission opened = table.Open(kPeer, 1, OpenAt(1));
  ASSERT_NE(opened.session, nullptr);
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 0, 0, 3)).session, nullptr);
  // Still computing: the resend is dropped (its reply is on the way).
  const Admission early = table.AcceptStep(kPeer, Step(1, 0, 0, 3));
  EXPECT_TRUE(early.resend);
  EXPECT_FALSE(early.cached_reply.has_value());
  EXPECT_FALSE(early.refusal.has_value());
  table.Settle(kPeer, opened.session->serial, Token(1, 0));
  const Admission late = table.AcceptStep(kPeer, Step(1, 0, 0, 3));
  ASSERT_TRUE(late.resend);
  ASSERT_TRUE(late.cached_reply.has_value());
  EXPECT_EQ(late.cached_reply->header.type, wire::MessageType::kToken);
  EXPECT_EQ(late.cached_reply->header.sequence, 0u);
  // Other rows under the last sequence number are not a resend.
  const wire::ErrorReply other =
      Refused(table.AcceptStep(kPeer, Step(1, 0, 0, 3, kDim, {}, std::byte{2})), ErrorCode::kOutOfOrder);
  EXPECT_EQ(other.message, "sequence 0 was already used for other rows; expected 1");
}

TEST_F(SessionTableTest, AnErrorReplyEndsTheSessionButNotALaterOneWithTheSameId) {
  SessionTable& table = Table();
  const Admission first = table.Open(kPeer, 1, OpenAt(1));
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 0, 0)).session, nullptr);
  table.Close(kPeer, 1);
  const Admission second = table.Open(kPeer, 1, OpenAt(1));
  ASSERT_NE(second.session, nullptr);
  // The first session's late ERROR finds the second: nothing changes.
  const wire::Message error =
      wire::MakeError({.session = 1, .sequence = 0, .code = ErrorCode::kInternal, .message = "x"});
  table.Settle(kPeer, first.session->serial, error);
  EXPECT_EQ(table.open_sessions(), 1);
  table.Settle(kPeer, second.session->serial, error);
  EXPECT_EQ(table.open_sessions(), 0);
  Refused(table.AcceptStep(kPeer, Step(1, 0, 0)), ErrorCode::kUnknownSession);
}

TEST_F(SessionTableTest, IdleSessionsExpireButNotWithAStepInFlight) {
  SessionTable& table = Table();
  const Admission busy = table.Open(kPeer, 1, OpenAt(1));
  ASSERT_NE(table.Open(kPeer, 2, OpenAt(1)).session, nullptr);
  ASSERT_NE(table.AcceptStep(kPeer, Step(1, 0, 0)).session, nullptr);
  clock_.Advance(milliseconds(1001));
  EXPECT_EQ(table.ExpireIdle(), 1);  // session 2
  EXPECT_EQ(table.open_sessions(), 1);
  table.Settle(kPeer, busy.session->serial, Token(1, 0));
  clock_.Advance(milliseconds(1000));
  EXPECT_EQ(table.ExpireIdle(), 0);
  clock_.Advance(milliseconds(1));
  EXPECT_EQ(table.ExpireIdle(), 1);
  EXPECT_EQ(table.open_sessions(), 0);
}

TEST_F(SessionTableTest, ConnectionsPastHelloAreRememberedUpToTheLimit) {
  SessionTable& table = Table();  // admits kPeer; max_peers 2
  EXPECT_TRUE(table.TouchPeer(kPeer));
  EXPECT_FALSE(table.TouchPeer("stranger"));
  clock_.Advance(milliseconds(10));
  ASSERT_FALSE(table.AdmitPeer("edge-b").has_value());
  ASSERT_NE(table.Open("edge-b", 1, OpenAt(1)).session, nullptr);
  // Full: the idlest connection without sessions (kPeer) is forgotten for the new one.
  ASSERT_FALSE(table.AdmitPeer("edge-c").has_value());
  EXPECT_FALSE(table.TouchPeer(kPeer));
  EXPECT_TRUE(table.TouchPeer("edge-c"));
  ASSERT_NE(table.Open("edge-c", 1, OpenAt(1)).session, nullptr);
  // Every connection holds a session: a new one is refused, retryably.
  const auto refused = table.AdmitPeer("edge-d");
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->code, ErrorCode::kOverloaded);
  EXPECT_TRUE(refused->retryable);
  EXPECT_EQ(table.peers(), 2u);
}

}  // namespace
}  // namespace tandem::cloud_tail
