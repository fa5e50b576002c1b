// HttpServer with TLS: bad certificate, key or CA files are a start-up error naming the file; a server
// with good ones streams over HTTPS (HTTP/1.1 chunks and an HTTP/1.0 body ending with the connection)
// and notices a client leaving mid-stream. Certificates from `tandem tls-selfsigned`, curl as the client.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "tandem/services/http_server.hpp"
#include "test_env.hpp"

namespace tandem::services {
namespace {

using std::chrono::milliseconds;

class HttpTlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = (dir_ / "dev").string();
    const testing::CommandResult made = testing::RunProgram("tandem", {"tls-selfsigned", "--out", prefix_});
    ASSERT_EQ(made.exit_code, 0) << made.err;
  }

  HttpTlsOptions Good() const { return {prefix_ + "-cert.pem", prefix_ + "-key.pem", ""}; }

  // The error Start gives with `tls`; "" when it started.
  static std::string StartError(const HttpTlsOptions& tls) {
    HttpServerOptions options;
    options.tls = tls;
    auto server = HttpServer::Start(options, {});
    if (server.ok()) return "";
    EXPECT_EQ(server.status().code(), StatusCode::kInvalidArgument) << server.status().message();
    return server.status().message();
  }

  testing::TempDir dir_;
  std::string prefix_;
};

TEST_F(HttpTlsTest, BadFilesAreAStartUpErrorNamingTheFile) {
  const std::string missing = (dir_ / "missing.pem").string();
  const std::string garbage = (dir_ / "garbage.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  const testing::CommandResult other =
      testing::RunProgram("tandem", {"tls-selfsigned", "--out", (dir_ / "other").string()});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  const std::string other_key = (dir_ / "other-key.pem").string();

  EXPECT_EQ(StartError(Good()), "");
  EXPECT_NE(StartError({missing, Good().key_file, ""}).find(missing), std::string::npos);
  EXPECT_NE(StartError({Good().cert_chain_file, missing, ""}).find(missing), std::string::npos);
  EXPECT_NE(StartError({garbage, Good().key_file, ""}).find(garbage), std::string::npos);
  EXPECT_NE(StartError({Good().cert_chain_file, garbage, ""}).find(garbage), std::string::npos);
  const std::string mismatch = StartError({Good().cert_chain_file, other_key, ""});
  EXPECT_NE(mismatch.find(other_key), std::string::npos) << mismatch;
  EXPECT_NE(mismatch.find("does not match"), std::string::npos) << mismatch;
  EXPECT_NE(StartError({Good().cert_chain_file, Good().key_file, garbage}).find(garbage), std::string::npos);
  EXPECT_NE(StartError({Good().cert_chain_file, Good().key_file, missing}).find(missing), std::string::npos);
  EXPECT_NE(StartError({"", Good().key_file, ""}), "");
}

// A route streaming numbered pieces every `interval` until `count` or the client leaves.
Route StreamingRoute(int count, milliseconds interval, std::atomic<bool>& saw_gone) {
  return {"GET", "/stream", [=, &saw_gone](const HttpRequest&) {
            HttpResponse response;
            response.content_type = "text/plain";
            response.stream = [=, &saw_gone](ResponseStream& stream) {
              for (int i = 0; i < count; ++i) {
                if (!stream.Write("piece " + std::to_string(i) + "\n") || stream.ClientGone()) {
                  saw_gone = true;
                  return;
                }
                std::this_thread::sleep_for(interval);
              }
            };
            return response;
          }};
}

TEST_F(HttpTlsTest, StreamsOverHttpsAndNoticesTheClientLeaving) {
  std::atomic<bool> saw_gone = false;
  HttpServerOptions options;
  options.tls = Good();
  options.request_timeout = milliseconds(500);  // shorter than the slow stream: the watch has no deadline
  auto server = HttpServer::Start(options, {StreamingRoute(8, milliseconds(100), saw_gone)});
  ASSERT_TRUE(server.ok()) << server.status().message();
  const std::string url = "https://" + (*server)->address() + "/stream";
  const std::string ca = prefix_ + "-ca.pem";
  std::string expected;
  for (int i = 0; i < 8; ++i) expected += "piece " + std::to_string(i) + "\n";

  for (const char* version : {"--http1.1", "--http1.0"}) {
    const testing::CommandResult whole =
        testing::RunProgram("/usr/bin/curl", {"-sS", version, "--cacert", ca, url, url}, 60);
    EXPECT_EQ(whole.exit_code, 0) << version << ": " << whole.err;
    EXPECT_EQ(whole.out, expected + expected) << version;
  }
  EXPECT_FALSE(saw_gone);

  // A slow stream the client leaves after a second.
  auto slow = HttpServer::Start(options, {StreamingRoute(600, milliseconds(100), saw_gone)});
  ASSERT_TRUE(slow.ok()) << slow.status().message();
  const testing::CommandResult cut = testing::RunProgram(
      "/usr/bin/curl",
      {"-sS", "--max-time", "1", "--cacert", ca, "https://" + (*slow)->address() + "/stream"}, 60);
  EXPECT_NE(cut.exit_code, 0);
  EXPECT_NE(cut.out.find("piece 1\n"), std::string::npos) << cut.out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!saw_gone && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(20));
  EXPECT_TRUE(saw_gone) << "the producer was not told the client left";
  EXPECT_EQ((*slow)->in_flight(), 0);
}

}  // namespace
}  // namespace tandem::services
