#include "tandem/services/http_client.hpp"

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <optional>

#include "tandem/base/strings.hpp"
#include "tls_context.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

constexpr std::string_view kHttpsScheme = "https://";
constexpr std::string_view kHttpScheme = "http://";

// An address split into its parts.
struct Peer {
  std::string host_port;  // without the scheme: the Host header
  HostPort parsed;
  bool tls = false;
};

Result<Peer> ParsePeer(const std::string& address) {
  std::string_view rest = address;
  const bool tls = rest.starts_with(kHttpsScheme);
  if (tls) {
    rest.remove_prefix(kHttpsScheme.size());
  } else if (rest.starts_with(kHttpScheme)) {
    rest.remove_prefix(kHttpScheme.size());
  } else if (rest.find("://") != std::string_view::npos) {
    return InvalidArgument("HTTP address '" + address + "': only http:// and https:// are spoken");
  }
  if (rest.ends_with('/')) rest.remove_suffix(1);
  auto parsed = ParseHostPort(rest);
  if (!parsed.ok()) return parsed.status().WithContext("HTTP address");
  return Peer{std::string(rest), std::move(*parsed), tls};
}

// The TLS context for a request: its own, else one with the system's CAs made once for the process.
Result<const HttpClientTls*> ClientTlsFor(const HttpClientRequest& request) {
  if (request.tls) return request.tls.get();
  static const Result<std::shared_ptr<const HttpClientTls>> system_default = MakeHttpClientTls({});
  if (!system_default.ok()) return system_default.status();
  return system_default->get();
}

// Blocking calls with a deadline: each step is started as an asynchronous operation and the io_context
// runs until it completes or the deadline passes; then `cancel` aborts it (Beast's own stream timeouts
// cover only asynchronous use, and a synchronous read would wait forever on a silent peer).
class Exchange {
 public:
  // `address` (as the caller gave it) names the peer in errors.
  Exchange(std::string address, SteadyClock::time_point deadline, std::chrono::milliseconds timeout)
      : address_(std::move(address)), deadline_(deadline), timeout_(timeout), socket_(io_) {}

  ~Exchange() {
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  // Runs `start(handler)` (which starts one asynchronous operation that calls handler(error_code)) to
  // completion; the error it ended with, or timed_out after `cancel` aborted it at the deadline.
  template <typename Start, typename Cancel>
  beast::error_code Step(Start&& start, Cancel&& cancel) {
    std::optional<beast::error_code> result;
    start([&result](beast::error_code ec) { result = ec; });
    io_.restart();
    io_.run_until(deadline_);
    if (!result) {
      cancel();
      io_.restart();
      io_.run();  // the handler runs with operation_aborted
      timed_out_ = true;
      return asio::error::timed_out;
    }
    return *result;
  }

  Status Connect(const HostPort& address) {
    const std::string& host = address.host;
    const std::string port = std::to_string(address.port);
    tcp::resolver resolver(io_);
    tcp::resolver::results_type endpoints;
    beast::error_code ec = Step(
        [&](auto handler) {
          resolver.async_resolve(
              host, port,
              [&endpoints, handler](beast::error_code e, tcp::resolver::results_type found) mutable {
                endpoints = std::move(found);
                handler(e);
              });
        },
        [&] { resolver.cancel(); });
    if (ec) return Failure("resolving", ec);
    ec = Step(
        [&](auto handler) {
          asio::async_connect(socket_, endpoints,
                              [handler](beast::error_code e, const tcp::endpoint&) mutable { handler(e); });
        },
        [&] { CloseSocket(); });
    if (ec) return Failure("connecting", ec);
    return Status::Ok();
  }

  // TLS over the connected socket: SNI and the certificate's expected name (or IP address) from `host`.
  Status Handshake(const HttpClientTls& tls, const std::string& host) {
    tls_.emplace(socket_, tls.context);
    SSL* native = tls_->native_handle();
    X509_VERIFY_PARAM* verify = SSL_get0_param(native);
    X509_VERIFY_PARAM_set_hostflags(verify, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    beast::error_code not_ip;
    asio::ip::make_address(host, not_ip);
    // SNI carries host names only (RFC 6066); an IP address is checked against the certificate's IP entries.
    const bool named = not_ip ? SSL_set_tlsext_host_name(native, host.c_str()) == 1 &&
                                    X509_VERIFY_PARAM_set1_host(verify, host.c_str(), host.size()) == 1
                              : X509_VERIFY_PARAM_set1_ip_asc(verify, host.c_str()) == 1;
    if (!named) return InvalidArgument("HTTP " + address_ + ": '" + host + "' cannot be checked by TLS");
    const beast::error_code ec = Step(
        [&](auto handler) {
          tls_->async_handshake(ssl::stream_base::client,
                                [handler](beast::error_code e) mutable { handler(e); });
        },
        [&] { CloseSocket(); });
    if (!ec) return Status::Ok();
    const long verified = SSL_get_verify_result(native);
    if (!timed_out_ && verified != X509_V_OK) {
      return Unavailable("HTTP " + address_ + ": TLS handshake: certificate verify failed: " +
                         X509_verify_cert_error_string(verified));
    }
    return Failure("TLS handshake", ec);
  }

  Status Write(http::request<http::string_body>& request) {
    const beast::error_code ec = StepOnStream([&](auto& stream, auto handler) {
      http::async_write(stream, request, [handler](beast::error_code e, size_t) mutable { handler(e); });
    });
    return ec ? Failure("sending the request", ec) : Status::Ok();
  }

  Status Read(const HttpClientRequest& request, HttpReply& reply) {
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(request.max_body_bytes);
    beast::error_code ec = StepOnStream([&](auto& stream, auto handler) {
      http::async_read_header(stream, buffer, parser,
                              [handler](beast::error_code e, size_t) mutable { handler(e); });
    });
    if (ec) return Failure("reading the response", ec);
    reply.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      reply.headers.emplace_back(
          AsciiLower(std::string_view(field.name_string().data(), field.name_string().size())),
          std::string(field.value()));
    }
    char piece[16384];
    while (!parser.is_done()) {
      parser.get().body().data = piece;
      parser.get().body().size = sizeof(piece);
      ec = StepOnStream([&](auto& stream, auto handler) {
        http::async_read(stream, buffer, parser,
                         [handler](beast::error_code e, size_t) mutable { handler(e); });
      });
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return Failure("reading the response body", ec);
      const std::string_view data(piece, sizeof(piece) - parser.get().body().size);
      reply.body.append(data);
      if (request.on_data && !data.empty() && !request.on_data(data)) return Status::Ok();  // hung up
    }
    return Status::Ok();
  }

 private:
  // Step for an operation on the connection, plain or TLS: `start(stream, handler)` is written once for both.
  template <typename Start>
  beast::error_code StepOnStream(Start&& start) {
    return Step(
        [&](auto handler) {
          if (tls_) {
            start(*tls_, std::move(handler));
          } else {
            start(socket_, std::move(handler));
          }
        },
        [&] { CloseSocket(); });
  }

  void CloseSocket() {
    beast::error_code ignored;
    socket_.cancel(ignored);
    socket_.close(ignored);
  }

  Status Failure(const std::string& step, const beast::error_code& ec) const {
    if (timed_out_) {
      return DeadlineExceeded("HTTP " + address_ + ": " + step + ": no answer within " +
                              std::to_string(timeout_.count()) + " ms");
    }
    return Unavailable("HTTP " + address_ + ": " + step + ": " + ec.message());
  }

  std::string address_;
  SteadyClock::time_point deadline_;
  std::chrono::milliseconds timeout_;
  asio::io_context io_;
  tcp::socket socket_;
  std::optional<ssl::stream<tcp::socket&>> tls_;  // set by Handshake; destroyed before the socket
  bool timed_out_ = false;
};

}  // namespace

const std::string* HttpReply::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

bool IsHttpsAddress(std::string_view address) {
  return address.starts_with(kHttpsScheme);
}

Status HttpExchange(const std::string& address, const HttpClientRequest& request, HttpReply& reply) {
  reply = {};
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) return InvalidArgument("unknown HTTP method '" + request.method + "'");
  TANDEM_ASSIGN_OR_RETURN(const Peer peer, ParsePeer(address));
  const HttpClientTls* tls = nullptr;
  if (peer.tls) {
    TANDEM_ASSIGN_OR_RETURN(tls, ClientTlsFor(request));
  }
  try {
    Exchange exchange(address, SteadyClock::now() + request.timeout, request.timeout);
    TANDEM_RETURN_IF_ERROR(exchange.Connect(peer.parsed));
    if (tls != nullptr) TANDEM_RETURN_IF_ERROR(exchange.Handshake(*tls, peer.parsed.host));
    http::request<http::string_body> raw(verb, request.target, 11);
    raw.set(http::field::host, peer.host_port);
    bool has_type = false;
    for (const auto& [name, value] : request.headers) {
      raw.set(name, value);
      has_type = has_type || AsciiLower(name) == "content-type";
    }
    if (!request.body.empty() && !has_type) raw.set(http::field::content_type, "application/json");
    raw.body() = request.body;
    raw.prepare_payload();
    TANDEM_RETURN_IF_ERROR(exchange.Write(raw));
    return exchange.Read(request, reply);
  } catch (const std::exception& error) {
    // Beast throws only for misuse (a target with a space, a header with a newline): the caller's input.
    return InvalidArgument("HTTP " + address + ": " + error.what());
  }
}

Result<HttpReply> HttpRequestOnce(const std::string& host_port, const std::string& method,
                                  const std::string& target, const std::string& body,
                                  std::chrono::milliseconds timeout) {
  HttpClientRequest request;
  request.method = method;
  request.target = target;
  request.body = body;
  request.timeout = timeout;
  HttpReply reply;
  TANDEM_RETURN_IF_ERROR(HttpExchange(host_port, request, reply));
  return reply;
}

}  // namespace tandem::services
