#include "tandem/edge_agent/completion_request.hpp"

#include "request_fields.hpp"

namespace tandem::edge_agent {
namespace {

using nlohmann::json;
using namespace request_fields;

Refusal ReadPrompt(const json& body, const CompletionLimits& limits, CompletionRequest& request) {
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) return Missing("prompt");
  if (!prompt->is_string()) return WrongType("prompt", "a string (one prompt per request)");
  request.prompt = prompt->get<std::string>();
  if (request.prompt.size() > limits.max_prompt_bytes) {
    return InvalidValue("prompt",
                        "'prompt' is longer than " + std::to_string(limits.max_prompt_bytes) + " bytes");
  }
  return std::nullopt;
}

// Fields that would change what comes back, which this server does not do: refuse rather than ignore.
Refusal RefuseUnsupported(const json& body) {
  if (Refusal error = RefuseSeveralChoices(body)) return error;
  // Each with the one value that asks for nothing.
  for (const auto& [name, neutral] :
       {std::pair<const char*, json>{"echo", false}, {"logprobs", 0}, {"suffix", ""}, {"best_of", 1}}) {
    const json* field = Field(body, name);
    if (field != nullptr && *field != neutral) {
      return InvalidValue(name, std::string("'") + name + "' is not supported");
    }
  }
  return std::nullopt;
}

}  // namespace

ApiResult<CompletionRequest> ParseCompletionRequest(std::string_view text, const CompletionLimits& limits) {
  ApiResult<json> parsed = ParseBody(text);
  if (!parsed.ok()) return parsed.error();
  const json& body = *parsed;
  CompletionRequest request;
  // In this order: the first field at fault is the one reported.
  for (Refusal error : {ReadModel(body, request), ReadPrompt(body, limits, request),
                        ReadMaxTokens(body, "max_tokens", limits, request), ReadSampling(body, request),
                        ReadStop(body, request), ReadStream(body, request),
                        ReadTandemExtension(body, request), RefuseUnsupported(body)}) {
    if (error) return *error;
  }
  return request;
}

}  // namespace tandem::edge_agent
