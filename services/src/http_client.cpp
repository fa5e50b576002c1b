#include "tandem/services/http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <cctype>
#include <optional>

#include "tandem/base/strings.hpp"

namespace tandem::services {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;

// Blocking calls with a deadline: each step is started as an asynchronous operation and the io_context
// runs until it completes or the deadline passes; then `cancel` aborts it (Beast's own stream timeouts
// cover only asynchronous use, and a synchronous read would wait forever on a silent peer).
class Exchange {
 public:
  Exchange(std::string host_port, SteadyClock::time_point deadline, std::chrono::milliseconds timeout)
      : host_port_(std::move(host_port)), deadline_(deadline), timeout_(timeout), socket_(io_) {}

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

  Status Connect() {
    auto address = ParseHostPort(host_port_);
    if (!address.ok()) return address.status().WithContext("HTTP address");
    const std::string& host = address->host;
    const std::string port = std::to_string(address->port);
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

  Status Write(http::request<http::string_body>& request) {
    const beast::error_code ec = Step(
        [&](auto handler) {
          http::async_write(socket_, request, [handler](beast::error_code e, size_t) mutable { handler(e); });
        },
        [&] { CloseSocket(); });
    return ec ? Failure("sending the request", ec) : Status::Ok();
  }

  Status Read(const HttpClientRequest& request, HttpReply& reply) {
    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(request.max_body_bytes);
    beast::error_code ec = Step(
        [&](auto handler) {
          http::async_read_header(socket_, buffer, parser,
                                  [handler](beast::error_code e, size_t) mutable { handler(e); });
        },
        [&] { CloseSocket(); });
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
      ec = Step(
          [&](auto handler) {
            http::async_read(socket_, buffer, parser,
                             [handler](beast::error_code e, size_t) mutable { handler(e); });
          },
          [&] { CloseSocket(); });
      if (ec == http::error::need_buffer) ec = {};
      if (ec) return Failure("reading the response body", ec);
      const std::string_view data(piece, sizeof(piece) - parser.get().body().size);
      reply.body.append(data);
      if (request.on_data && !data.empty() && !request.on_data(data)) return Status::Ok();  // hung up
    }
    return Status::Ok();
  }

 private:
  void CloseSocket() {
    beast::error_code ignored;
    socket_.cancel(ignored);
    socket_.close(ignored);
  }

  Status Failure(const std::string& step, const beast::error_code& ec) const {
    if (timed_out_) {
      return DeadlineExceeded("HTTP " + host_port_ + ": " + step + ": no answer within " +
                              std::to_string(timeout_.count()) + " ms");
    }
    return Unavailable("HTTP " + host_port_ + ": " + step + ": " + ec.message());
  }

  std::string host_port_;
  SteadyClock::time_point deadline_;
  std::chrono::milliseconds timeout_;
  asio::io_context io_;
  tcp::socket socket_;
  bool timed_out_ = false;
};

}  // namespace

const std::string* HttpReply::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

Status HttpExchange(const std::string& host_port, const HttpClientRequest& request, HttpReply& reply) {
  reply = {};
  const http::verb verb = http::string_to_verb(request.method);
  if (verb == http::verb::unknown) return InvalidArgument("unknown HTTP method '" + request.method + "'");
  try {
    Exchange exchange(host_port, SteadyClock::now() + request.timeout, request.timeout);
    TANDEM_RETURN_IF_ERROR(exchange.Connect());
    http::request<http::string_body> raw(verb, request.target, 11);
    raw.set(http::field::host, host_port);
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
    return InvalidArgument("HTTP " + host_port + ": " + error.what());
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
