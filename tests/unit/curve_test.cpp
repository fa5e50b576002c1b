#include "tandem/wire/curve.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using std::chrono::milliseconds;
using testing::TempDir;

// How long a client that should get nothing waits for it.
constexpr milliseconds kSilence{300};
// How long an admitted client may take (handshake included) before the test fails.
constexpr milliseconds kPatience{3000};

CurveKeyPair NewKeys() {
  Result<CurveKeyPair> keys = GenerateCurveKeyPair();
  EXPECT_TRUE(keys.ok()) << keys.status().ToString();
  return keys.ok() ? *keys : CurveKeyPair{};
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteText(const fs::path& path, const std::string& text,
               fs::perms perms = fs::perms::owner_read | fs::perms::owner_write) {
  testing::WriteBytes(path, text);
  fs::permissions(path, perms);
}

mode_t ModeOf(const fs::path& path) {
  struct stat info {};
  EXPECT_EQ(::stat(path.c_str(), &info), 0);
  return info.st_mode & 07777;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- keys and files -------------------------------------------------------------------------------

TEST(CurveKeysTest, GenerateWriteReadRoundTrip) {
  TempDir dir;
  const CurveKeyPair keys = NewKeys();
  ASSERT_EQ(keys.public_key.size(), kCurveKeyZ85Size);
  ASSERT_EQ(keys.secret_key.size(), kCurveKeyZ85Size);
  EXPECT_NE(keys.public_key, keys.secret_key);
  EXPECT_TRUE(ValidateCurveKey(keys.public_key).ok());
  EXPECT_NE(NewKeys().public_key, keys.public_key);

  const std::string prefix = (dir / "edge").string();
  ASSERT_TRUE(WriteCurveKeyPair(keys, prefix, false).ok());
  EXPECT_EQ(ReadText(prefix + ".key"), keys.secret_key + "\n");
  EXPECT_EQ(ReadText(prefix + ".pub"), keys.public_key + "\n");

  Result<CurveKeyPair> read = ReadSecretKeyFile(prefix + ".key");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->secret_key, keys.secret_key);
  EXPECT_EQ(read->public_key, keys.public_key);  // derived from the secret key
  Result<std::string> pub = ReadPublicKeyFile(prefix + ".pub");
  ASSERT_TRUE(pub.ok()) << pub.status().ToString();
  EXPECT_EQ(*pub, keys.public_key);
}

TEST(CurveKeysTest, SecretKeyIs0600AndPublicKeyReadableWhateverTheUmask) {
  TempDir dir;
  const mode_t old_umask = ::umask(077);
  const Status written = WriteCurveKeyPair(NewKeys(), (dir / "a").string(), false);
  ::umask(old_umask);
  ASSERT_TRUE(written.ok()) << written.ToString();
  EXPECT_EQ(ModeOf(dir / "a.key"), 0600u);
  EXPECT_EQ(ModeOf(dir / "a.pub"), 0644u);
}

TEST(CurveKeysTest, OverwriteNeedsTheFlagAndReplacesTheMode) {
  TempDir dir;
  const std::string prefix = (dir / "node").string();
  const CurveKeyPair first = NewKeys(), second = NewKeys();
  ASSERT_TRUE(WriteCurveKeyPair(first, prefix, false).ok());

  const Status refused = WriteCurveKeyPair(second, prefix, false);
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(Contains(refused.message(), prefix + ".key")) << refused.message();
  EXPECT_TRUE(Contains(refused.message(), "already exists")) << refused.message();
  EXPECT_EQ(ReadText(prefix + ".key"), first.secret_key + "\n");

  // Only the .pub exists: still refused, and no half pair is left behind.
  fs::remove(prefix + ".key");
  EXPECT_FALSE(WriteCurveKeyPair(second, prefix, false).ok());
  EXPECT_FALSE(fs::exists(prefix + ".key"));

  WriteText(prefix + ".key", "old\n",
            fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read | fs::perms::others_read);
  ASSERT_TRUE(WriteCurveKeyPair(second, prefix, true).ok());
  EXPECT_EQ(ReadText(prefix + ".key"), second.secret_key + "\n");
  EXPECT_EQ(ReadText(prefix + ".pub"), second.public_key + "\n");
  EXPECT_EQ(ModeOf(prefix + ".key"), 0600u);
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);  // no temp files
}

TEST(CurveKeysTest, WriteRefusesAMismatchedPair) {
  TempDir dir;
  CurveKeyPair keys = NewKeys();
  keys.public_key = NewKeys().public_key;
  EXPECT_FALSE(WriteCurveKeyPair(keys, (dir / "x").string(), false).ok());
  EXPECT_FALSE(fs::exists(dir / "x.key"));
}

TEST(CurveKeysTest, SecretKeyFileOthersCanReadIsRefused) {
  TempDir dir;
  const std::string prefix = (dir / "leaky").string();
  ASSERT_TRUE(WriteCurveKeyPair(NewKeys(), prefix, false).ok());
  fs::permissions(prefix + ".key", fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  Result<CurveKeyPair> read = ReadSecretKeyFile(prefix + ".key");
  ASSERT_FALSE(read.ok());
  EXPECT_TRUE(Contains(read.status().message(), prefix + ".key")) << read.status().message();
  EXPECT_TRUE(Contains(read.status().message(), "0644")) << read.status().message();

  fs::permissions(prefix + ".key", fs::perms::owner_read | fs::perms::group_read);  // 0440: group too
  EXPECT_FALSE(ReadSecretKeyFile(prefix + ".key").ok());
  EXPECT_EQ(ReadSecretKeyFile((dir / "missing.key").string()).status().code(), StatusCode::kNotFound);
}

TEST(CurveKeysTest, MalformedKeysAreRefusedNamingTheFile) {
  TempDir dir;
  const std::string key = NewKeys().secret_key;
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"short.key", key.substr(1) + "\n"},
      {"long.key", key + "A\n"},
      {"space.key", key.substr(0, 20) + " " + key.substr(21) + "\n"},
      {"quote.key", key.substr(0, 39) + "\"\n"},
      {"overflow.key", std::string(40, '#') + "\n"},  // Z85 digits, but 85^5 - 1 > 2^32
      {"two.key", key + "\n" + key + "\n"},
      {"empty.key", ""},
  };
  for (const auto& [name, text] : cases) {
    WriteText(dir / name, text);
    Result<CurveKeyPair> read = ReadSecretKeyFile((dir / name).string());
    ASSERT_FALSE(read.ok()) << name;
    EXPECT_EQ(read.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_TRUE(Contains(read.status().message(), (dir / name).string())) << read.status().message();
    EXPECT_FALSE(Contains(read.status().message(), key.substr(0, 20))) << "an error quotes key material";
    EXPECT_FALSE(ReadPublicKeyFile((dir / name).string()).ok()) << name;
  }
  // Surrounding whitespace (a CRLF editor) is fine.
  WriteText(dir / "crlf.key", "  " + key + "\r\n");
  EXPECT_TRUE(ReadSecretKeyFile((dir / "crlf.key").string()).ok());
}

TEST(CurveKeysTest, AllowListSkipsBlanksAndComments) {
  TempDir dir;
  const std::string a = NewKeys().public_key, b = NewKeys().public_key;
  WriteText(dir / "allow",
            "# edge agents\n\n" + a + "\n   \n\t" + b + "  # bob's laptop\n#" + a + "\n" + a + "\n");
  Result<std::vector<std::string>> keys = ReadAllowList((dir / "allow").string());
  ASSERT_TRUE(keys.ok()) << keys.status().ToString();
  EXPECT_EQ(*keys, (std::vector<std::string>{a, b}));
}

TEST(CurveKeysTest, AllowListErrorsNameFileAndLine) {
  TempDir dir;
  const std::string a = NewKeys().public_key;
  const std::string path = (dir / "allow").string();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"# ok\n" + a + "\n" + a.substr(2) + "\n", path + ":3:"},
      {a + "\n\n" + a.substr(0, 39) + "~\n", path + ":3:"},
      {a + " trailing words\n", path + ":1:"},
      {"\n# only comments\n", path},
  };
  for (const auto& [text, where] : cases) {
    WriteText(path, text);
    Result<std::vector<std::string>> keys = ReadAllowList(path);
    ASSERT_FALSE(keys.ok()) << text;
    EXPECT_EQ(keys.status().code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(Contains(keys.status().message(), where)) << keys.status().message();
  }
  EXPECT_EQ(ReadAllowList((dir / "nope").string()).status().code(), StatusCode::kNotFound);
}

TEST(CurveKeysTest, SocketOptionsRejectBadKeys) {
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  const CurveKeyPair keys = NewKeys(), other = NewKeys();
  EXPECT_FALSE(ApplyCurveServer(socket, {keys.public_key, "not a key"}).ok());
  EXPECT_FALSE(ApplyCurveClient(socket, {other.public_key, keys.secret_key}, keys.public_key).ok());
  EXPECT_FALSE(ApplyCurveClient(socket, keys, "short").ok());
  EXPECT_TRUE(ApplyCurveClient(socket, keys, other.public_key).ok());
}

// ---- the ZAP handler, spoken to directly ------------------------------------------------------------

struct ZapReply {
  std::string status_code;
  std::string user_id;
};

// Sends one RFC 27 request to the handler in `context` and returns the reply's status and user id.
ZapReply AskZap(zmq::context_t& context, const std::vector<std::string>& frames) {
  zmq::socket_t socket(context, zmq::socket_type::req);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::rcvtimeo, static_cast<int>(kPatience.count()));
  socket.connect("inproc://zeromq.zap.01");
  for (size_t i = 0; i < frames.size(); ++i) {
    socket.send(zmq::buffer(frames[i]),
                i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  std::vector<std::string> reply;
  while (true) {
    zmq::message_t frame;
    if (!socket.recv(frame)) return {"timeout", ""};
    reply.push_back(frame.to_string());
    if (!frame.more()) break;
  }
  EXPECT_EQ(reply.size(), 6u);
  if (reply.size() != 6) return {"bad reply", ""};
  EXPECT_EQ(reply[0], "1.0");
  EXPECT_EQ(reply[1], frames.size() > 1 ? frames[1] : "");
  return {reply[2], reply[4]};
}

std::string Binary(const std::string& z85) {
  std::string binary(32, '\0');
  zmq_z85_decode(reinterpret_cast<uint8_t*>(binary.data()), z85.c_str());
  return binary;
}

TEST(ZapAuthenticatorTest, AnswersRequestsByMechanismAndKey) {
  zmq::context_t context;
  const CurveKeyPair allowed = NewKeys(), stranger = NewKeys();
  std::mutex mutex;
  std::vector<std::pair<bool, std::string>> seen;  // admitted, peer address
  Result<std::unique_ptr<ZapAuthenticator>> auth = ZapAuthenticator::Start(
      context, {allowed.public_key}, [&](bool admitted, const std::string&, const std::string& address) {
        std::lock_guard lock(mutex);
        seen.emplace_back(admitted, address);
      });
  ASSERT_TRUE(auth.ok()) << auth.status().ToString();

  const ZapReply ok =
      AskZap(context, {"1.0", "7", "tandem", "10.0.0.1", "", "CURVE", Binary(allowed.public_key)});
  EXPECT_EQ(ok.status_code, "200");
  EXPECT_EQ(ok.user_id, allowed.public_key);
  EXPECT_EQ(AskZap(context, {"1.0", "8", "tandem", "10.0.0.2", "", "CURVE", Binary(stranger.public_key)})
                .status_code,
            "400");
  EXPECT_EQ(AskZap(context, {"1.0", "9", "tandem", "10.0.0.3", "", "NULL"}).status_code, "400");
  EXPECT_EQ(AskZap(context, {"1.0", "10", "tandem", "10.0.0.4", "", "PLAIN", "user", "password"}).status_code,
            "400");
  EXPECT_EQ(AskZap(context, {"1.0", "11", "tandem", "10.0.0.5", "", "CURVE", "short"}).status_code, "400");
  EXPECT_EQ(AskZap(context, {"2.0", "12", "tandem", "10.0.0.6", "", "CURVE", Binary(allowed.public_key)})
                .status_code,
            "500");
  EXPECT_EQ(AskZap(context, {"1.0", "13"}).status_code, "500");

  EXPECT_EQ((*auth)->admitted(), 1);
  EXPECT_EQ((*auth)->denied(), 4);
  std::lock_guard lock(mutex);
  ASSERT_EQ(seen.size(), 5u);
  EXPECT_EQ(seen[0], std::make_pair(true, std::string("10.0.0.1")));
  EXPECT_EQ(seen[1], std::make_pair(false, std::string("10.0.0.2")));
}

TEST(ZapAuthenticatorTest, StartValidatesKeysAndIsOnePerContext) {
  zmq::context_t context;
  EXPECT_EQ(ZapAuthenticator::Start(context, {NewKeys().public_key, "bad"}).status().code(),
            StatusCode::kInvalidArgument);
  Result<std::unique_ptr<ZapAuthenticator>> first = ZapAuthenticator::Start(context, {});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  EXPECT_FALSE(ZapAuthenticator::Start(context, {}).ok());
  first->reset();  // stops and unbinds: the endpoint is free again
  EXPECT_TRUE(ZapAuthenticator::Start(context, {}).ok());
}

// ---- a CURVE ROUTER with the handler, and DEALER clients over loopback TCP ---------------------------

class CurveServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_keys_ = NewKeys();
    allowed_keys_ = NewKeys();
    Result<std::unique_ptr<ZapAuthenticator>> auth =
        ZapAuthenticator::Start(context_, {allowed_keys_.public_key});
    ASSERT_TRUE(auth.ok()) << auth.status().ToString();
    auth_ = std::move(*auth);
    StartRouter();
  }

  void StartRouter() {
    router_ = zmq::socket_t(context_, zmq::socket_type::router);
    router_.set(zmq::sockopt::linger, 0);
    ASSERT_TRUE(ApplyCurveServer(router_, server_keys_).ok());
    router_.bind("tcp://127.0.0.1:*");
    endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  }

  // A DEALER with CURVE keys (or plaintext when `keys` is empty) that does not reconnect after a failed
  // handshake, so each rejected client is judged exactly once. Once its handshake has failed it has no
  // pipe left and a send would block: sends time out instead.
  zmq::socket_t Client(const std::optional<CurveKeyPair>& keys, const std::string& server_key) {
    zmq::socket_t socket(context_, zmq::socket_type::dealer);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::reconnect_ivl, -1);
    socket.set(zmq::sockopt::sndtimeo, static_cast<int>(kSilence.count()));
    if (keys) {
      EXPECT_TRUE(ApplyCurveClient(socket, *keys, server_key).ok());
    }
    socket.connect(endpoint_);
    return socket;
  }

  // Serves at most one request within `wait`: answers "echo:<body>:<User-Id>". False when none came.
  bool ServeOne(milliseconds wait) {
    zmq::pollitem_t item{router_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) == 0) return false;
    zmq::message_t identity, body;
    EXPECT_TRUE(router_.recv(identity));
    EXPECT_TRUE(router_.recv(body));
    const std::string reply = "echo:" + body.to_string() + ":" + body.gets("User-Id");
    router_.send(identity, zmq::send_flags::sndmore);
    router_.send(zmq::buffer(reply));
    return true;
  }

  // Sends `body` from `client`; returns the reply, or nullopt when the server saw nothing within `wait`.
  std::optional<std::string> RoundTrip(zmq::socket_t& client, const std::string& body, milliseconds wait) {
    if (!client.send(zmq::buffer(body))) return std::nullopt;  // no pipe: the handshake failed already
    if (!ServeOne(wait)) return std::nullopt;
    client.set(zmq::sockopt::rcvtimeo, static_cast<int>(kPatience.count()));
    zmq::message_t reply;
    if (!client.recv(reply)) return std::nullopt;
    return reply.to_string();
  }

  // The client got nothing: the server saw no request, and nothing is waiting for the client.
  void ExpectSilence(zmq::socket_t& client, const std::string& what) {
    EXPECT_EQ(RoundTrip(client, what, kSilence), std::nullopt) << what << " was served";
    zmq::message_t reply;
    EXPECT_FALSE(client.recv(reply, zmq::recv_flags::dontwait)) << what << " got a reply";
  }

  // Declared in destruction order's reverse: sockets close, then the handler stops, then the context.
  zmq::context_t context_;
  CurveKeyPair server_keys_, allowed_keys_;
  std::unique_ptr<ZapAuthenticator> auth_;
  zmq::socket_t router_;
  std::string endpoint_;
};

TEST_F(CurveServerTest, AdmitsOnlyAllowListedClientsAndKeepsServing) {
  zmq::socket_t good = Client(allowed_keys_, server_keys_.public_key);
  EXPECT_EQ(RoundTrip(good, "1", kPatience), "echo:1:" + allowed_keys_.public_key);
  EXPECT_EQ(auth_->admitted(), 1);

  zmq::socket_t stranger = Client(NewKeys(), server_keys_.public_key);
  ExpectSilence(stranger, "a client whose key is not allow-listed");
  // The refusal is asynchronous to the client's silence: on a loaded machine it may come after kSilence.
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (auth_->denied() == 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_EQ(auth_->denied(), 1);

  zmq::socket_t misled = Client(allowed_keys_, NewKeys().public_key);
  ExpectSilence(misled, "a client pinning another server key");

  zmq::socket_t plaintext = Client(std::nullopt, "");
  ExpectSilence(plaintext, "a plaintext client");

  // The server is still serving, on the old connection and on a new one.
  EXPECT_EQ(RoundTrip(good, "2", kPatience), "echo:2:" + allowed_keys_.public_key);
  zmq::socket_t again = Client(allowed_keys_, server_keys_.public_key);
  EXPECT_EQ(RoundTrip(again, "3", kPatience), "echo:3:" + allowed_keys_.public_key);

  // Neither the wrong server key nor plaintext reaches the handler: their handshakes fail before it.
  EXPECT_EQ(auth_->admitted(), 2);
  EXPECT_EQ(auth_->denied(), 1);
}

TEST_F(CurveServerTest, WithoutTheHandlerNoClientIsAdmitted) {
  // Fail closed: a server whose ZAP handler is gone must not fall back to admitting any CURVE client.
  router_.close();
  auth_.reset();
  StartRouter();
  zmq::socket_t good = Client(allowed_keys_, server_keys_.public_key);
  ExpectSilence(good, "a client of a server without a ZAP handler");
}

}  // namespace
}  // namespace tandem
