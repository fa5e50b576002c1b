#include "http_client.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <limits>

#include "tandem/services/http_client.hpp"

namespace tandem::testing {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

// The services client does the work; a test wants what arrived even when the exchange broke off.
HttpResult Exchange(const std::string& address, const std::string& method, const std::string& target,
                    const std::string& body, const Headers& headers,
                    const std::function<bool(std::string_view)>* on_data, std::chrono::milliseconds timeout) {
  services::HttpClientRequest request;
  request.method = method;
  request.target = target;
  request.body = body;
  request.headers = headers;
  request.timeout = timeout;
  request.max_body_bytes = std::numeric_limits<uint64_t>::max();
  if (on_data != nullptr) request.on_data = *on_data;
  services::HttpReply reply;
  const Status status = services::HttpExchange(address, request, reply);
  HttpResult result;
  result.status = reply.status;
  result.headers = std::move(reply.headers);
  result.body = std::move(reply.body);
  if (!status.ok()) result.error = status.message();
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

double MetricValue(const std::string& address, const std::string& name, std::chrono::milliseconds timeout) {
  const HttpResult result = HttpCall(address, "GET", "/metrics", "", {}, timeout);
  if (result.status != 200) return -1;
  const std::string prefix = name + " ";
  for (size_t line = 0; line < result.body.size();) {
    const size_t end = std::min(result.body.find('\n', line), result.body.size());
    if (result.body.compare(line, prefix.size(), prefix) == 0) {
      return std::stod(result.body.substr(line + prefix.size(), end - line - prefix.size()));
    }
    line = end + 1;
  }
  return -1;
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
