#include "http_client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <algorithm>
#include <limits>

namespace tandem::testing {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

HttpResult Exchange(const std::string& address, const std::string& method, const std::string& target,
                    const std::string& body, const Headers& headers,
                    const std::function<bool(std::string_view)>* on_data, std::chrono::milliseconds timeout) {
  HttpResult result;
  const size_t colon = address.rfind(':');
  try {
    asio::io_context io;
    beast::tcp_stream stream(io);
    stream.expires_after(timeout);
    stream.connect(tcp::resolver(io).resolve(address.substr(0, colon), address.substr(colon + 1)));
    http::request<http::string_body> request(http::string_to_verb(method), target, 11);
    request.set(http::field::host, address);
    for (const auto& [name, value] : headers) request.set(name, value);
    if (!body.empty()) request.set(http::field::content_type, "application/json");
    request.body() = body;
    request.prepare_payload();
    http::write(stream, request);

    beast::flat_buffer buffer;
    http::response_parser<http::buffer_body> parser;
    parser.body_limit(std::numeric_limits<std::uint64_t>::max());
    http::read_header(stream, buffer, parser);
    result.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
      result.headers.emplace_back(name, std::string(field.value()));
    }
    char piece[8192];
    while (!parser.is_done()) {
      parser.get().body().data = piece;
      parser.get().body().size = sizeof(piece);
      beast::error_code error;
      http::read(stream, buffer, parser, error);
      if (error == http::error::need_buffer) error = {};
      if (error) {
        result.error = error.message();
        break;
      }
      const std::string_view data(piece, sizeof(piece) - parser.get().body().size);
      result.body.append(data);
      if (on_data != nullptr && !data.empty() && !(*on_data)(data)) {
        beast::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
        stream.socket().close(ignored);
        return result;
      }
    }
  } catch (const std::exception& error) {
    result.error = error.what();
  }
  return result;
}

}  // namespace

std::string HttpResult::Header(const std::string& lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return {};
}

HttpResult HttpCall(const std::string& address, const std::string& method, const std::string& target,
                    const std::string& body, const Headers& headers, std::chrono::milliseconds timeout) {
  return Exchange(address, method, target, body, headers, nullptr, timeout);
}

HttpResult HttpStream(const std::string& address, const std::string& method, const std::string& target,
                      const std::string& body, const Headers& headers,
                      const std::function<bool(std::string_view)>& on_data,
                      std::chrono::milliseconds timeout) {
  return Exchange(address, method, target, body, headers, &on_data, timeout);
}

std::vector<std::string> SseEvents(const std::string& body) {
  std::vector<std::string> events;
  size_t at = 0;
  while ((at = body.find("data: ", at)) != std::string::npos) {
    const size_t end = body.find("\n\n", at);
    if (end == std::string::npos) break;
    events.push_back(body.substr(at + 6, end - at - 6));
    at = end + 2;
  }
  return events;
}

int FreePort() {
  asio::io_context io;
  tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return acceptor.local_endpoint().port();
}

}  // namespace tandem::testing
