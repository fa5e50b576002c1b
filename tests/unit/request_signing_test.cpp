#include "tandem/services/request_signing.hpp"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>
#include <vector>

#include "tandem/services/http_client.hpp"

namespace tandem::services {
namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef";  // 32 bytes
const std::string kBody = R"({"endpoint":"tcp://10.0.0.7:5555"})";
constexpr int64_t kNow = 1'800'000'000'000;

RequestSigner Signer(const std::string& secret = kSecret) {
  return *RequestSigner::Create(secret, "tcp://10.0.0.7:5555");
}
RequestVerifier Verifier() {
  return *RequestVerifier::Create(kSecret);
}

Verification Check(const std::string& authorization, const std::string& path = "/v1/tails/heartbeat",
                   const std::string& body = kBody, int64_t now = kNow) {
  return Verifier().Verify(&authorization, "POST", path, body, now);
}

TEST(RequestSigningTest, AGoodSignatureIsAcceptedWithTheSendersId) {
  const std::string header = Signer().Authorization("POST", "/v1/tails/heartbeat", kBody, kNow);
  EXPECT_TRUE(std::regex_match(header, std::regex("Tandem-HMAC id=tcp://10.0.0.7:5555, ts=1800000000000, "
                                                  "mac=[0-9a-f]{64}")))
      << header;
  const Verification verified = Check(header);
  EXPECT_TRUE(verified.ok()) << verified.message;
  EXPECT_EQ(verified.sender, "tcp://10.0.0.7:5555");
  // Within the window either way.
  EXPECT_TRUE(Check(header, "/v1/tails/heartbeat", kBody, kNow + 30000).ok());
  EXPECT_TRUE(Check(header, "/v1/tails/heartbeat", kBody, kNow - 30000).ok());
}

TEST(RequestSigningTest, TheMacIsHmacSha256OverMethodPathTimeAndBodyHash) {
  // Computed independently: printf 'POST\n/v1/plan\n1800000000000\n%s' "$(printf '{}' | sha256sum | cut
  // -c1-64)"
  //   | openssl dgst -sha256 -hmac 0123456789abcdef0123456789abcdef
  const std::string header = Signer().Authorization("POST", "/v1/plan", "{}", kNow);
  EXPECT_EQ(header.substr(header.find("mac=") + 4),
            "54760c1472c77c51c8afd96247c0e977a17a3811dd21ee406f71f414245c0877");
}

TEST(RequestSigningTest, AWrongSecretIsABadMac) {
  const std::string header = Signer("another secret of at least 32 bytes!")
                                 .Authorization("POST", "/v1/tails/heartbeat", kBody, kNow);
  const Verification verified = Check(header);
  EXPECT_EQ(verified.failure, AuthFailure::kBadMac);
  EXPECT_EQ(verified.sender, "tcp://10.0.0.7:5555");
  EXPECT_NE(verified.message.find("MAC does not match"), std::string::npos) << verified.message;
}

TEST(RequestSigningTest, ATamperedRequestIsABadMac) {
  const std::string header = Signer().Authorization("POST", "/v1/tails/heartbeat", kBody, kNow);
  EXPECT_EQ(Check(header, "/v1/plan").failure, AuthFailure::kBadMac);                          // path
  EXPECT_EQ(Check(header, "/v1/tails/heartbeat", kBody + " ").failure, AuthFailure::kBadMac);  // body
  EXPECT_EQ(Verifier().Verify(&header, "PUT", "/v1/tails/heartbeat", kBody, kNow).failure,
            AuthFailure::kBadMac);  // method
  std::string moved = header;       // the timestamp, moved within the window
  moved.replace(moved.find("ts=") + 3, 13, std::to_string(kNow + 1000));
  EXPECT_EQ(Check(moved).failure, AuthFailure::kBadMac);
  std::string flipped = header;  // one digit of the MAC
  char& last = flipped.back();
  last = last == '0' ? '1' : '0';
  EXPECT_EQ(Check(flipped).failure, AuthFailure::kBadMac);
}

TEST(RequestSigningTest, AStaleOrFutureTimestampIsRefused) {
  const std::string old_header = Signer().Authorization("POST", "/v1/tails/heartbeat", kBody, kNow - 30001);
  const Verification old_one = Check(old_header);
  EXPECT_EQ(old_one.failure, AuthFailure::kStale);
  EXPECT_NE(old_one.message.find("30001 ms off"), std::string::npos) << old_one.message;
  const std::string future = Signer().Authorization("POST", "/v1/tails/heartbeat", kBody, kNow + 60000);
  EXPECT_EQ(Check(future).failure, AuthFailure::kStale);
}

TEST(RequestSigningTest, AMissingOrMalformedHeaderIsRefused) {
  EXPECT_EQ(Verifier().Verify(nullptr, "POST", "/v1/plan", "", kNow).failure, AuthFailure::kMissing);
  EXPECT_EQ(Check("Bearer abc").failure, AuthFailure::kMissing);
  EXPECT_EQ(Check("Tandem-HMAC").failure, AuthFailure::kMissing);
  const std::string good = Signer().Authorization("POST", "/v1/tails/heartbeat", kBody, kNow);
  const std::string mac = good.substr(good.find("mac=") + 4);
  const std::string parameters = good.substr(good.find(' ') + 1);
  for (const std::string& bad : std::vector<std::string>{
           "Tandem-HMAC ",
           "Tandem-HMAC id=a, ts=1800000000000",                              // no mac
           "Tandem-HMAC ts=1800000000000, mac=" + mac,                        // no id
           "Tandem-HMAC id=a, ts=-5, mac=" + mac,                             // negative time
           "Tandem-HMAC id=a, ts=1800000000000, mac=" + mac.substr(1),        // short mac
           "Tandem-HMAC id=a, ts=1800000000000, mac=" + mac.substr(1) + "g",  // not hex
           "Tandem-HMAC id=a, id=b, ts=1800000000000, mac=" + mac,            // twice
           "Tandem-HMAC id=a, ts=1800000000000, mac=" + mac + ", nonce=1",    // unknown
           "Tandem-HMAC id=a; ts=1800000000000; mac=" + mac,                  // separators
           "Tandem-HMAC id=, ts=1800000000000, mac=" + mac,                   // empty id
           "Tandem-HMAC id=a, ts=99999999999999999999999, mac=" + mac,        // overflow
       }) {
    SCOPED_TRACE(bad);
    const Verification verified = Check(bad);
    EXPECT_EQ(verified.failure, AuthFailure::kBadMac);
    EXPECT_NE(verified.message.find("malformed"), std::string::npos) << verified.message;
  }
  // The scheme's case and the spaces after commas do not matter; the MAC's case neither.
  EXPECT_TRUE(Check("tandem-hmac " + parameters).ok());
  std::string upper = good;
  for (size_t i = upper.find("mac=") + 4; i < upper.size(); ++i)
    upper[i] = static_cast<char>(toupper(upper[i]));
  EXPECT_TRUE(Check(upper).ok());
}

TEST(RequestSigningTest, ShortSecretsAndBadIdsAreRefused) {
  EXPECT_FALSE(RequestSigner::Create(kSecret.substr(1), "edge").ok());
  EXPECT_FALSE(RequestVerifier::Create(kSecret.substr(1)).ok());
  EXPECT_FALSE(RequestVerifier::Create(kSecret, std::chrono::milliseconds(0)).ok());
  for (const std::string& id :
       std::vector<std::string>{"", "an edge", "a,b", "a=b", "say\"hi\"", std::string(201, 'x')}) {
    EXPECT_FALSE(RequestSigner::Create(kSecret, id).ok()) << id;
  }
}

TEST(RequestSigningTest, SignAddsTheHeaderForTheTargetsPath) {
  HttpClientRequest request;
  request.method = "POST";
  request.target = "/v1/plan?debug=1";
  request.body = "{}";
  const int64_t before = UnixMillisNow();
  Signer().Sign(request);
  ASSERT_EQ(request.headers.size(), 1u);
  EXPECT_EQ(request.headers[0].first, "Authorization");
  EXPECT_TRUE(Verifier().Verify(&request.headers[0].second, "POST", "/v1/plan", "{}", before).ok())
      << request.headers[0].second;
}

class ControlSecretFileTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& contents) {
    std::ofstream(path_, std::ios::binary) << contents;
    return path_.string();
  }
  void TearDown() override { std::filesystem::remove(path_); }
  std::filesystem::path path_ =
      std::filesystem::temp_directory_path() / ("control-secret-" + std::to_string(getpid()));
};

TEST_F(ControlSecretFileTest, ReadsTheSecretWithoutItsLineBreak) {
  ControlSecretFlag flag{.file = Write(kSecret + "\n")};
  ASSERT_TRUE(flag.Load().ok());
  EXPECT_EQ(flag.secret, kSecret);
  ControlSecretFlag none;
  EXPECT_TRUE(none.Load().ok());
  EXPECT_TRUE(none.secret.empty());
}

TEST_F(ControlSecretFileTest, AMissingEmptyOrShortFileIsAnErrorNamingIt) {
  for (const std::string& contents : {std::string(), std::string("\n"), kSecret.substr(1) + "\n"}) {
    ControlSecretFlag flag{.file = Write(contents)};
    const Status loaded = flag.Load();
    EXPECT_FALSE(loaded.ok());
    EXPECT_NE(loaded.message().find(path_.string()), std::string::npos) << loaded.message();
  }
  ControlSecretFlag missing{.file = path_.string() + ".absent"};
  const Status loaded = missing.Load();
  EXPECT_NE(loaded.message().find(".absent"), std::string::npos) << loaded.message();
}

TEST(ControlSecretTest, NewSecretsAreLongEnoughAndDiffer) {
  const std::string first = *NewControlSecret();
  EXPECT_TRUE(std::regex_match(first, std::regex("[0-9a-f]{64}\n"))) << first;
  EXPECT_NE(first, *NewControlSecret());
}

}  // namespace
}  // namespace tandem::services
