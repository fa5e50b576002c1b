// A real tandem-cloud (stories260K, CURVE) against hostile peers speaking raw ZeroMQ: clients it must not
// admit, malformed frames, limit abuse and replays. Every refusal is checked for its exact ERROR code, and
// afterwards the tail still serves an honest edge and stops cleanly on SIGTERM.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <zmq.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cloud_tail_process.hpp"
#include "http_client.hpp"
#include "raw_wire_client.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/protocol.hpp"
#include "tandem/wire/transport.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using namespace std::chrono_literals;
using testing::Bytes;
using testing::CloudTailProcess;
using testing::HeaderFrame;
using testing::kReplyTimeout;
using testing::kSilence;
using testing::RawClient;
using wire::ErrorCode;
using wire::MessageType;

constexpr int kMaxSessions = 8;          // --max-sessions
constexpr size_t kMaxMessage = 1 << 20;  // --max-message-mb 1
constexpr uint32_t kDim = 64;            // stories260K
constexpr int kVocab = testing::kStories260KVocab;
constexpr uint32_t kSeqLen = 512;

Bytes AsBytes(const void* data, size_t size) {
  const auto* begin = static_cast<const std::byte*>(data);
  return Bytes(begin, begin + size);
}

// `rows` x 64 small finite values, fp32-encoded.
Bytes Fp32Rows(uint32_t rows) {
  std::vector<float> values(size_t{rows} * kDim);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = 0.05f * static_cast<float>(static_cast<int>(i % 17) - 8);
  auto encoded = EncodeActivations(values, rows, kDim, {Precision::kFp32, Compression::kNone});
  EXPECT_TRUE(encoded.ok()) << encoded.status().ToString();
  return encoded.ok() ? encoded->payload : Bytes{};
}

wire::Message Activations(uint64_t session, uint64_t sequence, uint32_t position, uint32_t rows) {
  return wire::MakeActivations(session, sequence, position, rows, kDim, {}, Compression::kNone,
                               Fp32Rows(rows));
}

wire::Message Open(uint64_t session, int cut = 2, uint32_t max_positions = 32, ActivationCodec codec = {}) {
  wire::OpenRequest open{.session = session, .cut = cut, .codec = codec, .max_positions = max_positions};
  open.sampling.temperature = 0.0f;  // greedy
  open.sampling.top_p = 1.0f;
  return wire::MakeOpen(open);
}

double OpenSessionsGauge(const std::string& http_address) {
  return testing::MetricValue(http_address, "tandem_cloud_sessions");
}

// A TCP relay for one connection, standing in for a man in the middle: forwards both ways and, when told,
// flips the lowest bit of the last byte of the next chunk the client sends.
class ByteFlippingRelay {
 public:
  explicit ByteFlippingRelay(const std::string& target_endpoint) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof(address);
    bind(listener_, reinterpret_cast<sockaddr*>(&address), length);
    listen(listener_, 1);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length);
    port_ = ntohs(address.sin_port);
    target_port_ = std::stoi(target_endpoint.substr(target_endpoint.rfind(':') + 1));
    accepter_ = std::thread([this] { Run(); });
  }
  ~ByteFlippingRelay() {
    shutdown(listener_, SHUT_RDWR);
    close(listener_);
    for (const int fd : {client_.load(), server_.load()}) {
      if (fd >= 0) shutdown(fd, SHUT_RDWR);
    }
    accepter_.join();
    for (auto& pump : pumps_) pump.join();
    for (const int fd : {client_.load(), server_.load()}) {
      if (fd >= 0) close(fd);
    }
  }
  std::string endpoint() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  void FlipNextByte() { flip_ = true; }
  bool flipped() const { return flipped_; }

 private:
  void Run() {
    const int client = accept(listener_, nullptr, nullptr);
    if (client < 0) return;
    const int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in target{};
    target.sin_family = AF_INET;
    target.sin_port = htons(static_cast<uint16_t>(target_port_));
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(server, reinterpret_cast<sockaddr*>(&target), sizeof(target)) != 0) {
      close(client);
      close(server);
      return;
    }
    client_ = client;
    server_ = server;
    pumps_.emplace_back([this, client, server] { Pump(client, server, /*may_flip=*/true); });
    pumps_.emplace_back([this, client, server] { Pump(server, client, /*may_flip=*/false); });
  }
  void Pump(int from, int to, bool may_flip) {
    char buffer[65536];
    ssize_t got = 0;
    while ((got = recv(from, buffer, sizeof(buffer), 0)) > 0) {
      if (may_flip && flip_.exchange(false)) {
        buffer[got - 1] ^= 1;
        flipped_ = true;
      }
      if (send(to, buffer, static_cast<size_t>(got), MSG_NOSIGNAL) != got) break;
    }
    shutdown(to, SHUT_WR);
  }

  int listener_ = -1;
  int port_ = 0;
  int target_port_ = 0;
  std::atomic<int> client_{-1}, server_{-1};
  std::atomic<bool> flip_{false}, flipped_{false};
  std::thread accepter_;
  std::vector<std::thread> pumps_;
};

class CloudHostilePeersTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (testing::SharedDir().empty()) return;
    tail_ = new CloudTailProcess(
        {"--max-sessions", std::to_string(kMaxSessions), "--max-message-mb", "1", "--idle-timeout-s", "30"});
    auto checkpoint = Checkpoint::Load(testing::Stories260KModel().string());
    if (checkpoint.ok())
      hello_ = new wire::Hello(wire::DescribeModel((*checkpoint)->config(), (*checkpoint)->Fingerprint()));
    context_ = new zmq::context_t();
  }
  static void TearDownTestSuite() {
    delete context_;  // every RawClient is gone by now
    context_ = nullptr;
    delete tail_;  // SIGTERM, if the last test did not stop it already
    tail_ = nullptr;
    delete hello_;
    hello_ = nullptr;
  }
  void SetUp() override {
    if (tail_ == nullptr) GTEST_SKIP() << "shared folder not found";
    ASSERT_TRUE(tail_->started()) << tail_->log();
    ASSERT_NE(hello_, nullptr) << "cannot load stories260K";
    ASSERT_EQ(hello_->dim, kDim);
    ASSERT_EQ(hello_->n_layers, 5u);
    ASSERT_EQ(hello_->vocab_size, static_cast<uint32_t>(kVocab));
    ASSERT_EQ(hello_->seq_len, kSeqLen);
  }

  static SocketSecurity EdgeSecurity() {
    return {.own_keys = tail_->edge_keys(), .server_public_key = tail_->cloud_keys().public_key};
  }
  static std::unique_ptr<RawClient> Connect(const SocketSecurity& security, SocketLimits limits = {}) {
    return std::make_unique<RawClient>(*context_, tail_->endpoint(), security, limits);
  }
  // An allow-listed client past HELLO.
  static std::unique_ptr<RawClient> Honest(SocketLimits limits = {}) {
    auto client = Connect(EdgeSecurity(), limits);
    Handshake(*client);
    return client;
  }
  static void Handshake(RawClient& client) {
    client.Send(wire::MakeHello(*hello_));
    const auto reply = client.Receive(kReplyTimeout);
    ASSERT_TRUE(reply.has_value()) << "no HELLO reply\n" << tail_->log();
    ASSERT_EQ(reply->header.type, MessageType::kHello) << wire::MessageTypeName(reply->header.type);
    auto hello = wire::ParseHello(*reply);
    ASSERT_TRUE(hello.ok()) << hello.status().ToString();
    EXPECT_EQ(hello->fingerprint, hello_->fingerprint);
    EXPECT_EQ(hello->max_sessions, static_cast<uint32_t>(kMaxSessions));
    EXPECT_EQ(hello->max_payload_bytes, kMaxMessage);
  }
  // OPEN (silent on success), then one ACTIVATIONS of `rows` rows that must come back as a TOKEN.
  static void OpenAndStep(RawClient& client, uint64_t session, uint32_t rows = 3) {
    client.Send(Open(session));
    client.Send(Activations(session, 0, 0, rows));
    client.ExpectToken(session, 0);
  }

  static CloudTailProcess* tail_;
  static wire::Hello* hello_;
  static zmq::context_t* context_;
};

CloudTailProcess* CloudHostilePeersTest::tail_ = nullptr;
wire::Hello* CloudHostilePeersTest::hello_ = nullptr;
zmq::context_t* CloudHostilePeersTest::context_ = nullptr;

// ---- 1. Authentication ------------------------------------------------------------------------------

TEST_F(CloudHostilePeersTest, ClientsThatFailCurveGetNoReplyWhileAnHonestEdgeIsServed) {
  const CurveKeyPair& stranger = tail_->stranger_keys();
  std::vector<std::pair<std::string, std::unique_ptr<RawClient>>> intruders;
  intruders.emplace_back(
      "client key not allow-listed",
      Connect({.own_keys = stranger, .server_public_key = tail_->cloud_keys().public_key}));
  intruders.emplace_back("wrong pinned server key",
                         Connect({.own_keys = tail_->edge_keys(), .server_public_key = stranger.public_key}));
  intruders.emplace_back("plaintext client", Connect({.insecure = true}));
  for (auto& [what, client] : intruders) {
    client->Send(wire::MakeHello(*hello_));
    client->Send(Open(1));
    client->Send(Activations(1, 0, 0, 3));
  }
  // All three sent before any wait: the first silence window covers them all.
  for (size_t i = 0; i < intruders.size(); ++i) {
    SCOPED_TRACE(intruders[i].first);
    intruders[i].second->ExpectSilence(i == 0 ? kSilence : 100ms);
  }

  auto honest = Honest();
  honest->Send(Open(1));
  honest->Send(Activations(1, 0, 0, 3));
  honest->ExpectToken(1, 0);
  honest->Send(Activations(1, 1, 3, 1));
  honest->ExpectToken(1, 1);
  honest->Close(1);
  EXPECT_TRUE(tail_->process().Running());
}

// ---- 2. Malformed frames ----------------------------------------------------------------------------

TEST_F(CloudHostilePeersTest, MalformedFramesAreAnsweredWithBadFrameOrVersionMismatch) {
  auto client = Honest();
  const Bytes ping_header = HeaderFrame({.type = MessageType::kPing});
  {
    SCOPED_TRACE("one frame only");
    client->SendFrames({ping_header});
    client->ExpectError(ErrorCode::kBadFrame);
  }
  {
    SCOPED_TRACE("header of 39 bytes");
    client->SendFrames({Bytes(ping_header.begin(), ping_header.end() - 1), {}});
    client->ExpectError(ErrorCode::kBadFrame);
  }
  {
    SCOPED_TRACE("wrong magic");
    Bytes header = ping_header;
    header[0] = std::byte{'X'};
    client->SendFrames({header, {}});
    client->ExpectError(ErrorCode::kBadFrame);
  }
  {
    SCOPED_TRACE("version 2");
    client->Send({.header = {.version = 2, .type = MessageType::kPing, .session = 77, .sequence = 5}});
    const auto error = client->ExpectError(ErrorCode::kVersionMismatch, 77);
    if (error) {
      EXPECT_EQ(error->sequence, 5u);
    }
  }
  {
    SCOPED_TRACE("unknown type byte");
    for (const uint8_t type : {uint8_t{0}, uint8_t{13}, uint8_t{255}}) {
      Bytes header = ping_header;
      header[6] = std::byte{type};
      client->SendFrames({header, {}});
      client->ExpectError(ErrorCode::kBadFrame);
    }
  }
  {
    SCOPED_TRACE("a type only the tail sends");
    for (const MessageType type : {MessageType::kRows, MessageType::kVerdict}) {
      Bytes header = ping_header;
      header[6] = std::byte{static_cast<uint8_t>(type)};
      client->SendFrames({header, {}});
      client->ExpectError(ErrorCode::kUnsupported);
    }
  }
  {
    SCOPED_TRACE("three frames");
    client->SendFrames({ping_header, {}, {}});
    client->ExpectError(ErrorCode::kBadFrame);
  }
  {
    SCOPED_TRACE("six frames");
    client->SendFrames({ping_header, {}, {}, {}, {}, {}});
    client->ExpectError(ErrorCode::kBadFrame);
  }
  // The connection is still in step: a PING is answered by its PONG.
  const std::array<std::byte, 3> echo = {std::byte{1}, std::byte{2}, std::byte{3}};
  client->Send(wire::MakePing(echo));
  const auto pong = client->Receive(kReplyTimeout);
  ASSERT_TRUE(pong.has_value());
  EXPECT_EQ(pong->header.type, MessageType::kPong);
  EXPECT_EQ(pong->payload, Bytes(echo.begin(), echo.end()));
}

TEST_F(CloudHostilePeersTest, HandshakeViolationsAreRefused) {
  auto fresh = Connect(EdgeSecurity());
  {
    SCOPED_TRACE("OPEN before HELLO");
    fresh->Send(Open(5));
    fresh->ExpectError(ErrorCode::kHandshakeRequired, 5);
    fresh->Send(Activations(5, 0, 0, 1));
    fresh->ExpectError(ErrorCode::kHandshakeRequired, 5);
  }
  {
    SCOPED_TRACE("HELLO with a wrong fingerprint");
    wire::Hello other = *hello_;
    other.fingerprint ^= 1;
    fresh->Send(wire::MakeHello(other));
    fresh->ExpectError(ErrorCode::kFingerprintMismatch);
    fresh->Send(Open(5));  // the refused HELLO did not complete the handshake
    fresh->ExpectError(ErrorCode::kHandshakeRequired, 5);
  }
  {
    SCOPED_TRACE("HELLO with another shape");
    wire::Hello other = *hello_;
    other.dim = 128;
    fresh->Send(wire::MakeHello(other));
    fresh->ExpectError(ErrorCode::kFingerprintMismatch);
  }
  {
    SCOPED_TRACE("truncated HELLO payload");
    wire::Message hello = wire::MakeHello(*hello_);
    for (const size_t keep : {size_t{0}, size_t{7}, hello.payload.size() - 1}) {
      wire::Message cut = hello;
      cut.payload.resize(keep);
      fresh->Send(cut);
      fresh->ExpectError(ErrorCode::kBadFrame);
    }
    fresh->Send(Open(5));
    fresh->ExpectError(ErrorCode::kHandshakeRequired, 5);
  }
  // A correct HELLO then opens the door on the same connection.
  Handshake(*fresh);
  OpenAndStep(*fresh, 5);
  fresh->Close(5);
}

TEST_F(CloudHostilePeersTest, BadSessionsAndShapesGetTheirErrorCodes) {
  auto client = Honest();
  {
    SCOPED_TRACE("ACTIVATIONS for an unknown session");
    client->Send(Activations(404, 0, 0, 1));
    client->ExpectError(ErrorCode::kUnknownSession, 404);
  }
  {
    SCOPED_TRACE("OPEN with cut 99");
    client->Send(Open(10, 99));
    client->ExpectError(ErrorCode::kBadArgument, 10);
    client->Send(Activations(10, 0, 0, 1));  // and nothing was opened
    client->ExpectError(ErrorCode::kUnknownSession, 10);
  }
  {
    SCOPED_TRACE("OPEN with NaN temperature");
    wire::OpenRequest open{.session = 11, .cut = 2, .max_positions = 32};
    open.sampling.temperature = std::numeric_limits<float>::quiet_NaN();
    client->Send(wire::MakeOpen(open));
    client->ExpectError(ErrorCode::kBadArgument, 11);
  }
  {
    SCOPED_TRACE("OPEN with max_positions over the context");
    client->Send(Open(11, 2, kSeqLen + 1));
    client->ExpectError(ErrorCode::kBadArgument, 11);
  }
  {
    SCOPED_TRACE("OPEN twice with the same id");
    client->Send(Open(12, 2, 0));  // the whole context: 512 positions
    client->Send(Open(12));
    client->ExpectError(ErrorCode::kSessionExists, 12);
  }
  // Refusals by the I/O thread leave session 12 as it was: expecting sequence 0 at position 0.
  {
    SCOPED_TRACE("wrong sequence");
    client->Send(Activations(12, 1, 0, 1));
    const auto error = client->ExpectError(ErrorCode::kOutOfOrder, 12);
    if (error) {
      EXPECT_EQ(error->sequence, 1u);
    }
  }
  {
    SCOPED_TRACE("wrong position");
    client->Send(Activations(12, 0, 4, 1));
    client->ExpectError(ErrorCode::kOutOfOrder, 12);
  }
  {
    SCOPED_TRACE("rows over the limit");
    client->Send(Activations(12, 0, 0, kSeqLen + 1));
    client->ExpectError(ErrorCode::kTooLarge, 12);
  }
  {
    SCOPED_TRACE("cols != 64");
    std::vector<float> values(2 * 65, 0.25f);
    client->Send(wire::MakeActivations(12, 0, 0, 2, 65, {}, Compression::kNone,
                                       AsBytes(values.data(), values.size() * 4)));
    client->ExpectError(ErrorCode::kBadArgument, 12);
  }
  {
    SCOPED_TRACE("unknown precision byte");
    wire::Message message = Activations(12, 0, 0, 1);
    message.header.precision = 9;
    client->Send(message);
    client->ExpectError(ErrorCode::kBadArgument, 12);
  }
  {
    SCOPED_TRACE("unknown compression byte");
    wire::Message message = Activations(12, 0, 0, 1);
    message.header.compression = 7;
    client->Send(message);
    client->ExpectError(ErrorCode::kBadArgument, 12);
  }
  {
    SCOPED_TRACE("a codec other than the session's");
    wire::Message message = Activations(12, 0, 0, 1);
    message.header.precision = static_cast<uint8_t>(Precision::kInt8);
    client->Send(message);
    client->ExpectError(ErrorCode::kBadArgument, 12);
  }
  // None of that moved session 12: its first step still works.
  client->Send(Activations(12, 0, 0, 2));
  client->ExpectToken(12, 0);
  client->Close(12);
}

TEST_F(CloudHostilePeersTest, UndecodablePayloadsAreBadFramesAndEndTheSession) {
  auto client = Honest();
  struct Case {
    const char* what;
    wire::Message message;
  };
  std::vector<Case> cases;
  {
    wire::Message truncated = Activations(20, 0, 0, 3);
    truncated.payload.resize(truncated.payload.size() - 4);
    cases.push_back({"truncated fp32 payload", std::move(truncated)});
  }
  {
    wire::Message garbage = Activations(21, 0, 0, 3);
    garbage.header.compression = static_cast<uint8_t>(Compression::kZstd);
    for (size_t i = 0; i < garbage.payload.size(); ++i) garbage.payload[i] = std::byte(i * 131 + 7);
    cases.push_back({"garbage zstd payload", std::move(garbage)});
  }
  {
    wire::Message zstd_magic = Activations(22, 0, 0, 3);
    zstd_magic.header.compression = static_cast<uint8_t>(Compression::kZstd);
    // A zstd frame magic followed by a frame header that claims 4 GiB of content.
    const std::array<uint8_t, 12> bytes = {0x28, 0xB5, 0x2F, 0xFD, 0xA4, 0x00,
                                           0x00, 0x00, 0x00, 0x01, 0x00, 0x00};
    zstd_magic.payload = AsBytes(bytes.data(), bytes.size());
    cases.push_back({"zstd frame with a huge content size", std::move(zstd_magic)});
  }
  {
    wire::Message lz4 = Activations(23, 0, 0, 3);
    lz4.header.compression = static_cast<uint8_t>(Compression::kLz4);
    lz4.payload.resize(40, std::byte{0xF0});
    cases.push_back({"garbage lz4 payload", std::move(lz4)});
  }
  {
    wire::Message nan = Activations(24, 0, 0, 3);
    const float value = std::numeric_limits<float>::quiet_NaN();
    std::memcpy(nan.payload.data() + 4 * 70, &value, 4);
    cases.push_back({"fp32 payload with a NaN", std::move(nan)});
  }
  {
    wire::Message inf = Activations(25, 0, 0, 1);
    const float value = -std::numeric_limits<float>::infinity();
    std::memcpy(inf.payload.data(), &value, 4);
    cases.push_back({"fp32 payload with -inf", std::move(inf)});
  }
  ASSERT_LE(cases.size(), static_cast<size_t>(kMaxSessions));
  for (Case& c : cases) {
    SCOPED_TRACE(c.what);
    const uint64_t session = c.message.header.session;
    // Opened with the codec the step claims, so that the payload reaches the decoder.
    client->Send(
        Open(session, 2, 32, {Precision::kFp32, static_cast<Compression>(c.message.header.compression)}));
    client->Send(c.message);
    client->ExpectError(ErrorCode::kBadFrame, session);
    // A failed step ends the session: its next step is for an unknown session.
    client->Send(Activations(session, 1, 3, 1));
    client->ExpectError(ErrorCode::kUnknownSession, session);
  }
  EXPECT_EQ(OpenSessionsGauge(tail_->http_address()), 0) << "failed sessions must be freed";
}

// ---- 3. Limits --------------------------------------------------------------------------------------

TEST_F(CloudHostilePeersTest, TheNinthConcurrentSessionIsOverloadedAndRetryable) {
  ASSERT_EQ(OpenSessionsGauge(tail_->http_address()), 0) << "an earlier case left sessions open";
  auto client = Honest();
  for (uint64_t id = 1; id <= kMaxSessions; ++id) client->Send(Open(id));
  client->Send(Open(kMaxSessions + 1));
  // OPEN is silent on success, so this is the first reply of the nine.
  const auto error = client->ExpectError(ErrorCode::kOverloaded, kMaxSessions + 1);
  if (error) {
    EXPECT_TRUE(error->retryable);
  }
  EXPECT_EQ(OpenSessionsGauge(tail_->http_address()), kMaxSessions);
  // Another edge is refused too: the limit is for all edges together.
  auto other = Honest();
  other->Send(Open(100));
  if (auto refused = other->ExpectError(ErrorCode::kOverloaded, 100)) {
    EXPECT_TRUE(refused->retryable);
  }
  // Every admitted session works, and closing one makes room.
  for (uint64_t id = 1; id <= kMaxSessions; ++id) client->Send(Activations(id, 0, 0, 1));
  for (uint64_t id = 1; id <= kMaxSessions; ++id) client->ExpectToken(id, 0);
  client->Close(kMaxSessions);
  OpenAndStep(*other, 100);
  other->Close(100);
  for (uint64_t id = 1; id < kMaxSessions; ++id) client->Send(wire::MakeClose(id));
  client->Sync();
  EXPECT_EQ(OpenSessionsGauge(tail_->http_address()), 0);
}

TEST_F(CloudHostilePeersTest, AFrameOverTheMessageLimitDropsOnlyThatConnection) {
  auto client = Honest();
  {
    SCOPED_TRACE("payload at the limit (1 MiB) is read, and refused as a PING over 64 bytes");
    client->Send(
        wire::Message{.header = {.type = MessageType::kPing, .sequence = 1}, .payload = Bytes(kMaxMessage)});
    client->ExpectError(ErrorCode::kTooLarge);
  }
  {
    SCOPED_TRACE("payload over the limit (1 MiB + 1 byte): ZeroMQ drops the connection");
    client->Send(wire::Message{.header = {.type = MessageType::kPing, .sequence = 2},
                               .payload = Bytes(kMaxMessage + 1)});
    client->ExpectSilence();
  }
  auto fresh = Honest();
  OpenAndStep(*fresh, 31);
  fresh->Close(31);
  EXPECT_TRUE(tail_->process().Running());
}

TEST_F(CloudHostilePeersTest, TenThousandOpensStayBoundedByTheSessionLimit) {
  const double before = OpenSessionsGauge(tail_->http_address());
  ASSERT_GE(before, 0) << "no tandem_cloud_sessions gauge at " << tail_->http_address();
  EXPECT_EQ(before, 0) << "an earlier case left sessions open";
  const int free_slots = kMaxSessions - static_cast<int>(before);
  constexpr uint64_t kOpens = 10000;
  auto flood = Honest({.high_water_mark = 2 * static_cast<int>(kOpens)});
  const auto start = std::chrono::steady_clock::now();
  for (uint64_t id = 1; id <= kOpens; ++id) flood->Send(Open(id));
  std::set<uint64_t> refused;
  size_t other_replies = 0;
  while (refused.size() + other_replies < kOpens - static_cast<uint64_t>(free_slots)) {
    const auto message = flood->Receive(5000ms);  // a gap this long: the tail has nothing more to say
    if (!message) break;  // the tail's ROUTER drops replies over its high-water mark (1000 a peer)
    auto error = wire::ParseError(*message);
    if (!error.ok() || error->code != ErrorCode::kOverloaded || !error->retryable) {
      ++other_replies;
      continue;
    }
    refused.insert(error->session);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  RecordProperty("overloaded_replies", static_cast<int>(refused.size()));
  std::printf("%zu overloaded replies to %llu OPENs in %.2f s\n", refused.size(),
              static_cast<unsigned long long>(kOpens), seconds);
  EXPECT_EQ(other_replies, 0u) << "every refusal must be a retryable kOverloaded";
  EXPECT_GE(refused.size(), 1000u) << "overloaded replies received in " << seconds << " s";
  for (uint64_t id = 1; id <= static_cast<uint64_t>(free_slots); ++id) {
    EXPECT_FALSE(refused.contains(id)) << "session " << id << " fitted under the limit";
  }
  EXPECT_LE(OpenSessionsGauge(tail_->http_address()), kMaxSessions);
  EXPECT_EQ(OpenSessionsGauge(tail_->http_address()), kMaxSessions);

  // The admitted ones are real sessions; closing them frees the tail for everyone.
  for (uint64_t id = 1; id <= static_cast<uint64_t>(free_slots); ++id) flood->Send(Activations(id, 0, 0, 1));
  for (uint64_t id = 1; id <= static_cast<uint64_t>(free_slots); ++id) flood->ExpectToken(id, 0);
  for (uint64_t id = 1; id <= kOpens; ++id) flood->Send(wire::MakeClose(id));
  flood->Sync();
  EXPECT_EQ(OpenSessionsGauge(tail_->http_address()), before);
  auto honest = Honest();
  OpenAndStep(*honest, 1);
  honest->Close(1);
}

// ---- 4. Replay --------------------------------------------------------------------------------------

// Steps are idempotent: the last step sent again (an edge whose reply was lost) gets the same TOKEN from
// the tail's cache, computed once; anything else out of sequence is refused and changes nothing.
TEST_F(CloudHostilePeersTest, ResendsAreAnsweredOnceComputedAndReplaysAndGapsRefused) {
  auto client = Honest();
  client->Send(Open(40));
  const wire::Message first = Activations(40, 0, 0, 3);
  client->Send(first);
  const auto token = client->ExpectToken(40, 0);
  const double computed = testing::MetricValue(tail_->http_address(), "tandem_cloud_tokens_total");
  client->Send(first);
  EXPECT_EQ(client->ExpectToken(40, 0), token) << "a resend of the last step answers as the first time";
  EXPECT_EQ(testing::MetricValue(tail_->http_address(), "tandem_cloud_tokens_total"), computed)
      << "the resend was computed again";
  EXPECT_GE(testing::MetricValue(tail_->http_address(), "tandem_cloud_step_resends_total"), 1);

  const wire::Message second = Activations(40, 1, 3, 1);
  client->Send(second);
  client->ExpectToken(40, 1);
  {
    SCOPED_TRACE("a replay of an older step");
    client->Send(first);
    const auto error = client->ExpectError(ErrorCode::kOutOfOrder, 40);
    if (error) {
      EXPECT_EQ(error->sequence, 0u);
    }
  }
  {
    SCOPED_TRACE("a gap in the sequence numbers");
    client->Send(Activations(40, 3, 4, 1));
    client->ExpectError(ErrorCode::kOutOfOrder, 40);
  }
  {
    SCOPED_TRACE("the last sequence number again, with other rows");
    wire::Message other = second;
    other.payload[0] ^= std::byte{1};
    client->Send(other);
    client->ExpectError(ErrorCode::kOutOfOrder, 40);
  }
  // None of it changed the session: it goes on from sequence 2, position 4.
  client->Send(Activations(40, 2, 4, 1));
  client->ExpectToken(40, 2);
  client->Close(40);
  // A replay on another connection finds no such session there.
  auto other = Honest();
  other->Send(first);
  other->ExpectError(ErrorCode::kUnknownSession, 40);
}

// A man in the middle flips one bit of an ACTIVATIONS frame on the wire: CURVE's authenticator fails, the
// tail drops that connection, and nothing of the frame is decoded (no token is computed); honest clients
// are served throughout.
TEST_F(CloudHostilePeersTest, AFlippedBitOnTheWireDropsTheConnectionBeforeAnythingIsDecoded) {
  // A fixed routing id, so that the edge can come back as the same peer once the connection is gone.
  const std::string routing_id = "edge-behind-a-bad-link";
  const wire::Message step = Activations(45, 0, 0, 3);
  {
    ByteFlippingRelay relay(tail_->endpoint());
    RawClient client(*context_, relay.endpoint(), EdgeSecurity(), {}, routing_id);
    Handshake(client);
    client.Send(Open(45));
    client.Sync();
    const double computed = testing::MetricValue(tail_->http_address(), "tandem_cloud_tokens_total");
    relay.FlipNextByte();
    client.Send(step);
    client.ExpectSilence();
    EXPECT_TRUE(relay.flipped());
    EXPECT_EQ(testing::MetricValue(tail_->http_address(), "tandem_cloud_tokens_total"), computed);
  }
  auto honest = Honest();
  OpenAndStep(*honest, 46);
  honest->Close(46);
  // Directly, as the same peer: the session is where it was before the corrupted frame.
  RawClient back(*context_, tail_->endpoint(), EdgeSecurity(), {}, routing_id);
  Handshake(back);
  back.Send(step);
  back.ExpectToken(45, 0);
  back.Close(45);
}

TEST_F(CloudHostilePeersTest, ReopeningAnIdWhileItsLastStepIsInFlightKeepsTheNewSession) {
  auto client = Honest();
  // Many rows make the step slow enough to still be running when CLOSE and the new OPEN arrive.
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    client->Send(Open(50, 0, 0));
    client->Send(Activations(50, 0, 0, 256));
    client->Send(wire::MakeClose(50));  // while the step runs
    client->Send(Open(50));
    client->ExpectToken(50, 0);  // the old session's step still answers
    // The old step's reply must not touch the new session 50.
    client->Send(Activations(50, 0, 0, 2));
    client->ExpectToken(50, 0);
    client->Close(50);
  }
  {
    SCOPED_TRACE("the old step fails");
    wire::Message bad = Activations(51, 0, 0, 256);
    bad.payload.resize(bad.payload.size() - 1);
    client->Send(Open(51, 0, 0));
    client->Send(bad);
    client->Send(wire::MakeClose(51));
    client->Send(Open(51));
    client->ExpectError(ErrorCode::kBadFrame, 51);
    client->Send(Activations(51, 0, 0, 2));
    client->ExpectToken(51, 0);
    client->Close(51);
  }
}

// ---- 5. Still serving, then a clean stop ---------------------------------------------------------------

TEST_F(CloudHostilePeersTest, ZzTheTailSurvivedAndStopsCleanly) {
  ASSERT_TRUE(tail_->process().Running()) << tail_->log();
  auto client = Honest();
  client->Send(Open(60, 3));
  client->Send(Activations(60, 0, 0, 3));
  client->ExpectToken(60, 0);
  for (uint32_t step = 1; step <= 4; ++step) {
    client->Send(Activations(60, step, 2 + step, 1));
    client->ExpectToken(60, step);
  }
  client->Close(60);
  client.reset();
  EXPECT_EQ(tail_->process().Stop(), 0) << "tandem-cloud did not stop cleanly on SIGTERM\n" << tail_->log();
}

}  // namespace
}  // namespace tandem
