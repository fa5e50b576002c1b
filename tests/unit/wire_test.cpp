// The wire protocol's framing: every message round-trips, and every malformed header or payload is refused
// with a message saying what is wrong.
#include "tandem/wire/protocol.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <span>
#include <string>
#include <vector>

namespace tandem::wire {
namespace {

std::vector<std::byte> Bytes(std::string_view text) {
  const auto* data = reinterpret_cast<const std::byte*>(text.data());
  return {data, data + text.size()};
}

TEST(WireHeaderTest, RoundTripsEveryField) {
  const Header header{.version = kProtocolVersion,
                      .type = MessageType::kActivations,
                      .flags = 3,
                      .session = 0x0102030405060708,
                      .sequence = 99,
                      .cut = 4,
                      .precision = 3,
                      .compression = 2,
                      .rows = 17,
                      .cols = 768,
                      .position = 123456};
  const HeaderBytes bytes = SerializeHeader(header);
  // Little-endian magic "TNDM" first, the version next.
  EXPECT_EQ(std::memcmp(bytes.data(), "TNDM", 4), 0);
  EXPECT_EQ(static_cast<uint8_t>(bytes[4]), kProtocolVersion);
  auto parsed = ParseHeader(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->type, header.type);
  EXPECT_EQ(parsed->flags, header.flags);
  EXPECT_EQ(parsed->session, header.session);
  EXPECT_EQ(parsed->sequence, header.sequence);
  EXPECT_EQ(parsed->cut, header.cut);
  EXPECT_EQ(parsed->precision, header.precision);
  EXPECT_EQ(parsed->compression, header.compression);
  EXPECT_EQ(parsed->rows, header.rows);
  EXPECT_EQ(parsed->cols, header.cols);
  EXPECT_EQ(parsed->position, header.position);
}

TEST(WireHeaderTest, RefusesWrongSizeMagicAndType) {
  HeaderBytes bytes = SerializeHeader({.type = MessageType::kPing});
  for (size_t size : {size_t{0}, size_t{39}, size_t{41}}) {
    std::vector<std::byte> resized(bytes.begin(), bytes.end());
    resized.resize(size);
    EXPECT_FALSE(ParseHeader(resized).ok()) << size;
  }
  HeaderBytes bad_magic = bytes;
  bad_magic[0] = std::byte{'X'};
  EXPECT_NE(ParseHeader(bad_magic).status().message().find("magic"), std::string::npos);
  for (uint8_t type : {0, 13, 255}) {
    HeaderBytes bad_type = bytes;
    bad_type[6] = std::byte{type};
    EXPECT_NE(ParseHeader(bad_type).status().message().find("unknown message type"), std::string::npos);
  }
  // Another version parses, so that the receiver can answer it with version_mismatch.
  HeaderBytes other_version = bytes;
  other_version[4] = std::byte{2};
  auto parsed = ParseHeader(other_version);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->version, 2);
}

TEST(WireMessageTest, HelloRoundTrips) {
  ModelConfig config;
  config.dim = 64;
  config.n_layers = 5;
  config.vocab_size = 512;
  config.seq_len = 512;
  Hello hello = DescribeModel(config, 0xfeedbeef);
  hello.max_rows = 512;
  hello.max_sessions = 8;
  hello.max_payload_bytes = 1 << 20;
  auto parsed = ParseHello(MakeHello(hello));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->fingerprint, 0xfeedbeefu);
  EXPECT_EQ(parsed->n_layers, 5u);
  EXPECT_EQ(parsed->dim, 64u);
  EXPECT_EQ(parsed->max_sessions, 8u);
  EXPECT_EQ(parsed->max_payload_bytes, 1u << 20);
  EXPECT_EQ(parsed->codecs, AllActivationCodecs());
  EXPECT_TRUE(parsed->HoldsEveryBlock());

  // A tail holding blocks [1, 3) only says so, with their fingerprints; a range outside the model is refused.
  hello.held_first = 1;
  hello.held_last = 3;
  hello.block_fingerprints = {0, 11, 22, 0, 0, 0};
  parsed = ParseHello(MakeHello(hello));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_FALSE(parsed->HoldsEveryBlock());
  EXPECT_EQ(parsed->held_first, 1u);
  EXPECT_EQ(parsed->held_last, 3u);
  EXPECT_EQ(parsed->block_fingerprints, hello.block_fingerprints);
  Message short_list = MakeHello(hello);
  short_list.payload.pop_back();
  EXPECT_FALSE(ParseHello(short_list).ok());
  for (const auto& [first, last] : {std::pair{3u, 3u}, {4u, 2u}, {0u, 6u}}) {
    hello.held_first = first;
    hello.held_last = last;
    EXPECT_FALSE(ParseHello(MakeHello(hello)).ok()) << first << ":" << last;
  }
}

TEST(WireMessageTest, HelloPayloadsThatDoNotAddUpAreRefused) {
  Message hello = MakeHello(DescribeModel(ModelConfig{}, 1));
  for (size_t cut = 0; cut < hello.payload.size(); ++cut) {
    Message truncated = hello;
    truncated.payload.resize(cut);
    EXPECT_FALSE(ParseHello(truncated).ok()) << cut;
  }
  Message unknown_codec = hello;
  constexpr size_t kHeldBytes = 10;  // held_first, held_last, no block fingerprints after the codecs
  unknown_codec.payload[unknown_codec.payload.size() - kHeldBytes - 1] = std::byte{9};
  EXPECT_FALSE(ParseHello(unknown_codec).ok());
  Message not_hello = hello;
  not_hello.header.type = MessageType::kOpen;
  EXPECT_FALSE(ParseHello(not_hello).ok());
}

TEST(WireMessageTest, OpenRoundTripsAndValidatesSampling) {
  const OpenRequest open{.session = 7,
                         .cut = 3,
                         .codec = {Precision::kInt4, Compression::kZstd},
                         .sampling = {0.7f, 0.95f, 1234},
                         .top_logprobs = 5,
                         .max_positions = 300};
  auto parsed = ParseOpen(MakeOpen(open));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->session, 7u);
  EXPECT_EQ(parsed->cut, 3);
  EXPECT_EQ(parsed->codec, open.codec);
  EXPECT_EQ(parsed->sampling.temperature, 0.7f);
  EXPECT_EQ(parsed->sampling.seed, 1234u);
  EXPECT_EQ(parsed->top_logprobs, 5);
  EXPECT_EQ(parsed->max_positions, 300u);
  EXPECT_FALSE(parsed->private_output());
  OpenRequest private_output = open;
  private_output.end_block = 4;
  parsed = ParseOpen(MakeOpen(private_output));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->end_block, 4);
  EXPECT_TRUE(parsed->private_output());

  OpenRequest bad = open;
  bad.sampling.temperature = std::nanf("");
  EXPECT_FALSE(ParseOpen(MakeOpen(bad)).ok());
  bad = open;
  bad.top_logprobs = kMaxTopLogprobs + 1;
  EXPECT_FALSE(ParseOpen(MakeOpen(bad)).ok());
  Message trailing = MakeOpen(open);
  trailing.payload.push_back(std::byte{0});
  EXPECT_NE(ParseOpen(trailing).status().message().find("trailing"), std::string::npos);
  Message bad_codec = MakeOpen(open);
  bad_codec.header.precision = 42;
  EXPECT_FALSE(ParseOpen(bad_codec).ok());
}

TEST(WireMessageTest, TokenRoundTripsWithTopLogprobs) {
  const TokenReply token{.session = 3,
                         .sequence = 8,
                         .token = 411,
                         .compute_us = 250,
                         .top_logprobs = {{411, -0.1f}, {7, -2.5f}}};
  auto parsed = ParseToken(MakeToken(token));
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->session, 3u);
  EXPECT_EQ(parsed->sequence, 8u);
  EXPECT_EQ(parsed->token, 411);
  EXPECT_EQ(parsed->compute_us, 250u);
  EXPECT_EQ(parsed->top_logprobs, token.top_logprobs);
  Message lying_count = MakeToken(token);
  lying_count.payload[8] = std::byte{3};  // says three alternatives, carries two
  EXPECT_FALSE(ParseToken(lying_count).ok());
}

TEST(WireMessageTest, RowsRoundTripAndRefuseWhatIsNotThere) {
  const RowsReply rows{.session = 9,
                       .sequence = 4,
                       .position = 17,
                       .rows = 2,
                       .cols = 64,
                       .codec = {Precision::kInt8, Compression::kLz4},
                       .compute_us = 321,
                       .payload = std::vector<std::byte>(40, std::byte{7})};
  const Message message = MakeRows(rows);
  EXPECT_EQ(message.header.type, MessageType::kRows);
  auto parsed = ParseRows(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->session, 9u);
  EXPECT_EQ(parsed->sequence, 4u);
  EXPECT_EQ(parsed->position, 17u);
  EXPECT_EQ(parsed->rows, 2u);
  EXPECT_EQ(parsed->cols, 64u);
  EXPECT_EQ(parsed->codec, rows.codec);
  EXPECT_EQ(parsed->compute_us, 321u);
  EXPECT_EQ(parsed->payload, rows.payload);

  Message truncated = message;
  truncated.payload.resize(3);  // not even the compute time
  EXPECT_FALSE(ParseRows(truncated).ok());
  Message empty = message;
  empty.header.rows = 0;
  EXPECT_FALSE(ParseRows(empty).ok());
  Message bad_codec = message;
  bad_codec.header.precision = 77;
  EXPECT_FALSE(ParseRows(bad_codec).ok());
  Message token = message;
  token.header.type = MessageType::kToken;
  EXPECT_FALSE(ParseRows(token).ok());
}

TEST(WireMessageTest, VerifyRoundTripsWithItsDraftBeforeTheRows) {
  const std::vector<int> draft = {17, 0, 511};
  const std::vector<std::byte> rows(4 * 64 * 4, std::byte{9});
  const Message message =
      MakeVerify(5, 6, 30, 4, 64, {Precision::kFp32, Compression::kLz4}, Compression::kNone, draft, rows);
  EXPECT_EQ(message.header.type, MessageType::kVerify);
  EXPECT_EQ(MessageTypeName(message.header.type), "VERIFY");
  EXPECT_EQ(message.header.session, 5u);
  EXPECT_EQ(message.header.sequence, 6u);
  EXPECT_EQ(message.header.position, 30u);
  EXPECT_EQ(message.header.rows, 4u);
  EXPECT_EQ(message.header.cols, 64u);
  EXPECT_EQ(message.header.compression, static_cast<uint8_t>(Compression::kNone));
  EXPECT_EQ(message.payload.size(), 2 + 3 * 4 + rows.size());
  auto parsed = ParseVerify(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->draft, draft);
  EXPECT_EQ(std::vector<std::byte>(parsed->activations.begin(), parsed->activations.end()), rows);
  // A view into the message, not a copy.
  EXPECT_EQ(parsed->activations.data(), message.payload.data() + 2 + 3 * 4);
  Message activations = message;
  activations.header.type = MessageType::kActivations;
  EXPECT_NE(ParseVerify(activations).status().message().find("expected a VERIFY message, got ACTIVATIONS"),
            std::string::npos);
}

TEST(WireMessageTest, VerifyRefusesDraftCountsItCannotHoldAndTruncatedLists) {
  const auto verify = [](uint32_t rows, std::span<const int> draft) {
    return MakeVerify(1, 0, 0, rows, 64, {}, Compression::kNone, draft, {});
  };
  const auto refusal = [](const Message& message) { return ParseVerify(message).status().message(); };
  EXPECT_EQ(refusal(verify(2, {})), "VERIFY drafts 0 tokens; it takes 1 to 64");
  const std::vector<int> most(kMaxDraftTokens, 3);
  EXPECT_TRUE(ParseVerify(verify(kMaxDraftTokens + 1, most)).ok());
  const std::vector<int> too_many(kMaxDraftTokens + 1, 3);
  EXPECT_EQ(refusal(verify(100, too_many)), "VERIFY drafts 65 tokens; it takes 1 to 64");
  const std::vector<int> three = {4, 5, 6};
  EXPECT_EQ(refusal(verify(3, three)),
            "VERIFY drafts 3 tokens in 3 rows: a row of the session's own must "
            "come first");
  EXPECT_FALSE(ParseVerify(verify(2, three)).ok());
  EXPECT_TRUE(ParseVerify(verify(4, three)).ok());
  Message truncated = verify(4, three);
  truncated.payload.pop_back();
  EXPECT_EQ(refusal(truncated), "VERIFY draft list is truncated");
  truncated.payload.resize(1);
  EXPECT_NE(refusal(truncated).find("truncated"), std::string::npos);
}

TEST(WireMessageTest, VerdictRoundTripsAndRefusesWhatDoesNotAddUp) {
  const VerdictReply verdict{.session = 4, .sequence = 9, .kept = 2, .tokens = {7, 8, 300}, .compute_us = 77};
  const Message message = MakeVerdict(verdict);
  EXPECT_EQ(message.header.type, MessageType::kVerdict);
  EXPECT_EQ(MessageTypeName(message.header.type), "VERDICT");
  EXPECT_EQ(message.payload.size(), 2 + 4 + 3 * 4u);
  auto parsed = ParseVerdict(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->session, 4u);
  EXPECT_EQ(parsed->sequence, 9u);
  EXPECT_EQ(parsed->kept, 2);
  EXPECT_EQ(parsed->tokens, verdict.tokens);
  EXPECT_EQ(parsed->compute_us, 77u);
  // Nothing kept: the one token sampled instead of the first draft.
  auto none = ParseVerdict(MakeVerdict({.kept = 0, .tokens = {42}}));
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->tokens, std::vector<int>{42});

  VerdictReply too_many_kept{.kept = kMaxDraftTokens + 1};
  too_many_kept.tokens.assign(kMaxDraftTokens + 2, 1);
  EXPECT_EQ(ParseVerdict(MakeVerdict(too_many_kept)).status().message(),
            "VERDICT keeps 65 drafts; a VERIFY has at most 64");
  VerdictReply short_list = verdict;
  short_list.tokens.pop_back();
  EXPECT_EQ(ParseVerdict(MakeVerdict(short_list)).status().message(),
            "VERDICT carries fewer than kept + 1 = 3 tokens");
  VerdictReply long_list = verdict;
  long_list.tokens.push_back(9);
  EXPECT_NE(ParseVerdict(MakeVerdict(long_list)).status().message().find("4 unexpected trailing bytes"),
            std::string::npos);
  Message trailing = message;
  trailing.payload.push_back(std::byte{0});
  EXPECT_NE(ParseVerdict(trailing).status().message().find("trailing"), std::string::npos);
  Message truncated = message;
  truncated.payload.resize(5);  // not even compute_us
  EXPECT_NE(ParseVerdict(truncated).status().message().find("truncated"), std::string::npos);
  Message token = message;
  token.header.type = MessageType::kToken;
  EXPECT_FALSE(ParseVerdict(token).ok());
}

TEST(WireMessageTest, ErrorRoundTripsAndMapsToStatus) {
  const ErrorReply error{.session = 5,
                         .sequence = 2,
                         .code = ErrorCode::kOverloaded,
                         .retryable = true,
                         .message = "KV-cache memory is full"};
  auto parsed = ParseError(MakeError(error));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->code, ErrorCode::kOverloaded);
  EXPECT_TRUE(parsed->retryable);
  EXPECT_EQ(parsed->message, error.message);
  const Status status = ErrorToStatus(*parsed);
  EXPECT_EQ(status.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(status.message().find("overloaded"), std::string::npos);
  // Long texts are cut to the limit on the way out and refused beyond it on the way in.
  ErrorReply long_error = error;
  long_error.message.assign(5000, 'x');
  EXPECT_EQ(ParseError(MakeError(long_error))->message.size(), kMaxErrorMessageBytes);
  Message too_long = MakeError(error);
  too_long.payload = Bytes(std::string(2 + kMaxErrorMessageBytes + 1, 'x'));
  EXPECT_FALSE(ParseError(too_long).ok());
}

TEST(WireMessageTest, PingPayloadIsBounded) {
  const std::vector<std::byte> big(200, std::byte{1});
  EXPECT_EQ(MakePing(big).payload.size(), kMaxPingBytes);
  EXPECT_EQ(MakeClose(9).header.session, 9u);
}

TEST(WireMessageTest, StatsRoundTripsWithTheComputeProfile) {
  TailStats stats{
      .workers = 2, .sessions = 5, .queue_depth = 3, .utilization = 0.25f, .free_kv_bytes = 1 << 20};
  stats.profile.decode_block_ms = {0.5, 0.25, 0.125};
  stats.profile.prefill = {{16, {4, 2, 1}}, {64, {16, 8, 4}}};
  stats.profile.head_ms = 0.75;
  const Message message = MakeStats(stats, 42);
  EXPECT_EQ(message.header.sequence, 42u);
  auto parsed = ParseStats(message);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->workers, 2u);
  EXPECT_EQ(parsed->sessions, 5u);
  EXPECT_EQ(parsed->queue_depth, 3u);
  EXPECT_EQ(parsed->utilization, 0.25f);
  EXPECT_EQ(parsed->free_kv_bytes, 1 << 20);
  EXPECT_EQ(parsed->profile.decode_block_ms, stats.profile.decode_block_ms);
  ASSERT_EQ(parsed->profile.prefill.size(), 2u);
  EXPECT_EQ(parsed->profile.prefill[1].tokens, 64);
  EXPECT_EQ(parsed->profile.prefill[1].block_ms, stats.profile.prefill[1].block_ms);
  EXPECT_EQ(parsed->profile.head_ms, 0.75);
  EXPECT_TRUE(MakeStatsRequest(7).payload.empty());
}

TEST(WireMessageTest, StatsThatDoNotAddUpAreRefused) {
  TailStats stats{.workers = 1};
  stats.profile.decode_block_ms = {0.5, 0.25};
  const Message good = MakeStats(stats, 0);
  Message truncated = good;
  truncated.payload.pop_back();
  Message trailing = good;
  trailing.payload.push_back(std::byte{0});
  for (const Message& bad : {truncated, trailing}) {
    auto parsed = ParseStats(bad);
    ASSERT_FALSE(parsed.ok());
    EXPECT_NE(parsed.status().message().find("STATS"), std::string::npos) << parsed.status().message();
  }
  for (const double bad_time : {-1.0, std::nan("")}) {
    TailStats negative = stats;
    negative.profile.decode_block_ms[1] = bad_time;
    EXPECT_FALSE(ParseStats(MakeStats(negative, 0)).ok());
  }
  TailStats busy = stats;
  busy.utilization = 1.5f;
  EXPECT_FALSE(ParseStats(MakeStats(busy, 0)).ok());
  EXPECT_FALSE(ParseStats(MakeClose(1)).ok());
}

}  // namespace
}  // namespace tandem::wire
