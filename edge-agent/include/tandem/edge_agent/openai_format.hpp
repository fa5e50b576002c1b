// The edge's answers in OpenAI's shapes: text_completion and chat.completion objects (whole, or as
// server-sent event chunks ending with [DONE]) with Tandem's own "tandem" object, the model list, and every
// error as an OpenAI error object. Pure: no state, no I/O; the JSON is built here and nowhere else.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

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

// How a route's answers look: its whole body, and its stream as Opening(), a Piece() per piece of text as
// it becomes final, then Closing() (each event one SSE message; [DONE] follows).
class ResponseFormat {
 public:
  virtual ~ResponseFormat() = default;
  // The object's id for a request id ("cmpl-..." or "chatcmpl-...").
  virtual std::string Id(const std::string& request_id) const = 0;
  // The whole completion with usage and the "tandem" object (plan, cut, codec, moves, bytes, timings).
  virtual nlohmann::json Body(const std::string& id, const Completion& completion) const = 0;
  virtual std::vector<nlohmann::json> Opening(const std::string& id) const = 0;
  virtual nlohmann::json Piece(const std::string& id, const std::string& text) const = 0;
  virtual std::vector<nlohmann::json> Closing(const std::string& id, const Completion& completion) const = 0;
};

// text_completion objects for `model`, a model of `layers` blocks (cuts of all-local runs read L). A stream
// has no opening; its last chunk carries the whole completion's fields (usage, "tandem") with empty text.
class CompletionFormat final : public ResponseFormat {
 public:
  CompletionFormat(std::string model, int layers) : model_(std::move(model)), layers_(layers) {}
  // A chunk of text (streamed pieces have a null finish_reason).
  nlohmann::json Chunk(const std::string& id, const std::string& text,
                       const nlohmann::json& finish_reason) const;
  // A stream's last event: the whole completion's fields with empty text (it went out in chunks).
  nlohmann::json LastChunk(const std::string& id, const Completion& completion) const;

  std::string Id(const std::string& request_id) const override { return "cmpl-" + request_id; }
  nlohmann::json Body(const std::string& id, const Completion& completion) const override;
  std::vector<nlohmann::json> Opening(const std::string& id) const override;
  nlohmann::json Piece(const std::string& id, const std::string& text) const override;
  std::vector<nlohmann::json> Closing(const std::string& id, const Completion& completion) const override;

 private:
  std::string model_;
  int layers_;
};

// chat.completion objects, and chat.completion.chunk events as OpenAI streams them: the first with delta
// {"role": "assistant", "content": ""}, then {"content": piece} deltas, then an empty delta with the
// finish_reason and the "tandem" object; with stream_options.include_usage (`include_usage`) every chunk
// has "usage": null and a last one has "choices": [] and the usage.
class ChatFormat final : public ResponseFormat {
 public:
  ChatFormat(std::string model, int layers, bool include_usage = false)
      : model_(std::move(model)), layers_(layers), include_usage_(include_usage) {}

  std::string Id(const std::string& request_id) const override { return "chatcmpl-" + request_id; }
  nlohmann::json Body(const std::string& id, const Completion& completion) const override;
  std::vector<nlohmann::json> Opening(const std::string& id) const override;
  nlohmann::json Piece(const std::string& id, const std::string& text) const override;
  std::vector<nlohmann::json> Closing(const std::string& id, const Completion& completion) const override;

 private:
  nlohmann::json Chunk(const std::string& id, nlohmann::json delta,
                       const nlohmann::json& finish_reason) const;

  std::string model_;
  int layers_;
  bool include_usage_;
};

}  // namespace tandem::edge_agent
