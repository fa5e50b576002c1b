#include "tandem/services/http_client.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <string>
#include <string_view>

#include "tandem/services/http_server.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

std::unique_ptr<HttpServer> StartServer() {
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
  auto server = HttpServer::Start({}, std::move(routes));
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

}  // namespace
}  // namespace tandem::services
