// RemoteTail through the channel seam, with an in-memory tail: what the edge puts on the wire (never a
// token id: embedding rows at cut 0), its cut log, and how it treats errors, stale replies and silence.
#include "tandem/edge_agent/remote_tail.hpp"

#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <iostream>
#include <limits>

#include <prometheus/registry.h>

#include "tandem/cloud_tail/tail_server.hpp"
#include "tandem/edge_agent/movable_split.hpp"
#include "tandem/engine/model_loader.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem::edge_agent {
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
        // A resend of the last step is answered from the cache, as the real tail does.
        if (last_reply && last_reply->header.sequence == h.sequence) {
          Answer(*last_reply);
          break;
        }
        const ActivationCodec codec{static_cast<Precision>(h.precision),
                                    static_cast<Compression>(h.compression)};
        TANDEM_ASSIGN_OR_RETURN(auto values,
                                DecodeActivations(message.payload, h.rows, h.cols, codec, h.rows * h.cols));
        TANDEM_ASSIGN_OR_RETURN(int token, tail_->Forward(HiddenRows{h.rows, h.cols, std::move(values)}));
        if (stale_reply_first) replies.push_back(wire::MakeToken({.session = h.session + 100, .token = 3}));
        last_reply = wire::MakeToken(
            {.session = h.session, .sequence = h.sequence, .token = token_override.value_or(token)});
        Answer(*last_reply);
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

  void Answer(const wire::Message& reply) {
    if (replies_to_lose > 0) {
      --replies_to_lose;
    } else {
      replies.push_back(reply);
    }
  }

  std::vector<wire::Message> sent;
  std::deque<wire::Message> replies;
  bool stale_reply_first = false;
  bool silent = false;      // never answers ACTIVATIONS
  int replies_to_lose = 0;  // computed, but the reply never arrives
  std::optional<wire::Message> last_reply;
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
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{.steps = 32, .stop_tokens = {}});
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

// What the tail could read straight off the wire: the prompt's text, its token ids in any common integer
// encoding, or an embedding row (exact, or within the codec's error).
struct WireFindings {
  std::vector<std::string> leaks;
  double nearest_embedding = std::numeric_limits<double>::infinity();  // min relative L2 distance
};

// Whether `needle` occurs in `haystack`, byte for byte.
bool Contains(std::span<const std::byte> haystack, std::span<const std::byte> needle) {
  return !needle.empty() &&
         std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

template <typename Int>
std::vector<std::byte> AsBytes(const std::vector<int>& ids) {
  std::vector<std::byte> bytes(ids.size() * sizeof(Int));
  for (size_t i = 0; i < ids.size(); ++i) {
    const auto value = static_cast<Int>(ids[i]);
    std::memcpy(bytes.data() + i * sizeof(Int), &value, sizeof(Int));  // little-endian host, as the wire
  }
  return bytes;
}

using MessageTypes = std::vector<wire::MessageType>;
const MessageTypes kEdgeSends = {wire::MessageType::kHello, wire::MessageType::kOpen,
                                 wire::MessageType::kActivations, wire::MessageType::kClose};

// `messages` (one direction) may only be of `allowed` types and hold no `text` and no run of four of `ids`
// (after BOS; four in a row are already far beyond chance in any payload) as 16-, 32- or 64-bit integers.
WireFindings Inspect(const std::vector<wire::Message>& messages, const MessageTypes& allowed,
                     const std::string& text, const std::vector<int>& ids, const at::Tensor& embeddings) {
  WireFindings findings;
  const auto text_bytes = std::as_bytes(std::span(text.data(), text.size()));
  std::vector<std::vector<std::byte>> id_encodings;
  for (size_t first = 1; first + 4 <= ids.size(); ++first) {
    const std::vector<int> run(ids.begin() + first, ids.begin() + first + 4);
    for (auto encoding : {AsBytes<int32_t>(run), AsBytes<uint16_t>(run), AsBytes<int64_t>(run)}) {
      id_encodings.push_back(std::move(encoding));
    }
  }
  const at::Tensor embedding_norms = embeddings.norm(2, 1);
  for (const wire::Message& message : messages) {
    const auto type = message.header.type;
    if (std::find(allowed.begin(), allowed.end(), type) == allowed.end()) {
      findings.leaks.push_back(std::string("message type ") + std::string(wire::MessageTypeName(type)));
    }
    if (Contains(message.payload, text_bytes)) findings.leaks.push_back("prompt text");
    for (const auto& encoding : id_encodings) {
      if (Contains(message.payload, encoding)) findings.leaks.push_back("token ids");
    }
    if (type != wire::MessageType::kActivations && type != wire::MessageType::kRows) continue;
    std::span<const std::byte> payload = message.payload;
    if (type == wire::MessageType::kRows) payload = payload.subspan(sizeof(uint32_t));  // compute_us first
    const wire::Header& h = message.header;
    if (h.cols != static_cast<uint32_t>(embeddings.size(1))) {
      findings.leaks.push_back("rows of width " + std::to_string(h.cols) + " (logits?)");
      continue;
    }
    auto values = DecodeActivations(
        payload, h.rows, h.cols,
        {static_cast<Precision>(h.precision), static_cast<Compression>(h.compression)}, h.rows * h.cols);
    EXPECT_TRUE(values.ok()) << values.status().ToString();
    if (!values.ok()) continue;
    const at::Tensor rows = at::from_blob(values->data(), {h.rows, h.cols}, at::kFloat);
    // Distance of every sent row to every embedding row, relative to the embedding row's norm.
    const at::Tensor relative = at::cdist(rows, embeddings) / embedding_norms.unsqueeze(0);
    findings.nearest_embedding = std::min(findings.nearest_embedding, relative.min().item<double>());
  }
  return findings;
}

// int8 rows are within absmax/254 of the float rows: an embedding row sent through it stays within a few %.
constexpr double kSameRowDistance = 0.05;

// With k >= 1 the tail sees only hidden states after block k: the prompt's text and ids never cross the
// wire, nor any embedding row, for the lossless and the int8 codec alike. (Inverting the hidden states is
// another matter: `tandem privacy-eval` measures what a tail that knows the weights recovers.)
TEST_F(RemoteTailTest, FromCutOneNoPromptTextTokenIdOrEmbeddingRowCrossesTheWire) {
  auto tokenizer = Tokenizer::Load(testing::Stories260KTokenizer().string(), 512);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  const std::string text = "Once upon a time, Lily found a red ball";
  const std::vector<int> prompt = tokenizer->Encode(text, /*add_bos=*/true, /*add_eos=*/false);
  ASSERT_GE(prompt.size(), 5u);
  std::vector<int> vocabulary(512);
  for (int id = 0; id < 512; ++id) vocabulary[id] = id;
  const at::Tensor embeddings = *model_.transformer->Embed(vocabulary);
  for (const char* codec_name : {"fp32", "int8"}) {
    for (int cut = 0; cut <= 4; ++cut) {
      InMemoryTail* channel = nullptr;
      auto connection = Connect(channel, hello_);
      ASSERT_NE(connection, nullptr);
      EdgeRunner edge(model_.transformer, cut, 32);
      {
        auto tail = RemoteTail::Open(*connection, {.cut = cut,
                                                   .codec = *ParseActivationCodec(codec_name),
                                                   .sampling = {0.0f, 1.0f, 0},
                                                   .max_positions = 32});
        ASSERT_TRUE(tail.ok());
        auto generation = Generate(edge, **tail, prompt, GenerateOptions{.steps = 32, .stop_tokens = {}});
        ASSERT_TRUE(generation.ok()) << generation.status().ToString();
      }  // CLOSE sent
      const WireFindings findings = Inspect(channel->sent, kEdgeSends, text, prompt, embeddings);
      const std::string where = std::string(codec_name) + " at cut " + std::to_string(cut);
      EXPECT_TRUE(findings.leaks.empty()) << where << ": " << findings.leaks.front();
      if (cut == 0) {
        // The inspection can fail: at cut 0 the rows are the embedding rows themselves.
        EXPECT_LT(findings.nearest_embedding, kSameRowDistance) << where;
      } else {
        EXPECT_GT(findings.nearest_embedding, kSameRowDistance) << where;
      }
      std::printf("%s: nearest embedding row at relative distance %.3f\n", where.c_str(),
                  findings.nearest_embedding);
    }
  }
}

// A real channel that records every message both ways: the transport seam, as the far side sees it.
class RecordingChannel final : public MessageChannel {
 public:
  explicit RecordingChannel(std::unique_ptr<MessageChannel> inner) : inner_(std::move(inner)) {}
  Status Send(const wire::Message& message) override {
    sent.push_back(message);
    return inner_->Send(message);
  }
  Result<wire::Message> Receive(std::chrono::milliseconds timeout) override {
    auto message = inner_->Receive(timeout);
    if (message.ok()) received.push_back(*message);
    return message;
  }
  const std::string& endpoint() const override { return inner_->endpoint(); }

  std::vector<wire::Message> sent, received;

 private:
  std::unique_ptr<MessageChannel> inner_;
};

// Private output against a real tail server: the edge runs [0,k) and [m,L) with the head, the tail [k,m).
// Nothing token-like crosses either way: the tail gets rows after block k-1 and returns rows after block
// m-1 (ROWS, dim wide), never a TOKEN or a logit; and the output is the monolithic run's, bit for bit
// with fp32.
TEST_F(RemoteTailTest, WithPrivateOutputNoTokenIdOrLogitComesBackFromARealTail) {
  cloud_tail::TailServerOptions options;
  options.bind = "tcp://127.0.0.1:0";
  options.security.insecure = true;
  auto server = cloud_tail::TailServer::Start(model_.transformer, model_.fingerprint, options,
                                              std::make_shared<prometheus::Registry>());
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  auto tokenizer = Tokenizer::Load(testing::Stories260KTokenizer().string(), 512);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  const std::string text = "Once upon a time, Lily found a red ball";
  const std::vector<int> prompt = tokenizer->Encode(text, /*add_bos=*/true, /*add_eos=*/false);
  std::vector<int> vocabulary(512);
  for (int id = 0; id < 512; ++id) vocabulary[id] = id;
  const at::Tensor embeddings = *model_.transformer->Embed(vocabulary);
  const GenerateOptions generate{.steps = 48, .stop_tokens = {}};
  const SamplingParams greedy{0.0f, 1.0f, 0};
  EdgeRunner whole(model_.transformer, 5, 48);
  LocalTail head_only(model_.transformer, 5, 48, greedy);
  const auto monolithic = Generate(whole, head_only, prompt, generate);
  ASSERT_TRUE(monolithic.ok());

  zmq::context_t context;
  for (const char* codec_name : {"fp32", "int8"}) {
    for (const auto& [cut, end] : {std::pair{1, 2}, {1, 5}, {2, 4}, {3, 5}}) {
      const std::string where =
          std::string(codec_name) + " at [" + std::to_string(cut) + ", " + std::to_string(end) + ")";
      auto dealer = ConnectDealer(context, (*server)->endpoint(), options.security, {});
      ASSERT_TRUE(dealer.ok()) << dealer.status().ToString();
      auto owned = std::make_unique<RecordingChannel>(std::move(*dealer));
      RecordingChannel* channel = owned.get();
      auto connection = CloudConnection::Handshake(std::move(owned), std::chrono::seconds(10), hello_);
      ASSERT_TRUE(connection.ok()) << connection.status().ToString();
      Result<Generation> generation = Internal("not run");
      {
        auto remote = RemoteMiddle::Open(**connection, {.cut = cut,
                                                        .codec = *ParseActivationCodec(codec_name),
                                                        .sampling = greedy,
                                                        .max_positions = 48,
                                                        .end_block = end});
        ASSERT_TRUE(remote.ok());
        EdgeRunner edge(model_.transformer, cut, 48);
        UShapedTail tail(std::move(*remote),
                         std::make_unique<LocalTail>(model_.transformer, end, 48, greedy));
        generation = Generate(edge, tail, prompt, generate);
        ASSERT_TRUE(generation.ok()) << where << ": " << generation.status().ToString();
        // The remote middle's statistics, read through the U-shaped tail.
        ASSERT_NE(tail.wire_stats(), nullptr);
        EXPECT_GT(tail.wire_stats()->returned_payload_bytes, 0) << where;
        EXPECT_EQ(tail.BytesSent(),
                  tail.wire_stats()->payload_bytes + tail.wire_stats()->returned_payload_bytes);
      }  // CLOSE sent
      if (std::string(codec_name) == "fp32") {
        EXPECT_EQ(generation->ids, monolithic->ids) << where;
      }
      const std::vector<int>& ids = generation->ids;
      const WireFindings sent = Inspect(channel->sent, kEdgeSends, text, ids, embeddings);
      const WireFindings back = Inspect(
          channel->received, {wire::MessageType::kHello, wire::MessageType::kRows}, text, ids, embeddings);
      EXPECT_TRUE(sent.leaks.empty()) << where << " (edge to tail): " << sent.leaks.front();
      EXPECT_TRUE(back.leaks.empty()) << where << " (tail to edge): " << back.leaks.front();
      EXPECT_GT(sent.nearest_embedding, kSameRowDistance) << where;
      EXPECT_GT(back.nearest_embedding, kSameRowDistance) << where;
      // Every step was answered with its rows: one ROWS per ACTIVATIONS.
      const auto count = [](const std::vector<wire::Message>& messages, wire::MessageType type) {
        return std::count_if(messages.begin(), messages.end(),
                             [type](const wire::Message& m) { return m.header.type == type; });
      };
      EXPECT_EQ(count(channel->received, wire::MessageType::kRows),
                count(channel->sent, wire::MessageType::kActivations))
          << where;
    }
  }
}

TEST_F(RemoteTailTest, TheCutLogHoldsEveryRowSentInItsChunks) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  const std::vector<int> prompt = {1, 403, 407, 261};
  EdgeRunner edge(model_.transformer, /*cut=*/2, 16);
  auto tail = RemoteTail::Open(*connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 16});
  ASSERT_TRUE(tail.ok());
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{.steps = 10, .stop_tokens = {}});
  ASSERT_TRUE(generation.ok());
  const CutLog& log = (*tail)->cut_log();
  EXPECT_EQ(log.positions(), 10);
  EXPECT_EQ(log.chunks(), (std::vector<int64_t>{4, 1, 1, 1, 1, 1, 1}));
  // The rows are not kept: recomputed from the prompt, as a replay does, they give the same first token.
  EdgeRunner recompute(model_.transformer, 2, 16);
  auto prefill = recompute.Forward(prompt);
  ASSERT_TRUE(prefill.ok());
  LocalTail replay(model_.transformer, 2, 16, {0.0f, 1.0f, 0});
  EXPECT_EQ(*replay.Forward(*prefill), generation->ids[4]);
  EXPECT_EQ((*tail)->stats().step_payload_bytes.size(), 7u);
  EXPECT_EQ((*tail)->stats().raw_bytes, 10 * 64 * 4);
}

TEST_F(RemoteTailTest, TheCutLogOfALongGenerationHoldsItsChunkingNotItsRows) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  const int seq_len = model_.checkpoint->config().seq_len;
  EdgeRunner edge(model_.transformer, /*cut=*/2, seq_len);
  auto tail = RemoteTail::Open(
      *connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = static_cast<uint32_t>(seq_len)});
  ASSERT_TRUE(tail.ok());
  const std::vector<int> prompt = {1, 403, 407, 261};
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{.steps = seq_len, .stop_tokens = {}});
  ASSERT_TRUE(generation.ok()) << generation.status().ToString();
  const CutLog& log = (*tail)->cut_log();
  EXPECT_EQ(log.positions(), seq_len);
  const int64_t rows_sent_bytes = log.positions() * model_.checkpoint->config().dim * int64_t{sizeof(float)};
  std::cout << "cut log of " << log.positions() << " positions in " << log.chunks().size()
            << " steps: " << log.bytes() << " bytes (the rows sent: " << rows_sent_bytes << " bytes)\n";
  // Its chunking only: at most a vector's doubling over one int64 per step, never a copy of the rows
  // (135168 bytes here when it kept them).
  EXPECT_LE(log.bytes(), int64_t{2 * sizeof(int64_t)} * static_cast<int64_t>(log.chunks().size()));
  EXPECT_LT(log.bytes(), rows_sent_bytes / 8);
}

TEST_F(RemoteTailTest, ASessionOpensAsATailOrAMiddleAndEitherReportsItsWireStats) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  const wire::OpenRequest tokens{.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 16};
  wire::OpenRequest rows = tokens;
  rows.end_block = 4;
  EXPECT_EQ(RemoteTail::Open(*connection, rows).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RemoteMiddle::Open(*connection, tokens).status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(channel->sent.size() == 1) << "a refused Open sends nothing past HELLO";

  auto tail = OpenRemoteSplit(*connection, tokens, model_.transformer);
  ASSERT_TRUE(tail.ok());
  EdgeRunner edge(model_.transformer, 2, 16);
  const std::vector<int> prompt = {1, 403, 407, 261};
  ASSERT_TRUE(Generate(edge, **tail, prompt, GenerateOptions{.steps = 8, .stop_tokens = {}}).ok());
  const WireStats* stats = (*tail)->wire_stats();
  ASSERT_NE(stats, nullptr);
  EXPECT_EQ(stats->raw_bytes, 8 * 64 * 4);
  EXPECT_EQ(stats->step_payload_bytes.size(), 5u);
  EXPECT_EQ(stats->returned_payload_bytes, 0);

  auto u_shaped = OpenRemoteSplit(*connection, rows, model_.transformer);
  ASSERT_TRUE(u_shaped.ok());
  EXPECT_NE((*u_shaped)->wire_stats(), nullptr);
  LocalTail local(model_.transformer, 2, 16, {0.0f, 1.0f, 0});
  EXPECT_EQ(local.wire_stats(), nullptr);
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
  auto generation = Generate(edge, **tail, prompt, GenerateOptions{.steps = 9, .stop_tokens = {}});
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

TEST_F(RemoteTailTest, AStepWhoseReplyIsLostIsSentAgainAndAnsweredOnce) {
  std::vector<int> expected;
  for (const int lose : {0, 1, 2}) {
    SCOPED_TRACE(std::to_string(lose) + " replies lost");
    InMemoryTail* channel = nullptr;
    auto connection = Connect(channel, hello_);
    ASSERT_NE(connection, nullptr);
    connection->set_timeout(std::chrono::milliseconds(2000));
    connection->set_resends(std::chrono::milliseconds(5), /*max=*/2);
    auto tail = RemoteTail::Open(*connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 8});
    ASSERT_TRUE(tail.ok());
    EdgeRunner edge(model_.transformer, 2, 8);
    std::vector<int> tokens;
    channel->replies_to_lose = lose;  // the prompt's reply (and its first resend's, for 2)
    for (const std::vector<int>& step : {std::vector<int>{1, 403, 407}, std::vector<int>{11}}) {
      auto token = (*tail)->Forward(*edge.Forward(step));
      ASSERT_TRUE(token.ok()) << token.status().ToString();
      tokens.push_back(*token);
    }
    if (lose == 0) expected = tokens;
    EXPECT_EQ(tokens, expected) << "the resend changed the answer";
    EXPECT_EQ((*tail)->stats().resends, lose);
    // Each resend is the step's own frame, byte for byte (the tail tells resends by their content).
    std::vector<const wire::Message*> activations;
    for (const wire::Message& sent : channel->sent) {
      if (sent.header.type == wire::MessageType::kActivations) activations.push_back(&sent);
    }
    ASSERT_EQ(activations.size(), static_cast<size_t>(2 + lose));
    for (int i = 1; i <= lose; ++i) {
      EXPECT_EQ(activations[static_cast<size_t>(i)]->header.sequence, 0u);
      EXPECT_EQ(activations[static_cast<size_t>(i)]->payload, activations[0]->payload);
    }
  }
}

TEST_F(RemoteTailTest, AStepGivesUpOnceResendsRunOutOrTheLinkIsDeclaredDown) {
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  channel->silent = true;
  connection->set_timeout(std::chrono::milliseconds(200));
  connection->set_resends(std::chrono::milliseconds(5), /*max=*/2);
  EdgeRunner edge(model_.transformer, 2, 8);
  {
    auto tail = RemoteTail::Open(*connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 8});
    ASSERT_TRUE(tail.ok());
    auto result = (*tail)->Forward(*edge.Forward(std::vector<int>{1}));
    EXPECT_EQ(result.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_NE(result.status().message().find("sent 3 times"), std::string::npos) << result.status().message();
    EXPECT_EQ((*tail)->stats().resends, 2);
  }
  // The link monitor has given the tail up: the wait ends long before the 10 s timeout.
  connection->set_timeout(std::chrono::milliseconds(10000));
  connection->set_liveness([] { return false; });
  auto tail = RemoteTail::Open(*connection, {.cut = 2, .sampling = {0.0f, 1.0f, 0}, .max_positions = 8});
  ASSERT_TRUE(tail.ok());
  const auto start = std::chrono::steady_clock::now();
  auto result = (*tail)->Forward(*EdgeRunner(model_.transformer, 2, 8).Forward(std::vector<int>{1}));
  EXPECT_EQ(result.status().code(), StatusCode::kUnavailable) << result.status().ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST_F(RemoteTailTest, AnotherModelIsRefusedAtHandshake) {
  wire::Hello other = hello_;
  other.fingerprint ^= 1;
  auto channel = std::make_unique<InMemoryTail>(model_.transformer, other);
  auto connection = CloudConnection::Handshake(std::move(channel), std::chrono::milliseconds(100), hello_);
  ASSERT_FALSE(connection.ok());
  EXPECT_NE(connection.status().message().find("another model"), std::string::npos);
}

// Moving the split mid-generation (remote cuts, all-local, back) replays the steps on the new side: with
// fp32 the output is the unsplit run's, token for token, sampled as well as greedy.
TEST_F(RemoteTailTest, MovingTheSplitMidGenerationKeepsTheOutput) {
  const int layers = model_.transformer->n_layers();
  const std::vector<int> prompt = {1, 403, 407, 261, 378, 300};
  constexpr int kSteps = 60;
  for (const float temperature : {0.0f, 1.0f}) {
    const SamplingParams sampling{temperature, 0.9f, 1234};
    EdgeRunner whole(model_.transformer, layers, kSteps);
    LocalTail head(model_.transformer, layers, kSteps, sampling);
    auto reference = Generate(whole, head, prompt, GenerateOptions{.steps = kSteps, .stop_tokens = {}});
    ASSERT_TRUE(reference.ok());

    InMemoryTail* channel = nullptr;
    auto connection = Connect(channel, hello_);
    ASSERT_NE(connection, nullptr);
    MovableSplit split(model_.transformer, kSteps, [&](const scheduler::Candidate& choice) {
      if (choice.local()) {
        return Result<std::unique_ptr<TailRunner>>(
            std::make_unique<LocalTail>(model_.transformer, layers, kSteps, sampling));
      }
      auto tail = RemoteTail::Open(
          *connection,
          {.cut = choice.cut, .sampling = sampling, .max_positions = static_cast<uint32_t>(kSteps)});
      if (!tail.ok()) return Result<std::unique_ptr<TailRunner>>(tail.status());
      return Result<std::unique_ptr<TailRunner>>(std::unique_ptr<TailRunner>(std::move(*tail)));
    });
    ASSERT_TRUE(split.Start({.tail = 0, .cut = 1}).ok());
    // After these many generated tokens, the split moves to these cuts (-1: all-local).
    const std::vector<std::pair<int, int>> moves = {{5, 3}, {12, -1}, {20, 0}, {33, 4}};
    size_t next = 0;
    int generated = 0;
    const ModelStep step = [&](std::span<const int> tokens) -> Result<int> {
      if (next < moves.size() && generated >= moves[next].first) {
        const int cut = moves[next++].second;
        TANDEM_RETURN_IF_ERROR(
            split.MoveTo(cut < 0 ? scheduler::Candidate{} : scheduler::Candidate{.tail = 0, .cut = cut}));
      }
      TANDEM_ASSIGN_OR_RETURN(const VerifyOutcome outcome, split.Step(tokens));
      return outcome.tokens.back();
    };
    auto moved =
        Generate(step, model_.checkpoint->config().seq_len, prompt,
                 GenerateOptions{.steps = kSteps, .stop_tokens = {}}, [&](int) { return ++generated, true; });
    ASSERT_TRUE(moved.ok()) << moved.status().ToString();
    EXPECT_EQ(split.moves(), 4);
    EXPECT_EQ(moved->ids, reference->ids) << "temperature " << temperature;
  }
}

// A tail whose replay does not reproduce the tokens already produced is refused, and the split stays
// where it was.
TEST_F(RemoteTailTest, AMoveWhoseReplayDivergesIsRefused) {
  const int layers = model_.transformer->n_layers();
  const SamplingParams greedy{0.0f, 1.0f, 0};
  InMemoryTail* channel = nullptr;
  auto connection = Connect(channel, hello_);
  ASSERT_NE(connection, nullptr);
  MovableSplit split(model_.transformer, 16, [&](const scheduler::Candidate& choice) {
    if (choice.local()) {
      return Result<std::unique_ptr<TailRunner>>(
          std::make_unique<LocalTail>(model_.transformer, layers, 16, greedy));
    }
    auto tail = RemoteTail::Open(*connection, {.cut = choice.cut, .sampling = greedy, .max_positions = 16});
    return Result<std::unique_ptr<TailRunner>>(std::unique_ptr<TailRunner>(std::move(*tail)));
  });
  ASSERT_TRUE(split.Start({}).ok());
  ASSERT_TRUE(split.Step(std::vector<int>{1, 403, 407}).ok());
  channel->token_override = 7;  // the "new" tail answers something else
  const Status moved = split.MoveTo({.tail = 0, .cut = 2});
  EXPECT_EQ(moved.code(), StatusCode::kInternal);
  EXPECT_NE(moved.message().find("diverged at step 0"), std::string::npos) << moved.message();
  EXPECT_TRUE(split.choice().local());
  EXPECT_TRUE(split.Step(std::vector<int>{5}).ok());
}

}  // namespace
}  // namespace tandem::edge_agent
