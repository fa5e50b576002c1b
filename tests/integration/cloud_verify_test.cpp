// Verify steps (speculative decoding) against a real tandem-cloud: stories260K at cut 2, fp32, greedy,
// spoken as raw wire messages with boundary rows computed in process. Drafts of the golden continuation
// are kept, a wrong one is not and the golden token comes instead; the edge then rewinds to the positions
// kept and the text goes on as the golden one; a resent VERIFY gets the same VERDICT; a step where the tail
// is not is out of order. A private-output session forgets the rows of drafts the edge did not keep: its
// rewound step returns the same ROWS, bit for bit, as a session that never had them.
#include <gtest/gtest.h>
#include <zmq.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "raw_wire_client.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/engine/pipeline.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/protocol.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using testing::Bytes;
using testing::RawClient;
using wire::ErrorCode;
using wire::MessageType;

constexpr int kCut = 2;
constexpr int kEndBlock = 4;  // private output: the tail runs blocks [2, 4)
constexpr uint32_t kCapacity = 64;
constexpr int kDrafts = 3;

Bytes Fp32(const HiddenRows& rows) {
  auto encoded = EncodeActivations(rows.values, rows.rows, rows.cols, ActivationCodec{});
  EXPECT_TRUE(encoded.ok()) << encoded.status().ToString();
  return encoded.ok() ? std::move(encoded->payload) : Bytes{};
}

HiddenRows Concat(const HiddenRows& first, const HiddenRows& second) {
  HiddenRows rows{first.rows + second.rows, first.cols, first.values};
  rows.values.insert(rows.values.end(), second.values.begin(), second.values.end());
  return rows;
}

wire::Message Activations(uint64_t session, uint64_t sequence, uint32_t position, const HiddenRows& rows) {
  return wire::MakeActivations(session, sequence, position, static_cast<uint32_t>(rows.rows),
                               static_cast<uint32_t>(rows.cols), {}, Compression::kNone, Fp32(rows));
}

wire::Message Verify(uint64_t session, uint64_t sequence, uint32_t position, const HiddenRows& rows,
                     std::span<const int> draft) {
  return wire::MakeVerify(session, sequence, position, static_cast<uint32_t>(rows.rows),
                          static_cast<uint32_t>(rows.cols), {}, Compression::kNone, draft, Fp32(rows));
}

class CloudVerifyTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    tail_ = new testing::CloudTailProcess();
    context_ = new zmq::context_t();
  }
  static void TearDownTestSuite() {
    delete context_;
    context_ = nullptr;
    delete tail_;
    tail_ = nullptr;
  }

  void SetUp() override {
    if (tail_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(tail_->started()) << tail_->log();
    ModelFlags flags;
    flags.model = testing::Stories260KModel().string();
    flags.threads = 1;
    auto model = LoadModel(flags, /*fingerprint=*/true);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = *model;
    const auto record = testing::GoldenRecords().at(0);
    golden_ = record["ids"].get<std::vector<int>>();
    prompt_size_ = record["prompt_ids"].size();
    ASSERT_GT(golden_.size(), prompt_size_ + 16);
    client_ = std::make_unique<RawClient>(
        *context_, tail_->endpoint(),
        SocketSecurity{.own_keys = tail_->edge_keys(), .server_public_key = tail_->cloud_keys().public_key});
    client_->Send(wire::MakeHello(model_.Describe()));
    ASSERT_TRUE(client_->ExpectReply(MessageType::kHello).has_value()) << tail_->log();
  }

  // Opens `session` at the cut, greedy; private output up to kEndBlock when asked. OPEN has no reply.
  void Open(uint64_t session, bool private_output = false) {
    client_->Send(wire::MakeOpen({.session = session,
                                  .cut = kCut,
                                  .sampling = {0.0f, 1.0f, 0},
                                  .max_positions = kCapacity,
                                  .end_block = private_output ? kEndBlock : 0}));
  }

  // The golden ids [first, first + count).
  std::vector<int> Golden(size_t first, size_t count) const {
    return {golden_.begin() + static_cast<long>(first), golden_.begin() + static_cast<long>(first + count)};
  }

  std::optional<wire::VerdictReply> ExpectVerdict(uint64_t session, uint64_t sequence) {
    const auto message = client_->ExpectReply(MessageType::kVerdict);
    if (!message) return std::nullopt;
    auto verdict = wire::ParseVerdict(*message);
    EXPECT_TRUE(verdict.ok()) << verdict.status().ToString();
    if (!verdict.ok()) return std::nullopt;
    EXPECT_EQ(verdict->session, session);
    EXPECT_EQ(verdict->sequence, sequence);
    return *verdict;
  }

  std::optional<wire::RowsReply> ExpectRows(uint64_t sequence, uint32_t position, uint32_t rows) {
    const auto message = client_->ExpectReply(MessageType::kRows);
    if (!message) return std::nullopt;
    auto reply = wire::ParseRows(*message);
    EXPECT_TRUE(reply.ok()) << reply.status().ToString();
    if (!reply.ok()) return std::nullopt;
    EXPECT_EQ(reply->sequence, sequence);
    EXPECT_EQ(reply->position, position);
    EXPECT_EQ(reply->rows, rows);
    return *reply;
  }

  double Metric(const std::string& name) const { return testing::MetricValue(tail_->http_address(), name); }

  static testing::CloudTailProcess* tail_;
  static zmq::context_t* context_;
  LoadedModel model_;
  std::vector<int> golden_;
  size_t prompt_size_ = 0;
  std::unique_ptr<RawClient> client_;
};

testing::CloudTailProcess* CloudVerifyTest::tail_ = nullptr;
zmq::context_t* CloudVerifyTest::context_ = nullptr;

TEST_F(CloudVerifyTest, GoldenDraftsAreKeptAWrongOneIsNotAndTheEdgeRewinds) {
  const double verify_steps = Metric("tandem_cloud_verify_steps_total");
  const double kept_drafts = Metric("tandem_cloud_draft_tokens_total{result=\"kept\"}");
  const double rejected_drafts = Metric("tandem_cloud_draft_tokens_total{result=\"rejected\"}");
  Open(1);
  EdgeRunner edge(model_.transformer, kCut, kCapacity);
  const size_t prompt = prompt_size_;

  // The prompt, then the golden continuation's next tokens as drafts: all kept, and the golden one after.
  auto rows = edge.Forward(Golden(0, prompt + kDrafts));
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  const wire::Message golden_verify = Verify(1, 0, 0, *rows, Golden(prompt, kDrafts));
  client_->Send(golden_verify);
  const auto kept = ExpectVerdict(1, 0);
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->kept, kDrafts);
  EXPECT_EQ(kept->tokens, Golden(prompt, kDrafts + 1));
  // Sent again, as an edge that lost the reply would: the same VERDICT, not a second step.
  client_->Send(golden_verify);
  const auto resent = ExpectVerdict(1, 0);
  ASSERT_TRUE(resent.has_value());
  EXPECT_EQ(resent->tokens, kept->tokens);
  EXPECT_EQ(resent->compute_us, kept->compute_us);

  // Positions [0, at) are on both sides; golden_[at] is the last token out and not yet through the model.
  const size_t at = prompt + kDrafts;
  const int wrong = (golden_[at + 1] + 1) % testing::kStories260KVocab;
  const std::vector<int> wrong_drafts = {wrong, golden_[at + 2]};
  rows = edge.Forward(std::vector<int>{golden_[at], wrong, golden_[at + 2]});
  ASSERT_TRUE(rows.ok());
  const wire::Message wrong_verify = Verify(1, 1, static_cast<uint32_t>(at), *rows, wrong_drafts);
  client_->Send(wrong_verify);
  const auto rejected = ExpectVerdict(1, 1);
  ASSERT_TRUE(rejected.has_value());
  EXPECT_EQ(rejected->kept, 0);
  EXPECT_EQ(rejected->tokens, Golden(at + 1, 1));
  client_->Send(wrong_verify);
  const auto rejected_again = ExpectVerdict(1, 1);
  ASSERT_TRUE(rejected_again.has_value());
  EXPECT_EQ(rejected_again->tokens, rejected->tokens);
  edge.DropPositions(static_cast<int>(wrong_drafts.size()));

  // The tail kept at + 1 positions. Steps from before the last step's first row, or past its end, are
  // refused, and change nothing.
  rows = edge.Forward(Golden(at + 1, 1));
  ASSERT_TRUE(rows.ok());
  const std::string range =
      "expected a position in [" + std::to_string(at + 1) + ", " + std::to_string(at + 3) + "]";
  for (const size_t position : {at, at + 4}) {
    client_->Send(Activations(1, 2, static_cast<uint32_t>(position), *rows));
    const auto error = client_->ExpectError(ErrorCode::kOutOfOrder, 1);
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(error->message, range);
  }
  // From the rewound position the golden text goes on, one token a step or several a VERIFY.
  client_->Send(Activations(1, 2, static_cast<uint32_t>(at + 1), *rows));
  EXPECT_EQ(client_->ExpectToken(1, 2), golden_[at + 2]);
  rows = edge.Forward(Golden(at + 2, 3));
  ASSERT_TRUE(rows.ok());
  client_->Send(Verify(1, 3, static_cast<uint32_t>(at + 2), *rows, Golden(at + 3, 2)));
  const auto later = ExpectVerdict(1, 3);
  ASSERT_TRUE(later.has_value());
  EXPECT_EQ(later->kept, 2);
  EXPECT_EQ(later->tokens, Golden(at + 3, 3));
  client_->Close(1);

  // Resends are not computed again: three verify steps, 3 + 2 drafts kept, 2 rejected.
  EXPECT_EQ(Metric("tandem_cloud_verify_steps_total") - verify_steps, 3);
  EXPECT_EQ(Metric("tandem_cloud_draft_tokens_total{result=\"kept\"}") - kept_drafts, kDrafts + 2);
  EXPECT_EQ(Metric("tandem_cloud_draft_tokens_total{result=\"rejected\"}") - rejected_drafts, 2);
}

TEST_F(CloudVerifyTest, AStepWhereTheTailIsNotIsOutOfOrderAndEndsTheSession) {
  Open(2);
  EdgeRunner edge(model_.transformer, kCut, kCapacity);
  const size_t prompt = prompt_size_;
  std::vector<int> tokens = Golden(0, prompt);
  const int wrong = (golden_[prompt] + 1) % testing::kStories260KVocab;
  tokens.insert(tokens.end(), {wrong, wrong});
  auto rows = edge.Forward(tokens);
  ASSERT_TRUE(rows.ok());
  client_->Send(Verify(2, 0, 0, *rows, std::vector<int>{wrong, wrong}));
  const auto verdict = ExpectVerdict(2, 0);
  ASSERT_TRUE(verdict.has_value());
  ASSERT_EQ(verdict->kept, 0);
  EXPECT_EQ(verdict->tokens, Golden(prompt, 1));
  // The session's table admits [1, prompt + 2]; the tail holds `prompt` positions and says so.
  rows = edge.Forward(Golden(prompt, 1));
  ASSERT_TRUE(rows.ok());
  client_->Send(Activations(2, 1, static_cast<uint32_t>(prompt + 2), *rows));
  const auto error = client_->ExpectError(ErrorCode::kOutOfOrder, 2);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->message, "expected position " + std::to_string(prompt));
  // Its KV cache and its bookkeeping no longer agree: the session is gone.
  client_->Send(Activations(2, 2, static_cast<uint32_t>(prompt), *rows));
  client_->ExpectError(ErrorCode::kUnknownSession, 2);
}

TEST_F(CloudVerifyTest, APrivateOutputSessionForgetsTheRowsOfDraftsNotKept) {
  EdgeRunner edge(model_.transformer, kCut, kCapacity);
  const size_t prompt = prompt_size_;
  const auto prompt_rows = edge.Forward(Golden(0, prompt));
  ASSERT_TRUE(prompt_rows.ok());
  // Two drafts' rows the edge then rejects (two sets of them), and the row of the token it samples instead.
  const std::vector<std::vector<int>> drafts = {{7, 8}, {9, 10}};
  std::vector<HiddenRows> with_drafts;
  for (const std::vector<int>& draft : drafts) {
    const auto draft_rows = edge.Forward(draft);
    ASSERT_TRUE(draft_rows.ok());
    edge.DropPositions(2);
    with_drafts.push_back(Concat(*prompt_rows, *draft_rows));
  }
  const auto next_row = edge.Forward(Golden(prompt, 1));
  ASSERT_TRUE(next_row.ok());

  // Such a session verifies on the edge: a VERIFY is refused, and changes nothing.
  Open(3, /*private_output=*/true);
  client_->Send(Verify(3, 0, 0, with_drafts[0], drafts[0]));
  const auto refused = client_->ExpectError(ErrorCode::kBadArgument, 3);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->message, "a private-output session verifies on the edge: send ACTIVATIONS");

  // Sessions 3 and 4 get the prompt with other drafts' rows, then rewind over them: the same rows come
  // back, bit for bit, so nothing of the drafts is left.
  std::vector<wire::RowsReply> rewound;
  for (const uint64_t session : {3, 4}) {
    if (session != 3) Open(session, /*private_output=*/true);
    client_->Send(Activations(session, 0, 0, with_drafts[session - 3]));
    ASSERT_TRUE(ExpectRows(0, 0, static_cast<uint32_t>(prompt + 2)).has_value());
    client_->Send(Activations(session, 1, static_cast<uint32_t>(prompt), *next_row));
    const auto rows = ExpectRows(1, static_cast<uint32_t>(prompt), 1);
    ASSERT_TRUE(rows.has_value());
    EXPECT_EQ(rows->codec, ActivationCodec{});
    rewound.push_back(*rows);
  }
  EXPECT_EQ(rewound[0].payload, rewound[1].payload);

  // A session that never had them agrees to rounding: the engine's multi-row steps are not bit for bit
  // the same for another row count (the prompt's rows went through a 7-row step there, a 5-row one here).
  Open(5, /*private_output=*/true);
  client_->Send(Activations(5, 0, 0, *prompt_rows));
  ASSERT_TRUE(ExpectRows(0, 0, static_cast<uint32_t>(prompt)).has_value());
  client_->Send(Activations(5, 1, static_cast<uint32_t>(prompt), *next_row));
  const auto straight = ExpectRows(1, static_cast<uint32_t>(prompt), 1);
  ASSERT_TRUE(straight.has_value());
  const auto decode = [](const wire::RowsReply& rows) {
    return DecodeActivations(rows.payload, rows.rows, rows.cols, rows.codec, rows.rows * rows.cols);
  };
  const auto rewound_values = decode(rewound[0]);
  const auto straight_values = decode(*straight);
  ASSERT_TRUE(rewound_values.ok() && straight_values.ok());
  ASSERT_EQ(rewound_values->size(), straight_values->size());
  for (size_t i = 0; i < straight_values->size(); ++i) {
    EXPECT_NEAR((*rewound_values)[i], (*straight_values)[i], 1e-4f * (1 + std::abs((*straight_values)[i])))
        << "column " << i;
  }
  for (const uint64_t session : {3, 4, 5}) client_->Close(session);
}

}  // namespace
}  // namespace tandem
