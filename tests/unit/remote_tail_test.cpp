// RemoteTail through the channel seam, with an in-memory tail: what the edge puts on the wire (never a
// token id: embedding rows at cut 0), its cut log, and how it treats errors, stale replies and silence.
#include "tandem/edge/remote_tail.hpp"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <deque>

#include "tandem/common/model_loader.hpp"
#include "tandem/common/transformer.hpp"
#include "test_env.hpp"

namespace tandem::edge {
namespace {

// A tail in this process behind the MessageChannel seam: it answers HELLO with `hello`, runs every
// ACTIVATIONS through a LocalTail, and records every message the edge sent.
class InMemoryTail final : public MessageChannel {
 public:
  InMemoryTail(std::shared_ptr<const Transformer> model, wire::Hello hello)
      : model_(std::move(model)), hello_(std::move(hello)) {}

  Status Send(const wire::Message& message) override {
    sent.push_back(message);
    switch (message.header.type) {
      case wire::MessageType::kHello:
        replies.push_back(wire::MakeHello(hello_));
        break;
      case wire::MessageType::kOpen: {
        TANDEM_ASSIGN_OR_RETURN(open_, wire::ParseOpen(message));
        tail_ = std::make_unique<LocalTail>(model_, open_.cut, static_cast<int>(open_.max_positions),
                                            open_.sampling);
        break;
      }
      case wire::MessageType::kActivations: {
        if (silent) break;
        const wire::Header& h = message.header;
        const ActivationCodec codec{static_cast<Precision>(h.precision),
                                    static_cast<Compression>(h.compression)};
        TANDEM_ASSIGN_OR_RETURN(auto values,
                                DecodeActivations(message.payload, h.rows, h.cols, codec, h.rows * h.cols));
        TANDEM_ASSIGN_OR_RETURN(int token, tail_->Forward(HiddenRows{h.rows, h.cols, std::move(values)}));
        if (stale_reply_first) replies.push_back(wire::MakeToken({.session = h.session + 100, .token = 3}));
        replies.push_back(wire::MakeToken(
            {.session = h.session, .sequence = h.sequence, .token = token_override.value_or(token)}));
        break;
      }
      default:
        break;
    }
    return Status::Ok();
  }

  Result<wire::Message> Receive(std::chrono::milliseconds timeout) override {
    if (replies.empty())
      return DeadlineExceeded("no reply within " + std::to_string(timeout.count()) + " ms");
    wire::Message next = std::move(replies.front());
    replies.pop_front();
    return next;
  }

  const std::string& endpoint() const override { return endpoint_; }

  std::vector<wire::Message> sent;
  std::deque<wire::Message> replies;
  bool stale_reply_first = false;
  bool silent = false;  // never answers ACTIVATIONS
  std::optional<int> token_override;

 private:
  std::shared_ptr<const Transformer> model_;
  wire::Hello hello_;
  wire::OpenRequest open_;
  std::unique_ptr<LocalTail> tail_;
  std::string endpoint_ = "inproc://test";
};

class RemoteTailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (testing::SharedDir().empty()) GTEST_SKIP() << "shared folder not found";
    ModelFlags flags;
    flags.model = testing::Stories260KModel().string();
    auto model = LoadModel(flags, /*fingerprint=*/true);
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = *model;
    hello_ = wire::DescribeModel(model_.checkpoint->config(), model_.fingerprint);
  }

  // Connects an InMemoryTail; `channel` stays valid while the returned connection lives.
  std::unique_ptr<CloudConnection> Connect(InMemoryTail*& channel, wire::Hello remote) {
    auto owned = std::make_unique<InMemoryTail>(model_.transformer, std::move(remote));
    channel = owned.get();
    auto connection = CloudConnection::Handshake(std::move(owned), std::chrono::milliseconds(100), hello_);
    EXPECT_TRUE(connection.ok()) << connection.status().ToString();
    return connection.ok() ? std::move(*connection) : nullptr;
  }

  LoadedModel model_;
  wire::Hello hello_;
};

TEST_F(RemoteTailTest, AtCutZeroTheEdgeSendsEmbeddingRowsAndNeverTokenIds) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  const std::vector<int> prompt = {1, 403, 407, 261, 378};
  EdgeRunner edge(model_.transformer, /*cut=*/0, 32);
  auto tail = RemoteTail::Open(*connection, {.cut = 0, .sampling = {0.0f, 1.0f, 0}, .max_positions = 32});
  ASSERT_TRUE(tail.ok());
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{32, false});
  ASSERT_TRUE(generation.ok()) << generation.status().ToString();

  const at::Tensor embedded = *model_.transformer->Embed(generation->ids);
  int64_t position = 0;
  for (const wire::Message& message : channel->sent) {
    // Only these types leave the edge; none of them carries token ids.
    const auto type = message.header.type;
    ASSERT_TRUE(type == wire::MessageType::kHello || type == wire::MessageType::kOpen ||
                type == wire::MessageType::kActivations)
        << wire::MessageTypeName(type);
    if (type != wire::MessageType::kActivations) continue;
    ASSERT_EQ(message.header.position, position);
    ASSERT_EQ(message.payload.size(), message.header.rows * 64u * 4u);
    const auto* rows = reinterpret_cast<const float*>(message.payload.data());
    const at::Tensor expected = embedded.narrow(0, position, message.header.rows).contiguous();
    EXPECT_EQ(std::memcmp(rows, expected.data_ptr<float>(), message.payload.size()), 0)
        << "position " << position;
    position += message.header.rows;
  }
  EXPECT_EQ(position, static_cast<int64_t>(generation->ids.size()) - 1);
}

TEST_F(RemoteTailTest, TheCutLogHoldsEveryRowSentInItsChunks) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  const std::vector<int> prompt = {1, 403, 407, 261};
  EdgeRunner edge(model_.transformer, /*cut=*/2, 16);
  auto tail = RemoteTail::Open(*connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 16});
  ASSERT_TRUE(tail.ok());
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{10, false});
  ASSERT_TRUE(generation.ok());
  const CutLog& log = (*tail)->cut_log();
  EXPECT_EQ(log.positions(), 10);
  EXPECT_EQ(log.cols(), 64);
  EXPECT_EQ(log.chunks(), (std::vector<int64_t>{4, 1, 1, 1, 1, 1, 1}));
  EXPECT_EQ(log.values().size(), 10u * 64u);
  // The same positions through a local tail from the log give the same first token.
  LocalTail replay(model_.transformer, 2, 16, {0.0f, 1.0f, 0});
  HiddenRows prefill{4, 64, std::vector<float>(log.values().begin(), log.values().begin() + 4 * 64)};
  EXPECT_EQ(*replay.Forward(prefill), generation->ids[4]);
  EXPECT_EQ((*tail)->stats().step_payload_bytes.size(), 7u);
  EXPECT_EQ((*tail)->stats().raw_bytes, 10 * 64 * 4);
}

TEST_F(RemoteTailTest, APromptOverTheTailsRowLimitGoesInChunks) {
  wire::Hello limited = hello_;
  limited.max_rows = 3;
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, limited);
  ASSERT_NE(connection, nullptr);
  const std::vector<int> prompt = {1, 403, 407, 261, 378, 432, 383};
  EdgeRunner edge(model_.transformer, 2, 16);
  auto tail = RemoteTail::Open(*connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 16});
  ASSERT_TRUE(tail.ok());
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{9, false});
  ASSERT_TRUE(generation.ok()) << generation.status().ToString();
  EXPECT_EQ((*tail)->cut_log().chunks(), (std::vector<int64_t>{3, 3, 1, 1, 1}));
  for (const wire::Message& message : channel->sent) EXPECT_LE(message.header.rows, 3u);
  // The prompt is the first 7 ids of the first golden record: its greedy continuation goes on with 286.
  EXPECT_EQ(generation->ids[7], 286);
}

TEST_F(RemoteTailTest, StaleRepliesAreSkippedAndBadTokensRefused) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  channel->stale_reply_first = true;
  EdgeRunner edge(model_.transformer, 1, 8);
  auto tail = RemoteTail::Open(*connection, {.cut = 1, .sampling = {0.0f, 1.0f, 0}, .max_positions = 8});
  ASSERT_TRUE(tail.ok());
  auto rows = edge.Forward(std::vector<int>{1, 403});
  ASSERT_TRUE(rows.ok());
  EXPECT_TRUE((*tail)->Forward(*rows).ok());
  channel->token_override = 512;  // outside the vocabulary
  auto next = edge.Forward(std::vector<int>{407});
  const auto refused = (*tail)->Forward(*next);
  EXPECT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("outside the vocabulary"), std::string::npos);
}

TEST_F(RemoteTailTest, AnErrorFromTheTailBecomesTheStepsStatus) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  auto tail = RemoteTail::Open(*connection, {.cut = 1, .sampling = {0.0f, 1.0f, 0}, .max_positions = 8});
  ASSERT_TRUE(tail.ok());
  channel->replies.push_back(wire::MakeError({.session = 1,
                                              .code = wire::ErrorCode::kOverloaded,
                                              .retryable = true,
                                              .message = "KV-cache memory is full"}));
  EdgeRunner edge(model_.transformer, 1, 8);
  auto result = (*tail)->Forward(*edge.Forward(std::vector<int>{1}));
  EXPECT_EQ(result.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(result.status().message().find("KV-cache memory is full"), std::string::npos);
}

TEST_F(RemoteTailTest, SilenceIsADeadline) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  channel->silent = true;
  auto tail = RemoteTail::Open(*connection, {.cut = 5, .sampling = {0.0f, 1.0f, 0}, .max_positions = 8});
  ASSERT_TRUE(tail.ok());
  EdgeRunner edge(model_.transformer, 5, 8);
  auto result = (*tail)->Forward(*edge.Forward(std::vector<int>{1}));
  EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
}

TEST_F(RemoteTailTest, AnotherModelIsRefusedAtHandshake) {
  wire::Hello other = hello_;
  other.fingerprint ^= 1;
  auto channel = std::make_unique<InMemoryTail>(model_.transformer, other);
  auto connection = CloudConnection::Handshake(std::move(channel), std::chrono::milliseconds(100), hello_);
  ASSERT_FALSE(connection.ok());
  EXPECT_NE(connection.status().message().find("another model"), std::string::npos);
}

}  // namespace
}  // namespace tandem::edge
