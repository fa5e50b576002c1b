// The HTTP server over real loopback sockets: routing, limits and error objects, keep-alive, the
// connection limit, streaming (chunks, HTTP/1.0, a pipelined request, backpressure, a client leaving, a
// producer failing), the handler threads' limit, drain and stop.
//
// Timing: what a test proves it proves by order and outcome (a handler held at a gate the test opens is
// still running when another answer arrives); the few wall-clock bounds left are 5-10x what they measure,
// so a loaded 2-core machine passes them and a server that waits for the wrong thing still fails them.
#include "tandem/services/http_server.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string_view>
#include <thread>

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
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

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
    Write(method, target, std::move(body), headers);
    return Read();
  }

  // Sends a request without waiting for the answer.
  void Write(http::verb method, const std::string& target, std::string body = "",
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

  struct Streamed {
    Response head;                            // status and headers; the body went to `chunks`
    std::vector<std::string> chunks;          // one per chunk of the body, in order
    std::vector<Clock::time_point> arrivals;  // when each chunk's header was parsed
    bool complete = false;                    // the last chunk arrived
  };

  // Reads a chunked response chunk by chunk, noting when each chunk arrives.
  Streamed ReadStreamed() {
    Streamed out;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64 << 20);
    auto on_header = [&](std::uint64_t size, beast::string_view, beast::error_code&) {
      if (size == 0) return;  // the last chunk
      out.chunks.emplace_back();
      out.arrivals.push_back(Clock::now());
    };
    auto on_body = [&](std::uint64_t, beast::string_view body, beast::error_code&) {
      out.chunks.back().append(body.data(), body.size());
      return body.size();
    };
    parser.on_chunk_header(on_header);
    parser.on_chunk_body(on_body);
    beast::error_code ec;
    stream_.expires_after(kClientTimeout);
    http::async_read(stream_, buffer_, parser, [&](beast::error_code e, size_t) { ec = e; });
    Run();
    out.complete = !ec && parser.is_done();
    out.head = parser.release();
    return out;
  }

  // Reads raw bytes until `needle` has arrived; false at the deadline or when the server closes.
  bool ReadRawUntil(std::string_view needle) {
    std::string received;
    while (received.find(needle) == std::string::npos) {
      if (ReadSomeInto(received)) return false;
    }
    return true;
  }

  // Everything the server sends until it closes the connection.
  std::string ReadRawUntilClose() {
    std::string received;
    for (;;) {
      if (const beast::error_code ec = ReadSomeInto(received)) {
        EXPECT_EQ(ec, asio::error::eof) << ec.message();
        return received;
      }
    }
  }

  void Close() { stream_.close(); }

  // Appends what one read brings (at most 1 KiB) to `received`; the read's error, if any.
  beast::error_code ReadSomeInto(std::string& received) {
    char bytes[1024];
    beast::error_code ec;
    size_t count = 0;
    stream_.expires_after(kClientTimeout);
    stream_.async_read_some(asio::buffer(bytes), [&](beast::error_code e, size_t n) {
      ec = e;
      count = n;
    });
    Run();
    received.append(bytes, count);
    return ec;
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

// A connection attempt that the server accepts (false: refused).
bool CanConnect(uint16_t port) {
  asio::io_context ioc;
  tcp::socket socket(ioc);
  beast::error_code ec;
  socket.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
  return !ec;
}

// One-shot event between a handler thread and the test.
class Notification {
 public:
  void Notify() {
    std::lock_guard lock(mutex_);
    notified_ = true;
    cv_.notify_all();
  }
  bool WaitFor(Clock::duration timeout) {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, timeout, [this] { return notified_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool notified_ = false;
};

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

Clock::time_point FromNanos(int64_t nanos) {
  return Clock::time_point(std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(nanos)));
}

// A route whose handler signals that it started, then waits until the test opens `gate` (for at most
// 2 x kClientTimeout) and notes when it finished: a slow handler whose end the test chooses.
Route GatedRoute(std::string path, Notification& started, Notification& gate,
                 std::atomic<int64_t>& finished) {
  return {"GET", std::move(path), [&started, &gate, &finished](const HttpRequest&) {
            started.Notify();
            gate.WaitFor(2 * kClientTimeout);
            finished = NowNanos();
            HttpResponse response;
            response.body = R"({"done":true})";
            return response;
          }};
}

// Waits until the server counts `count` requests in flight (an answer's last byte is written before it
// counts down).
bool WaitForInFlight(const HttpServer& server, int count) {
  const auto deadline = Clock::now() + kClientTimeout;
  while (server.in_flight() != count) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

bool WaitForNoneInFlight(const HttpServer& server) {
  return WaitForInFlight(server, 0);
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
  options.threads = 1;
  options.handler_threads = 0;
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
  EXPECT_LT(std::chrono::steady_clock::now() - start, kClientTimeout);
  EXPECT_TRUE(idle.ServerCloses());
  server->Stop();
  server.reset();
}

TEST(HttpServerTest, SlowHandlerDoesNotDelayHealthzOnAnotherConnection) {
  Notification started;
  Notification gate;
  std::atomic<int64_t> finished = 0;
  std::vector<Route> routes = HealthRoutes(nullptr, nullptr);
  routes.push_back(GatedRoute("/slow", started, gate, finished));
  HttpServerOptions options;
  options.threads = 1;
  auto server = StartServer(std::move(routes), options);
  ASSERT_NE(server, nullptr);
  TestClient slow(server->port());
  slow.Write(http::verb::get, "/slow");
  ASSERT_TRUE(started.WaitFor(kClientTimeout));

  TestClient health(server->port());
  EXPECT_EQ(health.Send(http::verb::get, "/healthz").result_int(), 200);
  EXPECT_EQ(finished, 0);  // answered while the slow one was still held at its gate
  gate.Notify();
  EXPECT_EQ(slow.Read().result_int(), 200);
}

TEST(HttpServerTest, HandlerThreadsBoundTheHandlersRunningAndTheRestWaitInTurn) {
  std::mutex mutex;
  std::condition_variable changed;
  int running = 0;
  int peak = 0;
  std::vector<std::string> started;  // request paths, in the order their handlers began
  Notification gate;
  const HttpHandler held = [&](const HttpRequest& request) {
    {
      std::lock_guard lock(mutex);
      peak = std::max(peak, ++running);
      started.push_back(request.path);
    }
    changed.notify_all();
    gate.WaitFor(2 * kClientTimeout);
    {
      std::lock_guard lock(mutex);
      --running;
    }
    changed.notify_all();
    return HttpResponse{};
  };
  std::vector<Route> routes;
  for (const char* path : {"/a", "/b", "/c", "/d"}) routes.push_back({"GET", path, held});
  HttpServerOptions options;
  options.handler_threads = 2;
  auto server = StartServer(std::move(routes), options);
  ASSERT_NE(server, nullptr);

  TestClient a(server->port()), b(server->port()), c(server->port()), d(server->port());
  a.Write(http::verb::get, "/a");
  b.Write(http::verb::get, "/b");
  {
    std::unique_lock lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, kClientTimeout, [&] { return started.size() == 2; }));
  }
  c.Write(http::verb::get, "/c");
  ASSERT_TRUE(WaitForInFlight(*server, 3));  // /c is queued for a handler thread
  d.Write(http::verb::get, "/d");
  ASSERT_TRUE(WaitForInFlight(*server, 4));  // and /d behind it
  {
    std::lock_guard lock(mutex);
    EXPECT_EQ(started.size(), 2u) << "a third handler ran while two held both threads";
  }
  gate.Notify();
  for (TestClient* client : {&a, &b, &c, &d}) EXPECT_EQ(client->Read().result_int(), 200);
  std::lock_guard lock(mutex);
  EXPECT_EQ(peak, 2);
  ASSERT_EQ(started.size(), 4u);
  EXPECT_EQ(started[2], "/c") << "queued requests run first come, first served";
  EXPECT_EQ(started[3], "/d");
}

TEST(HttpServerTest, StreamedResponseArrivesChunkByChunkThenKeepAliveGoesOn) {
  std::atomic<int64_t> last_written = 0;
  std::vector<Route> routes = EchoRoutes();
  routes.push_back({"GET", "/v1/stream", [&last_written](const HttpRequest&) {
                      HttpResponse response;
                      response.content_type = "text/event-stream";
                      response.headers.emplace_back("Cache-Control", "no-cache");
                      response.body = "ignored";
                      response.stream = [&last_written](ResponseStream& out) {
                        for (int i = 0; i < 5; ++i) {
                          if (i > 0) std::this_thread::sleep_for(milliseconds(20));
                          if (i == 4) last_written = NowNanos();
                          EXPECT_TRUE(out.Write("data: {\"i\":" + std::to_string(i) + "}\n\n"));
                        }
                        EXPECT_TRUE(out.Write(""));  // nothing to send; must not end the body
                        EXPECT_TRUE(out.Write("data: [DONE]\n\n"));
                        EXPECT_FALSE(out.ClientGone());
                      };
                      return response;
                    }});
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.Write(http::verb::get, "/v1/stream");
  const TestClient::Streamed streamed = client.ReadStreamed();

  ASSERT_TRUE(streamed.complete);
  EXPECT_EQ(streamed.head.result_int(), 200);
  EXPECT_EQ(streamed.head[http::field::content_type], "text/event-stream");
  EXPECT_EQ(streamed.head[http::field::cache_control], "no-cache");
  EXPECT_EQ(streamed.head[http::field::transfer_encoding], "chunked");
  EXPECT_EQ(streamed.head.count(http::field::content_length), 0u);
  EXPECT_FALSE(streamed.head["X-Request-Id"].empty());
  EXPECT_TRUE(streamed.head.keep_alive());
  const std::vector<std::string> expected = {"data: {\"i\":0}\n\n", "data: {\"i\":1}\n\n",
                                             "data: {\"i\":2}\n\n", "data: {\"i\":3}\n\n",
                                             "data: {\"i\":4}\n\n", "data: [DONE]\n\n"};
  EXPECT_EQ(streamed.chunks, expected);
  ASSERT_FALSE(streamed.arrivals.empty());
  ASSERT_NE(last_written, 0);
  EXPECT_LT(streamed.arrivals.front(), FromNanos(last_written));  // streamed, not buffered

  EXPECT_EQ(client.Send(http::verb::post, "/v1/echo", "after").body(), "after");
  EXPECT_TRUE(WaitForNoneInFlight(*server));
}

TEST(HttpServerTest, RequestPipelinedDuringAStreamIsAnsweredAfterIt) {
  Notification streaming;
  Notification second_sent;
  std::vector<Route> routes = EchoRoutes();
  routes.push_back({"GET", "/v1/stream", [&](const HttpRequest&) {
                      HttpResponse response;
                      response.stream = [&](ResponseStream& out) {
                        out.Write("data: one\n\n");
                        streaming.Notify();
                        EXPECT_TRUE(second_sent.WaitFor(kClientTimeout));
                        out.Write("data: two\n\n");
                      };
                      return response;
                    }});
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.Write(http::verb::get, "/v1/stream");
  ASSERT_TRUE(streaming.WaitFor(kClientTimeout));
  client.Write(http::verb::post, "/v1/echo", "next");  // read ahead by the server while it streams
  second_sent.Notify();
  const TestClient::Streamed streamed = client.ReadStreamed();
  EXPECT_TRUE(streamed.complete);
  EXPECT_EQ(streamed.chunks, (std::vector<std::string>{"data: one\n\n", "data: two\n\n"}));
  EXPECT_EQ(client.Read().body(), "next");
}

TEST(HttpServerTest, Http10ClientGetsTheStreamUnchunkedUntilClose) {
  std::vector<Route> routes = {{"GET", "/v1/stream", [](const HttpRequest&) {
                                  HttpResponse response;
                                  response.content_type = "text/event-stream";
                                  response.stream = [](ResponseStream& out) {
                                    out.Write("data: a\n\n");
                                    out.Write("data: b\n\n");
                                  };
                                  return response;
                                }}};
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.SendRaw("GET /v1/stream HTTP/1.0\r\n\r\n");
  const std::string received = client.ReadRawUntilClose();
  EXPECT_EQ(received.rfind("HTTP/1.0 200", 0), 0u) << received;
  EXPECT_EQ(received.find("Transfer-Encoding"), std::string::npos) << received;
  EXPECT_EQ(received.find("Content-Length"), std::string::npos) << received;
  const size_t body = received.find("\r\n\r\n");
  ASSERT_NE(body, std::string::npos);
  EXPECT_EQ(received.substr(body + 4), "data: a\n\ndata: b\n\n");
}

TEST(HttpServerTest, LargeStreamIsDeliveredWholeThroughTheWriteQueueLimit) {
  constexpr size_t kPiece = 64 * 1024;
  constexpr int kPieces = 64;  // 4 MiB: Write has to wait for the queue to drain
  std::vector<Route> routes = {{"GET", "/v1/big", [](const HttpRequest&) {
                                  HttpResponse response;
                                  response.content_type = "application/octet-stream";
                                  response.stream = [](ResponseStream& out) {
                                    for (int i = 0; i < kPieces; ++i) {
                                      if (!out.Write(std::string(kPiece, static_cast<char>('a' + i % 26)))) {
                                        return;
                                      }
                                    }
                                  };
                                  return response;
                                }}};
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.Write(http::verb::get, "/v1/big");
  const TestClient::Streamed streamed = client.ReadStreamed();
  ASSERT_TRUE(streamed.complete);
  ASSERT_EQ(streamed.chunks.size(), static_cast<size_t>(kPieces));
  for (int i = 0; i < kPieces; ++i) {
    EXPECT_EQ(streamed.chunks[i], std::string(kPiece, static_cast<char>('a' + i % 26))) << i;
  }
}

TEST(HttpServerTest, ClientDisconnectMidStreamIsSeenByTheProducer) {
  Notification returned;
  std::atomic<int64_t> gone_at = 0;
  std::vector<Route> routes = {{"GET", "/v1/stream", [&](const HttpRequest&) {
                                  HttpResponse response;
                                  response.content_type = "text/event-stream";
                                  response.stream = [&](ResponseStream& out) {
                                    EXPECT_TRUE(out.Write("data: first\n\n"));
                                    // A slow step: polls without writing, so only the server's read
                                    // of the socket can tell that the client left.
                                    const auto deadline = Clock::now() + kClientTimeout;
                                    while (!out.ClientGone() && Clock::now() < deadline) {
                                      std::this_thread::sleep_for(milliseconds(2));
                                    }
                                    if (out.ClientGone()) gone_at = NowNanos();
                                    EXPECT_FALSE(out.Write("data: late\n\n"));
                                    returned.Notify();
                                  };
                                  return response;
                                }}};
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.Write(http::verb::get, "/v1/stream");
  ASSERT_TRUE(client.ReadRawUntil("data: first"));
  EXPECT_EQ(server->in_flight(), 1);
  const auto closed_at = Clock::now();
  client.Close();

  ASSERT_TRUE(returned.WaitFor(kClientTimeout));
  ASSERT_NE(gone_at, 0);
  EXPECT_LT(FromNanos(gone_at) - closed_at, kClientTimeout);
  EXPECT_TRUE(WaitForNoneInFlight(*server));
}

TEST(HttpServerTest, ProducerThatThrowsCutsTheBodyOff) {
  std::vector<Route> routes = {{"GET", "/v1/stream", [](const HttpRequest&) {
                                  HttpResponse response;
                                  response.stream = [](ResponseStream& out) {
                                    out.Write("data: partial\n\n");
                                    throw std::runtime_error("model crashed");
                                  };
                                  return response;
                                }}};
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.Write(http::verb::get, "/v1/stream");
  const TestClient::Streamed streamed = client.ReadStreamed();
  EXPECT_EQ(streamed.head.result_int(), 200);
  EXPECT_FALSE(streamed.complete);  // no last chunk: the client knows the body is cut off
  EXPECT_TRUE(WaitForNoneInFlight(*server));
}

TEST(HttpServerTest, StopEndsAStreamWhoseProducerWritesUntilFalse) {
  Notification streaming;
  Notification returned;
  std::vector<Route> routes = {{"GET", "/v1/stream", [&](const HttpRequest&) {
                                  HttpResponse response;
                                  response.stream = [&](ResponseStream& out) {
                                    streaming.Notify();
                                    while (out.Write("data: tick\n\n")) {
                                      std::this_thread::sleep_for(milliseconds(5));
                                    }
                                    EXPECT_TRUE(out.ClientGone());
                                    returned.Notify();
                                  };
                                  return response;
                                }}};
  auto server = StartServer(std::move(routes));
  ASSERT_NE(server, nullptr);
  TestClient client(server->port());
  client.Write(http::verb::get, "/v1/stream");
  ASSERT_TRUE(streaming.WaitFor(kClientTimeout));
  const auto start = Clock::now();
  server->Stop();
  EXPECT_LT(Clock::now() - start, kClientTimeout);
  EXPECT_TRUE(returned.WaitFor(milliseconds(0)));  // Stop waited for the producer
}

TEST(HttpServerTest, DrainLetsTheRequestInFlightFinishAndRefusesNewConnections) {
  Notification started;
  Notification gate;
  std::atomic<int64_t> finished = 0;
  auto server = StartServer({GatedRoute("/slow", started, gate, finished)});
  ASSERT_NE(server, nullptr);
  TestClient slow(server->port());
  slow.Write(http::verb::get, "/slow");
  ASSERT_TRUE(started.WaitFor(kClientTimeout));
  EXPECT_EQ(server->in_flight(), 1);

  const auto start = Clock::now();
  std::atomic<int64_t> drained = 0;
  std::thread drainer([&] {
    server->Drain(std::chrono::seconds(60));
    drained = NowNanos();
  });
  // Once the acceptor is closed a connection attempt is refused, while the request is still running.
  bool refused = false;
  while (!refused && Clock::now() - start < kClientTimeout) refused = !CanConnect(server->port());
  EXPECT_TRUE(refused);
  EXPECT_EQ(finished, 0);
  EXPECT_EQ(drained, 0) << "Drain returned with the request in flight";
  gate.Notify();

  const Response response = slow.Read();
  EXPECT_EQ(response.result_int(), 200);
  EXPECT_EQ(response.body(), R"({"done":true})");
  EXPECT_FALSE(response.keep_alive());  // draining: Connection: close
  drainer.join();
  ASSERT_NE(finished, 0);
  EXPECT_GE(drained, finished);                                     // waited for the request
  EXPECT_LT(FromNanos(drained) - start, std::chrono::seconds(30));  // and not for the timeout
  EXPECT_EQ(server->in_flight(), 0);
  EXPECT_TRUE(slow.ServerCloses());

  const auto stop_start = Clock::now();
  server->Stop();
  EXPECT_LT(Clock::now() - stop_start, kClientTimeout);
}

TEST(HttpServerTest, DrainClosesIdleConnectionsAndAnswersALateRequestWith503) {
  auto server = StartServer(EchoRoutes());
  ASSERT_NE(server, nullptr);
  TestClient busy(server->port());
  EXPECT_EQ(busy.Send(http::verb::post, "/v1/echo", "x").result_int(), 200);
  busy.SendRaw("POST /v1/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n\r\n");  // no body yet
  // A round trip on another connection: by its end the server has read the start of busy's request.
  TestClient idle(server->port());
  EXPECT_EQ(idle.Send(http::verb::post, "/v1/echo", "y").result_int(), 200);

  const auto start = Clock::now();
  server->Drain(std::chrono::seconds(60));
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(30));  // nothing in flight: not the timeout
  EXPECT_FALSE(CanConnect(server->port()));
  EXPECT_TRUE(idle.ServerCloses());

  busy.SendRaw("body");
  const Response response = busy.Read();
  EXPECT_EQ(response.result_int(), 503);
  const nlohmann::json error = ErrorOf(response);
  EXPECT_EQ(error["code"], "shutting_down");
  EXPECT_EQ(error["type"], "server_error");
  EXPECT_FALSE(response.keep_alive());
  EXPECT_TRUE(busy.ServerCloses());
}

TEST(HttpServerTest, DrainTimesOutOnASlowHandlerAndStopStillReturns) {
  Notification started;
  Notification gate;
  std::atomic<int64_t> finished = 0;
  auto server = StartServer({GatedRoute("/slow", started, gate, finished)});
  ASSERT_NE(server, nullptr);
  TestClient slow(server->port());
  slow.Write(http::verb::get, "/slow");
  ASSERT_TRUE(started.WaitFor(kClientTimeout));

  const auto start = Clock::now();
  server->Drain(milliseconds(200));
  const auto drain_took = Clock::now() - start;
  EXPECT_GE(drain_took, milliseconds(200));
  EXPECT_LT(drain_took, milliseconds(2000));
  EXPECT_EQ(server->in_flight(), 1);
  EXPECT_EQ(finished, 0);

  std::thread opener([&gate] {
    std::this_thread::sleep_for(milliseconds(100));
    gate.Notify();
  });
  server->Stop();  // waits for the handler, whose answer goes nowhere
  opener.join();
  EXPECT_NE(finished, 0);
  EXPECT_TRUE(slow.ServerCloses());
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
