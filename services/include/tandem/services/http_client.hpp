// A small synchronous HTTP/1.1 client (Boost.Beast + Asio + OpenSSL inside; none of it here): one request on
// a fresh connection, with a deadline on the whole exchange (resolve, connect, TLS handshake, write, read).
// Services use it to talk to each other (a tail's heartbeats to the scheduler); the integration tests'
// client wraps it.
//
// Addresses: "HOST:PORT" and "http://HOST:PORT" speak plain HTTP; "https://HOST:PORT" speaks HTTPS (TLS 1.2
// or 1.3, SNI set for a host name, the server's certificate verified against the request's CAs and its
// names checked against HOST, an IP address against its IP entries).
//
// Threads: every call runs on the calling thread with its own io_context; calls are independent and may run
// concurrently. Failure behaviour: an unreachable peer, a reset connection, a failed TLS handshake (a
// certificate that does not verify, and why) or malformed HTTP is Unavailable, a deadline that passes is
// DeadlineExceeded; both name the address. Any status code the
// server sends (4xx, 5xx included) is a reply, not an error.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
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

// How an https:// peer is checked, and what this client shows a server that asks for a certificate.
struct HttpClientTlsOptions {
  std::string ca_file;           // PEM: the CAs that may sign the server's certificate; empty: the system's
  std::string client_cert_file;  // PEM: this client's certificate (chain), for servers that require one
  std::string client_key_file;   // PEM: its private key; given with client_cert_file
};

// HttpClientTlsOptions loaded once (the CAs parsed, the client key checked) and shared by every request
// that uses it: a tail heartbeating every second does not re-read its files. Safe to share across threads.
class HttpClientTls;

// InvalidArgument naming the file for a CA, certificate or key that is missing, unreadable, not PEM, or a
// key that does not match its certificate.
Result<std::shared_ptr<const HttpClientTls>> MakeHttpClientTls(const HttpClientTlsOptions& options);

// Whether `address` names an HTTPS peer ("https://HOST:PORT").
bool IsHttpsAddress(std::string_view address);

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
  // For an https:// address: how the server is checked; null: the system's CAs and no client certificate.
  std::shared_ptr<const HttpClientTls> tls;
};

// The general form: fills `reply` as far as the exchange got (status and headers once they arrived, the
// body received so far) and returns the error that ended it early, if any.
Status HttpExchange(const std::string& address, const HttpClientRequest& request, HttpReply& reply);

// One request to `host_port` ("127.0.0.1:9300", "[::1]:9300", "https://scheduler.local:9300"); the reply,
// or the error that kept it from arriving whole within `timeout`. HTTPS with the system's CAs.
Result<HttpReply> HttpRequestOnce(const std::string& host_port, const std::string& method,
                                  const std::string& target, const std::string& body,
                                  std::chrono::milliseconds timeout);

}  // namespace tandem::services
