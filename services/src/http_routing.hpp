// The answers the server gives by itself, beside Dispatch's (http_server.hpp): the limits a request can
// break while it is read, the connection limit and shutting down. Each is an OpenAI-style error object
// built from the options, without a socket. Pure functions, any thread.
#pragma once

#include <string_view>

#include "tandem/services/http_server.hpp"

namespace tandem::services {

enum class ReadFailure { kPeerGone, kMalformed, kHeaderTooLarge, kBodyTooLarge };

// 431 header_too_large, 413 body_too_large or 400 bad_request (`detail` says what the parser found). Not
// for kPeerGone: nobody is left to answer.
HttpResponse ReadFailureResponse(ReadFailure failure, const HttpServerOptions& options,
                                 std::string_view detail);

// 503 overloaded with Retry-After: more than max_connections are open.
HttpResponse OverloadedResponse();

// 503 shutting_down: a request that arrives after Drain.
HttpResponse ShuttingDownResponse();

}  // namespace tandem::services
