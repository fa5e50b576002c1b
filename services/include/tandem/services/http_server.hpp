// The small HTTP/1.1 server every Tandem service shares (Boost.Beast + Asio inside; none of it here).
//
// Handlers take and return the project's own HttpRequest / HttpResponse: they can be written and tested
// without a socket (see Dispatch). The routing table is data: exact path match, then method.
//
// Threads: `HttpServerOptions::threads` io threads do only socket I/O. Every handler, and every stream
// producer (HttpResponse::stream), runs on one of `handler_threads` handler threads, so a slow handler
// (a generation of several seconds) delays neither /healthz nor any other connection. Handlers may run
// concurrently (one request at a time per connection), so they must be thread-safe. When every handler
// thread is busy a request waits, first come first served, in the pool's queue (at most one request per
// open connection, so max_connections bounds it): a service bounds its own admission and answers 503.
//
// Streaming: a handler that sets HttpResponse::stream gets the status and headers sent at once
// (Transfer-Encoding: chunked; for an HTTP/1.0 client the body ends with the connection), then its
// producer runs on a handler thread and every ResponseStream::Write becomes a chunk, sent in order. The
// server notices the client leaving (the peer closes, resets or a write fails) while the producer runs
// and tells it through Write() == false and ClientGone(). After the stream ends keep-alive goes on as
// for any response. A producer that throws after the headers went out gets the connection closed without
// the final chunk (the client sees a truncated body, never a short one passed off as whole).
//
// Shutdown: Drain() stops accepting, closes idle keep-alive connections, answers a request that arrives
// afterwards with 503 + Connection: close (code "shutting_down") and lets the requests and streams in
// flight finish; then Stop() closes what is left.
//
// Failure behaviour, all answered with an OpenAI-style error object (ErrorResponse) and X-Request-Id:
//   unknown path 404 · known path, other method 405 + Allow · body over the limit 413 · header over the
//   limit 431 · malformed HTTP 400 · handler throws 500 (the server keeps running) · more than
//   max_connections open 503 (code "overloaded") · a request after Drain 503 (code "shutting_down").
//   400/413/431/503 close the connection; a connection that sends nothing for
//   request_timeout (or takes longer than that to send one request) is closed without an answer.
//
// HTTPS: with HttpServerOptions::tls set the server speaks only TLS (1.2 or 1.3, forward-secret AEAD
// ciphers, no compression, no renegotiation) on the same sessions; with a client CA every client must
// present a certificate that CA signed. A failed handshake (plain HTTP, an unknown or missing client
// certificate, a handshake slower than request_timeout) closes that connection only, counted in
// `tls_handshake_failures` when set.
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

#include "tandem/base/status.hpp"

namespace prometheus {
class Counter;
}

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

// The body of a streamed response, written by its producer on a handler thread. Valid only during the
// producer's call; not to be shared with other threads.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues `data` to be sent as the next piece (chunk) of the body and returns at once; an empty `data`
  // sends nothing. Blocks while more than about 1 MiB is queued unsent (until it drains or the client
  // goes). Returns false once the client is gone (closed the connection, or a write failed or timed out
  // after request_timeout) or the server is stopping; the producer must then return soon: Stop() waits
  // for it.
  virtual bool Write(std::string data) = 0;
  // True once the client is gone or the server is stopping, checked without writing: a producer polls it
  // between slow steps (a token of a generation).
  virtual bool ClientGone() const = 0;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";  // empty: no Content-Type header
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers, sent as given
  // When set, the status and headers are sent first (no Content-Length; Transfer-Encoding: chunked),
  // then `stream` runs on a handler thread and every Write becomes a chunk; the response ends when it
  // returns. `body` is ignored; so is `stream` for a status without a body (1xx, 204, 304). The handler
  // sets the content type ("text/event-stream" for server-sent events) and Cache-Control.
  std::function<void(ResponseStream&)> stream;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct Route {
  std::string method;  // "GET", "POST", ...
  std::string path;    // exact match, e.g. "/healthz"
  HttpHandler handler;
};

struct HttpTlsOptions {
  std::string cert_chain_file;  // PEM: the server's certificate, then any intermediates; empty: plain HTTP
  std::string key_file;         // PEM: the certificate's private key
  std::string client_ca_file;   // PEM: CAs that sign client certificates; set: clients must present one
  bool enabled() const { return !cert_chain_file.empty() || !key_file.empty(); }
};

struct HttpServerOptions {
  std::string listen = "127.0.0.1:0";  // host:port ("[::1]:8080" for IPv6); port 0 picks a free one
  size_t max_header_bytes = size_t{16} * 1024;
  size_t max_body_bytes = 1 << 20;
  std::chrono::milliseconds request_timeout{30000};       // whole read of one request; idle keep-alive too
  int max_connections = 256;                              // beyond: accept, answer 503 and close
  int threads = 1;                                        // io threads (socket I/O only)
  int handler_threads = 16;                               // threads running handlers and stream producers
  HttpTlsOptions tls;                                     // HTTPS when enabled()
  prometheus::Counter* tls_handshake_failures = nullptr;  // counted here when set; outlives the server
};

// OpenAI-style error object: {"error":{"message":..,"type":..,"param":..|null,"code":..|null}}.
// An empty `code` or `param` is sent as null.
HttpResponse ErrorResponse(int status, std::string message, std::string type, std::string code = "",
                           std::string param = "");

// Routes one request without a socket: the matching handler's response, or 404 (no route has this
// path), 405 with an Allow header (a route has the path but not the method), or 500 when the handler
// throws. The server calls this for every well-formed request, on a handler thread; a streamed response's
// producer is the caller's to run.
HttpResponse Dispatch(const std::vector<Route>& routes, const HttpRequest& request);

class HttpServer {
 public:
  // Validates the options, loads the TLS files, binds and starts serving on background threads. Errors:
  // InvalidArgument for bad options, an unparsable address (named) or a TLS file that is missing,
  // unreadable, not PEM or a key that does not match the certificate (the file named); Unavailable when
  // the address cannot be bound (port in use; named).
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options, std::vector<Route> routes);

  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  std::string address() const;  // the bound address, "127.0.0.1:PORT"

  // Graceful shutdown, first half: closes the listening socket (new connections are refused) before it
  // starts waiting, closes idle keep-alive connections, answers any request that arrives from now on
  // with 503 + Connection: close (error code "shutting_down") and lets the requests and streams in flight
  // run to completion (each connection closes after its answer). Returns once none is left or after
  // `timeout`, whichever is first: check in_flight(), then call Stop(). Thread-safe; a later call waits
  // again; returns at once after Stop. Must not be called from a handler (it would wait for itself).
  void Drain(std::chrono::milliseconds timeout);

  // Requests being handled (queued for or running on a handler thread, or having their answer written)
  // or streaming. Thread-safe.
  int in_flight() const;

  // Stops accepting, closes every connection (requests in flight get no answer; queued ones are dropped
  // without running their handler), makes every ResponseStream report the client gone, waits for running
  // handlers and producers to return and joins all threads. A handler that runs long, or a producer that
  // ignores Write() == false / ClientGone(), delays it accordingly. Idempotent. Must not be called from a
  // handler.
  void Stop();

 private:
  class Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::services
