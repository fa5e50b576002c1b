// The edge's answers in OpenAI's shapes: text_completion objects (whole, or as server-sent event chunks
// ending with [DONE]) with Tandem's own "tandem" object, the model list, and every error as an OpenAI
// error object. Pure: no state, no I/O; the JSON is built here and nowhere else.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>

#include "tandem/base/status.hpp"
#include "tandem/edge_agent/api_error.hpp"
#include "tandem/edge_agent/completion.hpp"
#include "tandem/services/http_server.hpp"

namespace tandem::edge_agent {

// {"error": {...}} with the error's status; every 503 (busy, a tail unreachable for now, shutting down)
// says when to retry (Retry-After: 1).
services::HttpResponse ErrorReply(const ApiError& error);
// A failed generation as the client sees it: busy or unreachable tails are worth retrying later (503,
// upstream_overloaded / upstream_unavailable); anything else is the tail's fault (502, upstream_error).
ApiError UpstreamError(const Status& status);
// GET /v1/models: the one model this edge serves.
nlohmann::json ModelList(const std::string& model);

// One server-sent event: "data: <json>\n\n".
std::string SseEvent(const nlohmann::json& body);
inline constexpr char kSseDone[] = "data: [DONE]\n\n";
// A stream's error event: the error object without its param (as it always was).
nlohmann::json StreamErrorEvent(const ApiError& error);

// text_completion objects for `model`, a model of `layers` blocks (cuts of all-local runs read L).
class CompletionFormat {
 public:
  CompletionFormat(std::string model, int layers) : model_(std::move(model)), layers_(layers) {}
  // A chunk of text (streamed pieces have a null finish_reason).
  nlohmann::json Chunk(const std::string& id, const std::string& text,
                       const nlohmann::json& finish_reason) const;
  // The whole completion with usage and the "tandem" object (plan, cut, codec, moves, bytes, timings).
  nlohmann::json Body(const std::string& id, const Completion& completion) const;
  // A stream's last event: the whole completion's fields with empty text (it went out in chunks).
  nlohmann::json LastChunk(const std::string& id, const Completion& completion) const;

 private:
  std::string model_;
  int layers_;
};

}  // namespace tandem::edge_agent
