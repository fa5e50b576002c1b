#include "tandem/edge_agent/openai_format.hpp"

#include <nlohmann/json.hpp>

#include <ctime>

namespace tandem::edge_agent {

using nlohmann::json;

services::HttpResponse ErrorReply(const ApiError& error) {
  services::HttpResponse response =
      services::ErrorResponse(error.status, error.message, error.type, error.code, error.param);
  if (error.status == 503) response.headers.emplace_back("Retry-After", "1");
  return response;
}

ApiError UpstreamError(const Status& status) {
  const bool busy = status.code() == StatusCode::kResourceExhausted;
  const bool unreachable =
      status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kDeadlineExceeded;
  return ApiError{.status = busy || unreachable ? 503 : 502,
                  .message = status.message(),
                  .type = "server_error",
                  .code = busy          ? "upstream_overloaded"
                          : unreachable ? "upstream_unavailable"
                                        : "upstream_error"};
}

json ModelList(const std::string& model) {
  return {
      {"object", "list"},
      {"data", json::array({{{"id", model}, {"object", "model"}, {"created", 0}, {"owned_by", "tandem"}}})}};
}

std::string SseEvent(const json& body) {
  return "data: " + body.dump() + "\n\n";
}

json StreamErrorEvent(const ApiError& error) {
  return {{"error",
           {{"message", error.message}, {"type", error.type}, {"code", error.code}, {"param", nullptr}}}};
}

namespace {

// What every object of a response starts with.
json Envelope(const std::string& id, const char* object, const std::string& model) {
  return {{"id", id},
          {"object", object},
          {"created", static_cast<int64_t>(std::time(nullptr))},
          {"model", model}};
}

json Usage(const Completion& completion) {
  return {{"prompt_tokens", completion.prompt_tokens},
          {"completion_tokens", completion.completion_tokens},
          {"total_tokens", completion.prompt_tokens + completion.completion_tokens}};
}

// Tandem's own object: where the completion ran (plan, cut, codec, moves), the bytes and the timings.
json TandemObject(const Completion& completion, int layers) {
  json move_log = json::array();
  for (const SplitMove& move : completion.move_log) {
    move_log.push_back({{"at_ms", move.at_ms}, {"to", move.to}, {"cut", move.cut}, {"reason", move.reason}});
  }
  const scheduler::Candidate& choice = completion.choice;
  const scheduler::Candidate& plan = completion.plan;
  return {{"cloud", choice.endpoint},
          {"cut", CutOf(choice, layers)},
          {"tail_end", TailEndOf(choice, layers)},
          {"codec", choice.local() ? "" : choice.codec.Name()},
          {"moves", completion.moves},
          {"move_log", std::move(move_log)},
          {"plan",
           {{"cut", CutOf(plan, layers)},
            {"codec", plan.local() ? "" : plan.codec.Name()},
            {"predicted_ttft_ms", plan.prefill_ms},
            {"predicted_token_ms", plan.decode_ms}}},
          {"seed", completion.seed},
          {"bytes_sent", completion.wire.wire_bytes_sent},
          {"bytes_received", completion.wire.wire_bytes_received},
          {"activation_bytes_float32", completion.wire.raw_bytes},
          {"activation_bytes_payload", completion.wire.payload_bytes},
          {"ttft_ms", completion.ttft_ms},
          {"tokens_per_second", completion.decode_tokens_per_second},
          {"draft",
           {{"drafter", completion.drafter},
            {"drafted_tokens", completion.drafted_tokens},
            {"accepted_tokens", completion.kept_drafts},
            {"model_steps", completion.model_steps}}}};
}

}  // namespace

json CompletionFormat::Chunk(const std::string& id, const std::string& text,
                             const json& finish_reason) const {
  json chunk = Envelope(id, "text_completion", model_);
  chunk["choices"] =
      json::array({{{"text", text}, {"index", 0}, {"logprobs", nullptr}, {"finish_reason", finish_reason}}});
  return chunk;
}

json CompletionFormat::Body(const std::string& id, const Completion& completion) const {
  json body = Chunk(id, completion.text, completion.finish_reason);
  body["usage"] = Usage(completion);
  body["tandem"] = TandemObject(completion, layers_);
  return body;
}

json CompletionFormat::LastChunk(const std::string& id, const Completion& completion) const {
  json last = Body(id, completion);
  last["choices"][0]["text"] = "";
  return last;
}

std::vector<json> CompletionFormat::Opening(const std::string&) const {
  return {};
}

json CompletionFormat::Piece(const std::string& id, const std::string& text) const {
  return Chunk(id, text, nullptr);
}

std::vector<json> CompletionFormat::Closing(const std::string& id, const Completion& completion) const {
  return {LastChunk(id, completion)};
}

json ChatFormat::Body(const std::string& id, const Completion& completion) const {
  json body = Envelope(id, "chat.completion", model_);
  body["choices"] = json::array({{{"index", 0},
                                  {"message", {{"role", "assistant"}, {"content", completion.text}}},
                                  {"logprobs", nullptr},
                                  {"finish_reason", completion.finish_reason}}});
  body["usage"] = Usage(completion);
  body["tandem"] = TandemObject(completion, layers_);
  return body;
}

json ChatFormat::Chunk(const std::string& id, json delta, const json& finish_reason) const {
  json chunk = Envelope(id, "chat.completion.chunk", model_);
  chunk["choices"] = json::array(
      {{{"index", 0}, {"delta", std::move(delta)}, {"logprobs", nullptr}, {"finish_reason", finish_reason}}});
  if (include_usage_) chunk["usage"] = nullptr;  // as OpenAI: only the last chunk has it
  return chunk;
}

std::vector<json> ChatFormat::Opening(const std::string& id) const {
  return {Chunk(id, {{"role", "assistant"}, {"content", ""}}, nullptr)};
}

json ChatFormat::Piece(const std::string& id, const std::string& text) const {
  return Chunk(id, {{"content", text}}, nullptr);
}

std::vector<json> ChatFormat::Closing(const std::string& id, const Completion& completion) const {
  json finish = Chunk(id, json::object(), completion.finish_reason);
  finish["tandem"] = TandemObject(completion, layers_);
  std::vector<json> events = {std::move(finish)};
  if (include_usage_) {
    json usage = Envelope(id, "chat.completion.chunk", model_);
    usage["choices"] = json::array();
    usage["usage"] = Usage(completion);
    events.push_back(std::move(usage));
  }
  return events;
}

}  // namespace tandem::edge_agent
