#include "http_message.hpp"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string_view>
#include <utility>

#include "tandem/base/strings.hpp"

namespace tandem::services {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;

constexpr size_t kMaxRequestIdLength = 128;

std::string_view ToStd(beast::string_view text) {
  return {text.data(), text.size()};
}

bool IsSaneRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == ':';
  });
}

// Headers the server owns; a handler's copy of them is dropped.
bool IsServerOwnedHeader(std::string_view name) {
  for (std::string_view owned : {"content-length", "transfer-encoding", "connection", "x-request-id"}) {
    if (beast::iequals(beast::string_view(name.data(), name.size()),
                       beast::string_view(owned.data(), owned.size()))) {
      return true;
    }
  }
  return false;
}

}  // namespace

std::string GenerateRequestId() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(32, '0');
  for (size_t i = 0; i < id.size(); i += 16) {
    uint64_t bits = rng();
    for (size_t j = 0; j < 16; ++j, bits >>= 4) id[i + j] = kHex[bits & 0xf];
  }
  return id;
}

std::string RequestIdFrom(const http::fields& fields) {
  const auto it = fields.find("x-request-id");
  if (it != fields.end() && IsSaneRequestId(ToStd(it->value()))) return std::string(ToStd(it->value()));
  return GenerateRequestId();
}

HttpRequest ToHttpRequest(http::request<http::string_body>&& raw) {
  HttpRequest request;
  request.method = std::string(ToStd(raw.method_string()));
  const std::string_view target = ToStd(raw.target());
  const size_t question = target.find('?');
  request.path = std::string(target.substr(0, question));
  if (question != std::string_view::npos) request.query = std::string(target.substr(question + 1));
  for (const auto& field : raw) {
    request.headers.emplace_back(AsciiLower(ToStd(field.name_string())), std::string(ToStd(field.value())));
  }
  request.body = std::move(raw.body());
  request.request_id = RequestIdFrom(raw.base());
  return request;
}

bool StatusHasBody(int status) {
  return status >= 200 && status != 204 && status != 304;
}

void SetResponseHeader(http::response_header<>& raw, const HttpResponse& response,
                       const std::string& request_id, unsigned version) {
  raw.version(version);
  raw.result(static_cast<unsigned>(response.status));
  raw.set(http::field::server, "tandem");
  if (!response.content_type.empty()) raw.set(http::field::content_type, response.content_type);
  for (const auto& [name, value] : response.headers) {
    if (!IsServerOwnedHeader(name)) raw.insert(name, value);
  }
  raw.set("X-Request-Id", request_id);
}

http::response<http::string_body> ToBeastResponse(HttpResponse response, const std::string& request_id,
                                                  bool keep_alive, unsigned version) {
  http::response<http::string_body> raw;
  SetResponseHeader(raw.base(), response, request_id, version);
  raw.keep_alive(keep_alive);
  // prepare_payload refuses a body for a status without one.
  if (StatusHasBody(response.status)) raw.body() = std::move(response.body);
  raw.prepare_payload();
  return raw;
}

ReadFailure ClassifyReadError(const beast::error_code& ec) {
  if (ec == http::error::header_limit) return ReadFailure::kHeaderTooLarge;
  if (ec == http::error::body_limit) return ReadFailure::kBodyTooLarge;
  // The client closed (between or inside a request): nobody is left to answer.
  if (ec == http::error::end_of_stream || ec == http::error::partial_message) return ReadFailure::kPeerGone;
  if (&ec.category() == &http::make_error_code(http::error::bad_method).category()) {
    return ReadFailure::kMalformed;
  }
  return ReadFailure::kPeerGone;  // timeout, reset, aborted by Stop
}

}  // namespace tandem::services
