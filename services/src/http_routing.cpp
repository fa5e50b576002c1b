#include "http_routing.hpp"

#include <exception>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "tandem/base/log.hpp"

namespace tandem::services {
namespace {

void LogHandlerError(const HttpRequest& request, std::string error) {
  Log(LogLevel::kError, "http", "handler failed",
      {{"request_id", request.request_id},
       {"method", request.method},
       {"path", request.path},
       {"error", std::move(error)}});
}

HttpResponse InternalError() {
  return ErrorResponse(500, "The server had an error while processing the request.", "server_error",
                       "internal_error");
}

// The handler's answer; a throw or a status outside 100-599 becomes a 500 whose body tells nothing of it.
HttpResponse CallHandler(const Route& route, const HttpRequest& request) {
  HttpResponse response;
  try {
    response = route.handler(request);
  } catch (const std::exception& e) {
    LogHandlerError(request, e.what());
    return InternalError();
  } catch (...) {
    LogHandlerError(request, "unknown exception");
    return InternalError();
  }
  if (response.status < 100 || response.status > 599) {
    LogHandlerError(request, "handler returned HTTP status " + std::to_string(response.status));
    return InternalError();
  }
  return response;
}

}  // namespace

const std::string* HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return &value;
  }
  return nullptr;
}

HttpResponse ErrorResponse(int status, std::string message, std::string type, std::string code,
                           std::string param) {
  nlohmann::json error = {
      {"message", std::move(message)}, {"type", std::move(type)}, {"param", nullptr}, {"code", nullptr}};
  if (!param.empty()) error["param"] = std::move(param);
  if (!code.empty()) error["code"] = std::move(code);
  HttpResponse response;
  response.status = status;
  // Messages may quote client input (a path), which need not be valid UTF-8.
  response.body = nlohmann::json{{"error", std::move(error)}}.dump(-1, ' ', false,
                                                                   nlohmann::json::error_handler_t::replace);
  return response;
}

HttpResponse Dispatch(const std::vector<Route>& routes, const HttpRequest& request) {
  std::string allow;
  for (const Route& route : routes) {
    if (route.path != request.path) continue;
    if (route.method == request.method) return CallHandler(route, request);
    if (!allow.empty()) allow += ", ";
    allow += route.method;
  }
  if (allow.empty()) {
    return ErrorResponse(404, "Unknown path '" + request.path + "'.", "invalid_request_error", "not_found");
  }
  HttpResponse response =
      ErrorResponse(405, "Method " + request.method + " is not allowed on '" + request.path + "'.",
                    "invalid_request_error", "method_not_allowed");
  response.headers.emplace_back("Allow", std::move(allow));
  return response;
}

HttpResponse ReadFailureResponse(ReadFailure failure, const HttpServerOptions& options,
                                 std::string_view detail) {
  switch (failure) {
    case ReadFailure::kHeaderTooLarge:
      return ErrorResponse(431,
                           "Request header exceeds " + std::to_string(options.max_header_bytes) + " bytes.",
                           "invalid_request_error", "header_too_large");
    case ReadFailure::kBodyTooLarge:
      return ErrorResponse(413, "Request body exceeds " + std::to_string(options.max_body_bytes) + " bytes.",
                           "invalid_request_error", "body_too_large");
    case ReadFailure::kMalformed:
    case ReadFailure::kPeerGone:
      break;
  }
  return ErrorResponse(400, "Malformed HTTP request: " + std::string(detail) + ".", "invalid_request_error",
                       "bad_request");
}

HttpResponse OverloadedResponse() {
  HttpResponse overloaded =
      ErrorResponse(503, "The server is at its connection limit; retry later.", "server_error", "overloaded");
  overloaded.headers.emplace_back("Retry-After", "1");
  return overloaded;
}

HttpResponse ShuttingDownResponse() {
  return ErrorResponse(503, "The server is shutting down; retry on a new connection.", "server_error",
                       "shutting_down");
}

}  // namespace tandem::services
