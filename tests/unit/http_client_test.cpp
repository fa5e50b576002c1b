#include "tandem/services/http_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "tandem/base/strings.hpp"
#include "tandem/services/http_server.hpp"
#include "test_env.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::unique_ptr<HttpServer> StartServer(const HttpTlsOptions& tls = {}) {
  std::vector<Route> routes = {
      {"POST", "/echo",
       [](const HttpRequest& request) {
         HttpResponse response;
         response.content_type = "text/plain";
         response.body = request.method + " " + request.path + " " + request.body;
         response.headers = {
             {"X-Echo-Type", request.Header("content-type") ? *request.Header("content-type") : ""}};
         return response;
       }},
      {"GET", "/missing",
       [](const HttpRequest&) { return ErrorResponse(404, "nope", "invalid_request_error"); }},
      {"GET", "/stream",
       [](const HttpRequest&) {
         HttpResponse response;
         response.content_type = "text/plain";
         response.stream = [](ResponseStream& stream) {
           for (int i = 0; i < 100 && stream.Write(std::string(1000, 'x')); ++i) {
           }
         };
         return response;
       }},
  };
  HttpServerOptions options;
  options.tls = tls;
  auto server = HttpServer::Start(options, std::move(routes));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return std::move(*server);
}

TEST(HttpClientTest, SendsTheRequestAndReadsTheReply) {
  auto server = StartServer();
  auto reply = HttpRequestOnce(server->address(), "POST", "/echo", R"({"a":1})", milliseconds(5000));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->status, 200);
  EXPECT_EQ(reply->body, R"(POST /echo {"a":1})");
  ASSERT_NE(reply->Header("x-echo-type"), nullptr);
  EXPECT_EQ(*reply->Header("x-echo-type"), "application/json");
  ASSERT_NE(reply->Header("content-type"), nullptr);
  EXPECT_EQ(*reply->Header("content-type"), "text/plain");

  // An error status is a reply, not a failure.
  reply = HttpRequestOnce(server->address(), "GET", "/missing", "", milliseconds(5000));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->status, 404);
  EXPECT_NE(reply->body.find("nope"), std::string::npos);
}

TEST(HttpClientTest, StreamsTheBodyAndCanHangUp) {
  auto server = StartServer();
  HttpClientRequest request;
  request.target = "/stream";
  int pieces = 0;
  request.on_data = [&](std::string_view) { return ++pieces < 2; };
  HttpReply reply;
  const Status status = HttpExchange(server->address(), request, reply);
  EXPECT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(pieces, 2);
  EXPECT_LT(reply.body.size(), 100'000u);

  reply = {};
  request.on_data = nullptr;
  ASSERT_TRUE(HttpExchange(server->address(), request, reply).ok());
  EXPECT_EQ(reply.body.size(), 100'000u);
}

TEST(HttpClientTest, BodyOverTheLimitIsAnError) {
  auto server = StartServer();
  HttpClientRequest request;
  request.target = "/stream";
  request.max_body_bytes = 10'000;
  HttpReply reply;
  const Status status = HttpExchange(server->address(), request, reply);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_EQ(reply.status, 200);  // what arrived is kept
}

TEST(HttpClientTest, RefusedConnectionIsUnavailable) {
  uint16_t port = 0;
  {
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = acceptor.local_endpoint().port();
  }  // closed: nothing listens there now
  const std::string address = "127.0.0.1:" + std::to_string(port);
  auto reply = HttpRequestOnce(address, "GET", "/", "", milliseconds(2000));
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(reply.status().message().find(address), std::string::npos) << reply.status().message();
}

// A peer that accepts the connection and never answers: the deadline ends the call, not the peer.
TEST(HttpClientTest, SilentPeerHitsTheDeadline) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string address = "127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  const auto start = Clock::now();
  auto reply = HttpRequestOnce(address, "POST", "/v1/tails/heartbeat", "{}", milliseconds(300));
  const auto took = Clock::now() - start;
  ASSERT_FALSE(reply.ok());
  EXPECT_EQ(reply.status().code(), StatusCode::kDeadlineExceeded) << reply.status().ToString();
  EXPECT_GE(took, milliseconds(290));
  // 10x the deadline: a loaded machine passes, a call that ignores the deadline still fails.
  EXPECT_LT(took, milliseconds(3000));
}

TEST(HttpClientTest, BadAddressIsInvalidArgument) {
  EXPECT_EQ(HttpRequestOnce("no-port", "GET", "/", "", milliseconds(100)).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(HttpRequestOnce("127.0.0.1:1", "BREW", "/", "", milliseconds(100)).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(HttpClientTest, TakesHttpSchemeAndRefusesOthers) {
  auto server = StartServer();
  auto reply = HttpRequestOnce("http://" + server->address() + "/", "POST", "/echo", "", milliseconds(5000));
  ASSERT_TRUE(reply.ok()) << reply.status().ToString();
  EXPECT_EQ(reply->body, "POST /echo ");
  const auto ftp = HttpRequestOnce("ftp://" + server->address(), "GET", "/", "", milliseconds(100));
  EXPECT_EQ(ftp.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ftp.status().message().find("https://"), std::string::npos) << ftp.status().message();
  EXPECT_TRUE(IsHttpsAddress("https://127.0.0.1:1"));
  EXPECT_FALSE(IsHttpsAddress("127.0.0.1:1"));
}

// HTTPS against HttpServer with certificates from `tandem tls-selfsigned`: "good" names 127.0.0.1 and
// localhost, "other" is another CA's, "named" names only tandem.invalid.
class HttpsClientTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    for (const auto& [name, hosts] : {std::pair<std::string, std::string>{"good", "127.0.0.1,localhost"},
                                      {"other", "127.0.0.1,localhost"},
                                      {"named", "tandem.invalid"}}) {
      const testing::CommandResult made =
          testing::RunProgram("tandem", {"tls-selfsigned", "--out", Prefix(name), "--hosts", hosts});
      ASSERT_EQ(made.exit_code, 0) << made.err;
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static std::string Prefix(const std::string& name) { return (*dir_ / name).string(); }
  static HttpTlsOptions ServerTls(const std::string& name, const std::string& client_ca = "") {
    return {Prefix(name) + "-cert.pem", Prefix(name) + "-key.pem", client_ca};
  }
  static std::shared_ptr<const HttpClientTls> ClientTls(const HttpClientTlsOptions& options) {
    auto tls = MakeHttpClientTls(options);
    EXPECT_TRUE(tls.ok()) << tls.status().ToString();
    return tls.ok() ? *tls : nullptr;
  }
  static std::shared_ptr<const HttpClientTls> Trusting(const std::string& name) {
    return ClientTls({.ca_file = Prefix(name) + "-ca.pem"});
  }

  // POST /echo to `address` with `tls`.
  static Status Echo(const std::string& address, std::shared_ptr<const HttpClientTls> tls, HttpReply& reply,
                     milliseconds timeout = milliseconds(5000)) {
    HttpClientRequest request{.method = "POST", .target = "/echo", .body = "{}", .timeout = timeout};
    request.tls = std::move(tls);
    return HttpExchange(address, request, reply);
  }

  static testing::TempDir* dir_;
};

testing::TempDir* HttpsClientTest::dir_ = nullptr;

TEST_F(HttpsClientTest, TheRightCaVerifiesTheServer) {
  auto server = StartServer(ServerTls("good"));
  const auto tls = Trusting("good");
  for (const std::string host : {"127.0.0.1", "localhost"}) {
    const std::string address =
        "https://" + host + ":" + std::to_string(ParseHostPort(server->address())->port);
    for (int i = 0; i < 2; ++i) {  // one context, several connections
      HttpReply reply;
      const Status status = Echo(address, tls, reply);
      ASSERT_TRUE(status.ok()) << status.ToString();
      EXPECT_EQ(reply.status, 200);
      EXPECT_EQ(reply.body, "POST /echo {}");
    }
  }
}

TEST_F(HttpsClientTest, AnotherCaOrTheSystemsIsRefusedSayingWhy) {
  auto server = StartServer(ServerTls("good"));
  const std::string address = "https://" + server->address();
  for (const auto& tls : {Trusting("other"), std::shared_ptr<const HttpClientTls>()}) {
    HttpReply reply;
    const Status status = Echo(address, tls, reply);
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_NE(status.message().find(address), std::string::npos) << status.message();
    EXPECT_NE(status.message().find("certificate verify failed: "), std::string::npos) << status.message();
    EXPECT_EQ(reply.status, 0);
  }
}

TEST_F(HttpsClientTest, ACertificateForAnotherNameIsRefused) {
  auto server = StartServer(ServerTls("named"));
  const auto tls = Trusting("named");
  const std::string port = std::to_string(ParseHostPort(server->address())->port);
  for (const auto& [host, why] : {std::pair<std::string, std::string>{"127.0.0.1", "IP address mismatch"},
                                  {"localhost", "hostname mismatch"}}) {
    HttpReply reply;
    const Status status = Echo("https://" + host + ":" + port, tls, reply);
    EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
    EXPECT_NE(status.message().find("certificate verify failed: " + why), std::string::npos)
        << status.message();
  }
}

TEST_F(HttpsClientTest, PlainAndTlsMismatchesFailCleanly) {
  auto tls_server = StartServer(ServerTls("good"));
  HttpReply reply;
  Status status = Echo(tls_server->address(), nullptr, reply);  // plain HTTP to the TLS port
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_EQ(reply.status, 0);

  auto plain_server = StartServer();
  status = Echo("https://" + plain_server->address(), Trusting("good"), reply);
  EXPECT_EQ(status.code(), StatusCode::kUnavailable) << status.ToString();
  EXPECT_NE(status.message().find("TLS handshake"), std::string::npos) << status.message();
}

TEST_F(HttpsClientTest, ClientCertificatesAreSentWhenGiven) {
  auto server = StartServer(ServerTls("good", Prefix("good") + "-ca.pem"));
  const std::string address = "https://" + server->address();
  HttpReply reply;
  EXPECT_FALSE(Echo(address, Trusting("good"), reply).ok());
  const auto with_cert = ClientTls({.ca_file = Prefix("good") + "-ca.pem",
                                    .client_cert_file = Prefix("good") + "-client-cert.pem",
                                    .client_key_file = Prefix("good") + "-client-key.pem"});
  const Status status = Echo(address, with_cert, reply);
  ASSERT_TRUE(status.ok()) << status.ToString();
  EXPECT_EQ(reply.status, 200);
}

// A peer that accepts and never answers the ClientHello: the request's deadline covers the handshake.
TEST_F(HttpsClientTest, AStalledHandshakeHitsTheDeadline) {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  const std::string address = "https://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port());
  const auto start = Clock::now();
  HttpReply reply;
  const Status status = Echo(address, Trusting("good"), reply, milliseconds(300));
  const auto took = Clock::now() - start;
  EXPECT_EQ(status.code(), StatusCode::kDeadlineExceeded) << status.ToString();
  EXPECT_NE(status.message().find("TLS handshake"), std::string::npos) << status.message();
  EXPECT_GE(took, milliseconds(290));
  EXPECT_LT(took, milliseconds(3000));
}

TEST_F(HttpsClientTest, UnusableFilesAreInvalidArgumentNamingTheFile) {
  const std::string missing = (*dir_ / "missing.pem").string();
  const std::string garbage = (*dir_ / "garbage.pem").string();
  std::ofstream(garbage) << "not a certificate\n";
  const std::string cert = Prefix("good") + "-client-cert.pem";
  const std::string other_key = Prefix("other") + "-client-key.pem";
  for (const auto& [options, file] : std::vector<std::pair<HttpClientTlsOptions, std::string>>{
           {{.ca_file = missing}, missing},
           {{.ca_file = garbage}, garbage},
           {{.client_cert_file = garbage, .client_key_file = other_key}, garbage},
           {{.client_cert_file = cert, .client_key_file = missing}, missing},
           {{.client_cert_file = cert, .client_key_file = other_key}, other_key}}) {
    const auto tls = MakeHttpClientTls(options);
    ASSERT_FALSE(tls.ok()) << file;
    EXPECT_EQ(tls.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(tls.status().message().find(file), std::string::npos) << tls.status().message();
  }
  EXPECT_FALSE(MakeHttpClientTls({.client_cert_file = cert}).ok());
}

}  // namespace
}  // namespace tandem::services
