// The small HTTP/1.1 server every Tandem service shares (Boost.Beast + Asio inside; none of it here).
//
// Handlers take and return the project's own HttpRequest / HttpResponse: they can be written and tested
// without a socket (see Dispatch). The routing table is data: exact path match, then method.
//
// Threads: the server runs `HttpServerOptions::threads` io threads. A handler runs on one of them and may
// be called concurrently from several (one request at a time per connection), so it must be thread-safe
// and should not block for long: with one io thread a slow handler delays every other connection.
//
// Failure behaviour, all answered with an OpenAI-style error object (ErrorResponse) and X-Request-Id:
//   unknown path 404 · known path, other method 405 + Allow · body over the limit 413 · header over the
//   limit 431 · malformed HTTP 400 · handler throws 500 (the server keeps running) · more than
//   max_connections open 503. 400/413/431/503 close the connection; a connection that sends nothing for
//   request_timeout (or takes longer than that to send one request) is closed without an answer.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tandem/common/status.hpp"

namespace tandem::services {

struct HttpRequest {
  std::string method;                                        // "GET"
  std::string path;                                          // "/v1/models" (the target without the query)
  std::string query;                                         // after '?', raw (not decoded)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased, in arrival order
  std::string body;
  std::string request_id;  // from X-Request-Id if present and sane, else generated

  // The first header with this (lower-case) name, or nullptr.
  const std::string* Header(std::string_view lower_name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";  // empty: no Content-Type header
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, sent as given
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct Route {
  std::string method;  // "GET", "POST", ...
  std::string path;    // exact match, e.g. "/healthz"
  HttpHandler handler;
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port ("[::1]:8080" for IPv6); port 0 picks a free one
  size_t max_header_bytes = 16 * 1024;
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds request_timeout{30000};  // whole read of one request; idle keep-alive too
  int max_connections = 256;                         // beyond: accept, answer 503 and close
  int threads = 1;                                   // io threads
};

// OpenAI-style error object: {"error":{"message":..,"type":..,"param":..|null,"code":..|null}}.
// An empty `code` or `param` is sent as null.
HttpResponse ErrorResponse(int status, std::string message, std::string type, std::string code = "",
                           std::string param = "");

// Routes one request without a socket: the matching handler's response, or 404 (no route has this
// path), 405 with an Allow header (a route has the path but not the method), or 500 when the handler
// throws. The server calls this for every well-formed request.
HttpResponse Dispatch(const std::vector<Route>& routes, const HttpRequest& request);

class HttpServer {
 public:
  // Validates the options, binds and starts serving on background threads. Errors: InvalidArgument for
  // bad options or an unparsable address, Unavailable when the address cannot be bound (port in use);
  // either message names the address.
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, std::vector<Route> routes);

  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  std::string address() const;  // the bound address, "127.0.0.1:PORT"

  // Stops accepting, closes every connection (requests in flight get no answer), waits for a running
  // handler to return and joins the io threads. Idempotent. Must not be called from a handler.
  void Stop();

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::services
