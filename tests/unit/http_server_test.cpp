#include "tandem/services/http_server.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>

#include <prometheus/counter.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "tandem/services/health.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Response = http::response<http::string_body>;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Bounds every client operation, so a server that fails to answer fails the test instead of hanging it.
constexpr std::chrono::seconds kClientTimeout{5};

// A blocking HTTP/1.1 client on one loopback connection (async Beast underneath for the deadlines).
class TestClient {
 public:
  explicit TestClient(uint16_t port) : stream_(ioc_) {
    stream_.expires_after(kClientTimeout);
    stream_.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  }

  Response Send(http::verb method, const std::string& target, std::string body = "",
                const Headers& headers = {}) {
    http::request<http::string_body> request{method, target, 11};
    request.set(http::field::host, "127.0.0.1");
    for (const auto& [name, value] : headers) request.set(name, value);
    request.body() = std::move(body);
    request.prepare_payload();
    beast::error_code ec;
    stream_.expires_after(kClientTimeout);
    http::async_write(stream_, request, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    EXPECT_FALSE(ec) << "write: " << ec.message();
    return Read();
  }

  void SendRaw(const std::string& bytes) {
    beast::error_code ec;
    stream_.expires_after(kClientTimeout);
    asio::async_write(stream_, asio::buffer(bytes), [&](beast::error_code e, size_t) { ec = e; });
    Run();
    EXPECT_FALSE(ec) << "write: " << ec.message();
  }

  Response Read() {
    Response response;
    beast::error_code ec;
    stream_.expires_after(kClientTimeout);
    http::async_read(stream_, buffer_, response, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    EXPECT_FALSE(ec) << "read: " << ec.message();
    return response;
  }

  // True when the server closes the connection (end of stream or reset) before the client deadline.
  bool ServerCloses() {
    char byte = 0;
    beast::error_code ec;
    stream_.expires_after(kClientTimeout);
    stream_.async_read_some(asio::buffer(&byte, 1), [&](beast::error_code e, size_t) { ec = e; });
    Run();
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  }

 private:
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  asio::io_context ioc_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
};

std::unique_ptr<HttpServer> StartServer(std::vector<Route> routes, HttpServerOptions options = {}) {
  auto server = HttpServer::Start(std::move(options), std::move(routes));
  if (!server.ok()) {
    ADD_FAILURE() << server.status().ToString();
    return nullptr;
  }
  return std::move(server).value();
}

// Echoes what the server parsed, so tests see the HttpRequest a handler gets.
std::vector<Route> EchoRoutes() {
  return {{"GET", "/v1/echo",
           [](const HttpRequest& request) {
             const std::string* custom = request.Header("x-custom");
             HttpResponse response;
             response.body = nlohmann::json{{"method", request.method},
                                            {"path", request.path},
                                            {"query", request.query},
                                            {"custom", custom ? *custom : ""},
                                            {"request_id", request.request_id}}
                                 .dump();
             return response;
           }},
          {"POST", "/v1/echo",
           [](const HttpRequest& request) {
             HttpResponse response;
             response.content_type = "text/plain";
             response.body = request.body;
             return response;
           }},
          {"DELETE", "/v1/echo",
           [](const HttpRequest&) {
             HttpResponse response;
             response.status = 204;
             return response;
           }},
          {"GET", "/v1/throw", [](const HttpRequest&) -> HttpResponse { throw std::runtime_error("boom"); }}};
}

nlohmann::json ErrorOf(const Response& response) {
  const nlohmann::json body = nlohmann::json::parse(response.body(), nullptr, /*allow_exceptions=*/false);
  EXPECT_TRUE(body.is_object() && body.contains("error")) << response.body();
  return body.is_object() && body.contains("error") ? body["error"] : nlohmann::json::object();
}

TEST(HttpServerTest, GetRouteAnsweredWithBodyAndJsonContentType) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->address(), "127.0.0.1:" + std::to_string(server->port()));
  TestClient client(server->port());

  const Response response = client.Send(http::verb::get, "/v1/echo?a=1&b=x%20y", "",
                                        {{"X-Custom", "v"}, {"X-Request-Id", "req-42"}});
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_EQ(response["X-Request-Id"], "req-42");
  const nlohmann::json echo = nlohmann::json::parse(response.body());
  EXPECT_EQ(echo["method"], "GET");
  EXPECT_EQ(echo["path"], "/v1/echo");
  EXPECT_EQ(echo["query"], "a=1&b=x%20y");
  EXPECT_EQ(echo["custom"], "v");
  EXPECT_EQ(echo["request_id"], "req-42");
}

TEST(HttpServerTest, RequestIdIsGeneratedWhenMissingOrUnsafe) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response missing = client.Send(http::verb::get, "/v1/echo");
  const Response unsafe = client.Send(http::verb::get, "/v1/echo", "", {{"X-Request-Id", "a b\"c"}});
  for (const Response* response : {&missing, &unsafe}) {
    const std::string id(response->at("X-Request-Id"));
    EXPECT_EQ(id.size(), 32u);
    EXPECT_EQ(nlohmann::json::parse(response->body())["request_id"], id);
  }
  EXPECT_NE(missing["X-Request-Id"], unsafe["X-Request-Id"]);
}

TEST(HttpServerTest, KeepAliveServesTwoRequestsOnOneConnectionAndCloseIsHonoured) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response first = client.Send(http::verb::post, "/v1/echo", "one");
  const Response second = client.Send(http::verb::post, "/v1/echo", "two");
  EXPECT_EQ(first.body(), "one");
  EXPECT_EQ(second.body(), "two");
  EXPECT_EQ(second[http::field::content_type], "text/plain");
  EXPECT_TRUE(second.keep_alive());

  const Response last = client.Send(http::verb::post, "/v1/echo", "three", {{"Connection", "close"}});
  EXPECT_EQ(last.body(), "three");
  EXPECT_FALSE(last.keep_alive());
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, UnknownPathIs404ErrorObject) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response response = client.Send(http::verb::get, "/v1/nope");
  EXPECT_EQ(response.result_int(), 404);
  EXPECT_EQ(response[http::field::content_type], "application/json");
  EXPECT_FALSE(response["X-Request-Id"].empty());
  const nlohmann::json error = ErrorOf(response);
  EXPECT_TRUE(error["message"].is_string());
  EXPECT_EQ(error["type"], "invalid_request_error");
  EXPECT_EQ(error["code"], "not_found");
  EXPECT_TRUE(error["param"].is_null());
  EXPECT_TRUE(response.keep_alive());
}

TEST(HttpServerTest, KnownPathWithOtherMethodIs405WithAllow) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response response = client.Send(http::verb::put, "/v1/echo", "x");
  EXPECT_EQ(response.result_int(), 405);
  EXPECT_EQ(response[http::field::allow], "GET, POST, DELETE");
  EXPECT_EQ(ErrorOf(response)["code"], "method_not_allowed");
  // No body on a 204, and the connection stays usable.
  EXPECT_EQ(client.Send(http::verb::delete_, "/v1/echo").result_int(), 204);
}

TEST(HttpServerTest, OversizedBodyIs413AndCloses) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  auto server = StartServer(EchoRoutes(), options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  EXPECT_EQ(client.Send(http::verb::post, "/v1/echo", std::string(1024, 'a')).result_int(), 200);
  const Response response = client.Send(http::verb::post, "/v1/echo", std::string(64 * 1024, 'a'));
  EXPECT_EQ(response.result_int(), 413);
  EXPECT_EQ(ErrorOf(response)["code"], "body_too_large");
  EXPECT_FALSE(response.keep_alive());
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, OversizedHeaderIs431) {
  HttpServerOptions options;
  options.max_header_bytes = 1024;
  auto server = StartServer(EchoRoutes(), options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response response = client.Send(http::verb::get, "/v1/echo", "", {{"X-Big", std::string(4096, 'h')}});
  EXPECT_EQ(response.result_int(), 431);
  EXPECT_EQ(ErrorOf(response)["code"], "header_too_large");
}

TEST(HttpServerTest, GarbageIs400ThenClose) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.SendRaw(std::string("\x01\x02\x03 garbage \xff\r\n\r\n"));
  const Response response = client.Read();
  EXPECT_EQ(response.result_int(), 400);
  EXPECT_EQ(ErrorOf(response)["type"], "invalid_request_error");
  EXPECT_FALSE(response["X-Request-Id"].empty());
  EXPECT_TRUE(client.ServerCloses());
}

TEST(HttpServerTest, ThrowingHandlerIs500AndServerKeepsRunning) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response response = client.Send(http::verb::get, "/v1/throw");
  EXPECT_EQ(response.result_int(), 500);
  const nlohmann::json error = ErrorOf(response);
  EXPECT_EQ(error["type"], "server_error");
  EXPECT_EQ(error["message"].get<std::string>().find("boom"), std::string::npos);  // internals stay inside
  EXPECT_EQ(client.Send(http::verb::post, "/v1/echo", "still here").body(), "still here");
  TestClient other(server->port());
  EXPECT_EQ(other.Send(http::verb::post, "/v1/echo", "again").body(), "again");
}

TEST(HttpServerTest, IdleConnectionIsClosedAfterRequestTimeout) {
  HttpServerOptions options;
  options.request_timeout = std::chrono::milliseconds(100);
  auto server = StartServer(EchoRoutes(), options);
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  EXPECT_EQ(client.Send(http::verb::post, "/v1/echo", "x").body(), "x");
  const auto start = std::chrono::steady_clock::now();
  EXPECT_TRUE(client.ServerCloses());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
}

TEST(HttpServerTest, ConnectionsBeyondTheLimitGet503) {
  HttpServerOptions options;
  options.max_connections = 1;
  auto server = StartServer(EchoRoutes(), options);
  ASSERT_NE(server, nullptr);
  TestClient first(server->port());
  EXPECT_EQ(first.Send(http::verb::post, "/v1/echo", "x").result_int(), 200);
  TestClient second(server->port());
  const Response response = second.Read();
  EXPECT_EQ(response.result_int(), 503);
  EXPECT_EQ(ErrorOf(response)["code"], "overloaded");
  EXPECT_TRUE(second.ServerCloses());
  EXPECT_EQ(first.Send(http::verb::post, "/v1/echo", "y").body(), "y");
}

TEST(HttpServerTest, ReadyzFollowsReadinessAndHealthzIsAlwaysOk) {
  std::atomic<bool> ready = false;
  auto server = StartServer(HealthRoutes([&ready] { return ready.load(); }, nullptr));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  EXPECT_EQ(nlohmann::json::parse(client.Send(http::verb::get, "/healthz").body())["status"], "ok");

  const Response not_ready = client.Send(http::verb::get, "/readyz");
  EXPECT_EQ(not_ready.result_int(), 503);
  EXPECT_EQ(ErrorOf(not_ready)["code"], "not_ready");
  ready = true;
  EXPECT_EQ(client.Send(http::verb::get, "/readyz").result_int(), 200);
  EXPECT_EQ(client.Send(http::verb::get, "/metrics").result_int(), 404);  // no registry, no route
}

TEST(HttpServerTest, MetricsExposeARegisteredCounter) {
  auto registry = std::make_shared<prometheus::Registry>();
  auto& family =
      prometheus::BuildCounter().Name("tandem_test_requests_total").Help("test").Register(*registry);
  family.Add({{"route", "a"}}).Increment(3);
  auto server = StartServer(HealthRoutes(nullptr, registry));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  const Response response = client.Send(http::verb::get, "/metrics");
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response[http::field::content_type], "text/plain; version=0.0.4");
  EXPECT_NE(response.body().find("# TYPE tandem_test_requests_total counter"), std::string::npos);
  EXPECT_NE(response.body().find("tandem_test_requests_total{route=\"a\"} 3"), std::string::npos)
      << response.body();
}

TEST(HttpServerTest, StartFailsClearlyOnAddressInUseAndBadAddresses) {
  auto first = StartServer({});
  ASSERT_NE(first, nullptr);
  HttpServerOptions options;
  options.listen = first->address();
  const auto second = HttpServer::Start(options, {});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find(first->address()), std::string::npos) << second.status().message();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().message();

  for (const char* listen : {"127.0.0.1", "127.0.0.1:99999", "127.0.0.1:http", "127.0.0.1:"}) {
    options.listen = listen;
    const auto bad = HttpServer::Start(options, {});
    ASSERT_FALSE(bad.ok()) << listen;
    EXPECT_NE(bad.status().message().find(listen), std::string::npos) << bad.status().message();
  }
  options.listen = "127.0.0.1:0";
  options.threads = 0;
  EXPECT_EQ(HttpServer::Start(options, {}).status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpServerTest, StopIsIdempotentFastAndClosesConnections) {
  HttpServerOptions options;
  options.threads = 2;
  auto server = StartServer(EchoRoutes(), options);
  ASSERT_NE(server, nullptr);
  TestClient idle(server->port());
  EXPECT_EQ(idle.Send(http::verb::post, "/v1/echo", "x").result_int(), 200);
  const auto start = std::chrono::steady_clock::now();
  server->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_TRUE(idle.ServerCloses());
  server->Stop();
  server.reset();
}

TEST(DispatchTest, RoutesWithoutASocket) {
  const std::vector<Route> routes = {{"GET", "/bad-status", [](const HttpRequest&) {
                                        HttpResponse response;
                                        response.status = 42;
                                        return response;
                                      }}};
  HttpRequest request;
  request.method = "GET";
  request.path = "/bad-status";
  EXPECT_EQ(Dispatch(routes, request).status, 500);
  request.method = "POST";
  const HttpResponse not_allowed = Dispatch(routes, request);
  EXPECT_EQ(not_allowed.status, 405);
  ASSERT_EQ(not_allowed.headers.size(), 1u);
  EXPECT_EQ(not_allowed.headers[0], (std::pair<std::string, std::string>{"Allow", "GET"}));
}

TEST(ErrorResponseTest, IsAnOpenAiErrorObject) {
  const HttpResponse response =
      ErrorResponse(400, "bad \"temperature\"", "invalid_request_error", "invalid_value", "temperature");
  EXPECT_EQ(response.status, 400);
  EXPECT_EQ(response.content_type, "application/json");
  EXPECT_EQ(nlohmann::json::parse(response.body),
            nlohmann::json::parse(R"({"error":{"message":"bad \"temperature\"","type":"invalid_request_error",
                                   "param":"temperature","code":"invalid_value"}})"));
}

}  // namespace
}  // namespace tandem::services
