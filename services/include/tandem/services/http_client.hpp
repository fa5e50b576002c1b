// A small synchronous HTTP/1.1 client (Boost.Beast + Asio inside; none of it here): one request on a fresh
// connection, with a deadline on the whole exchange (resolve, connect, write, read). Services use it to talk
// to each other (a tail's heartbeats to the scheduler); the integration tests' client wraps it.
//
// Threads: every call runs on the calling thread with its own io_context; calls are independent and may run
// concurrently. Failure behaviour: an unreachable peer, a reset connection or malformed HTTP is
// Unavailable, a deadline that passes is DeadlineExceeded; both name the address. Any status code the
// server sends (4xx, 5xx included) is a reply, not an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem::services {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

struct HttpReply {
  int status = 0;       // 0: no response header arrived
  HttpHeaders headers;  // names lower-cased, in arrival order
  std::string body;
  // The first header with this (lower-case) name, or nullptr.
  const std::string* Header(std::string_view lower_name) const;
};

struct HttpClientRequest {
  std::string method = "GET";
  std::string target = "/";
  std::string body;     // a non-empty body is sent as application/json unless `headers` name a type
  HttpHeaders headers;  // extra request headers, sent as given
  std::chrono::milliseconds timeout{10000};      // the whole exchange, from resolving to the body's last byte
  uint64_t max_body_bytes = uint64_t{64} << 20;  // a longer response body is an error
  // When set, each piece of the response body is passed here as it arrives (and appended to the reply's
  // body as well); returning false closes the connection at once and ends the exchange without error.
  std::function<bool(std::string_view)> on_data;
};

// The general form: fills `reply` as far as the exchange got (status and headers once they arrived, the
// body received so far) and returns the error that ended it early, if any.
Status HttpExchange(const std::string& host_port, const HttpClientRequest& request, HttpReply& reply);

// One request to `host_port` ("127.0.0.1:9300", "[::1]:9300", "scheduler.local:9300"); the reply, or the
// error that kept it from arriving whole within `timeout`.
Result<HttpReply> HttpRequestOnce(const std::string& host_port, const std::string& method,
                                  const std::string& target, const std::string& body,
                                  std::chrono::milliseconds timeout);

}  // namespace tandem::services
