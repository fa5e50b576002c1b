// The one error type of the edge's request path (parse, checks, admission, planning, generation): an
// OpenAI error object with its HTTP status. Status cannot stand in for it: clients read the OpenAI `code`
// ("invalid_type", "context_length_exceeded", "queue_full", "upstream_overloaded", ...) and `param`, which
// a StatusCode and a message do not hold; library Status values become an ApiError at one place
// (UpstreamError in openai_format.hpp).
#pragma once

#include <string>
#include <utility>

#include "tandem/base/status.hpp"

namespace tandem::edge_agent {

// An error answered to the client: {"error":{"message","type","param","code"}} with `status`.
struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string code;   // empty: null
  std::string param;  // empty: null
};

// 400 invalid_value: the client sent a value out of range; `param` names it.
inline ApiError InvalidValue(std::string param, std::string message) {
  return {.message = std::move(message), .code = "invalid_value", .param = std::move(param)};
}

// 503 server_error: worth retrying later (busy, a tail unreachable for now, shutting down).
inline ApiError ServiceUnavailable(std::string code, std::string message) {
  return {.status = 503, .message = std::move(message), .type = "server_error", .code = std::move(code)};
}

// A value or the ApiError that explains why there is none (Result<T> for the request path).
template <typename T>
using ApiResult = ValueOr<T, ApiError>;

}  // namespace tandem::edge_agent
