// Between Beast's messages and the project's HttpRequest / HttpResponse: the one place the server's
// sessions convert, name request ids and read Beast's errors, so that handlers never see a Beast type.
// Pure functions, any thread.
#pragma once

#include <string>

#include <boost/beast/http.hpp>

#include "http_routing.hpp"
#include "tandem/services/http_server.hpp"

namespace tandem::services {

// A fresh random id (32 hex digits).
std::string GenerateRequestId();

// The client's X-Request-Id when present and sane (short, harmless characters: it is echoed into our
// headers and logs), else a generated one.
std::string RequestIdFrom(const boost::beast::http::fields& fields);

// Header names lower-cased in arrival order, the target split at '?', the request id.
HttpRequest ToHttpRequest(boost::beast::http::request<boost::beast::http::string_body>&& raw);

// 1xx, 204 and 304 carry no body.
bool StatusHasBody(int status);

// Status, Server, the handler's Content-Type and headers (less those the server owns: Content-Length,
// Transfer-Encoding, Connection, X-Request-Id) and X-Request-Id; keep-alive is the message's to set.
void SetResponseHeader(boost::beast::http::response_header<>& raw, const HttpResponse& response,
                       const std::string& request_id, unsigned version);

// A whole (not streamed) answer, its length set.
boost::beast::http::response<boost::beast::http::string_body> ToBeastResponse(HttpResponse response,
                                                                              const std::string& request_id,
                                                                              bool keep_alive,
                                                                              unsigned version);

// What went wrong reading a request.
ReadFailure ClassifyReadError(const boost::beast::error_code& ec);

}  // namespace tandem::services
