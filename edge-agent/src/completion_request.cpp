#include "tandem/edge/completion_request.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

namespace tandem::edge {
namespace {

using nlohmann::json;

ApiError BadParam(std::string param, std::string message) {
  return {.status = 400, .message = std::move(message), .code = "invalid_value", .param = std::move(param)};
}

ApiError WrongType(const std::string& param, const char* expected) {
  return {.status = 400,
          .message = "'" + param + "' must be " + expected,
          .code = "invalid_type",
          .param = param};
}

// Reads `body[name]` when present and not null; the error names the field.
template <typename T>
std::optional<ApiError> Read(const json& body, const std::string& name, const char* expected, T& out,
                             json::value_t kind, json::value_t alternative = json::value_t::discarded) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->type() != kind && it->type() != alternative) return WrongType(name, expected);
  out = it->get<T>();
  return std::nullopt;
}

}  // namespace

std::variant<CompletionRequest, ApiError> ParseCompletionRequest(std::string_view text,
                                                                 const CompletionLimits& limits) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& error) {
    // parse_error, and out_of_range for a number past double's range (1e400): both are the client's.
    return ApiError{.message = std::string("the body is not valid JSON: ") + error.what(),
                    .code = "invalid_json"};
  }
  if (!body.is_object()) return ApiError{.message = "the body must be a JSON object", .code = "invalid_json"};

  CompletionRequest request;
  using Kind = json::value_t;
  if (auto error = Read(body, "model", "a string", request.model, Kind::string)) return *error;
  const auto prompt = body.find("prompt");
  if (prompt == body.end() || prompt->is_null()) {
    return ApiError{
        .message = "'prompt' is required", .code = "missing_required_parameter", .param = "prompt"};
  }
  if (!prompt->is_string()) return WrongType("prompt", "a string (one prompt per request)");
  request.prompt = prompt->get<std::string>();
  if (request.prompt.size() > limits.max_prompt_bytes) {
    return BadParam("prompt",
                    "'prompt' is longer than " + std::to_string(limits.max_prompt_bytes) + " bytes");
  }

  int64_t max_tokens = std::min(request.max_tokens, limits.max_tokens_cap);  // OpenAI's 16, or the cap
  if (auto error =
          Read(body, "max_tokens", "an integer", max_tokens, Kind::number_unsigned, Kind::number_integer)) {
    return *error;
  }
  if (max_tokens < 1 || max_tokens > limits.max_tokens_cap) {
    return BadParam("max_tokens", "'max_tokens' must be in [1, " + std::to_string(limits.max_tokens_cap) +
                                      "], got " + std::to_string(max_tokens));
  }
  request.max_tokens = static_cast<int>(max_tokens);

  double temperature = request.temperature, top_p = request.top_p;
  for (auto [name, target] : {std::pair{"temperature", &temperature}, std::pair{"top_p", &top_p}}) {
    const auto it = body.find(name);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_number()) return WrongType(name, "a number");
    *target = it->get<double>();
  }
  if (!(temperature >= 0 && temperature <= 2)) {
    return BadParam("temperature", "'temperature' must be in [0, 2]");
  }
  if (!(top_p > 0 && top_p <= 1)) return BadParam("top_p", "'top_p' must be in (0, 1]");
  request.temperature = static_cast<float>(temperature);
  request.top_p = static_cast<float>(top_p);

  if (const auto seed = body.find("seed"); seed != body.end() && !seed->is_null()) {
    if (!seed->is_number_unsigned()) return WrongType("seed", "a non-negative integer");
    request.seed = seed->get<uint64_t>();
  }
  if (const auto stop = body.find("stop"); stop != body.end() && !stop->is_null()) {
    if (stop->is_string()) {
      request.stop.push_back(stop->get<std::string>());
    } else if (stop->is_array()) {
      if (stop->size() > 4) return BadParam("stop", "at most 4 stop strings");
      for (const json& item : *stop) {
        if (!item.is_string()) return WrongType("stop", "a string or an array of up to 4 strings");
        request.stop.push_back(item.get<std::string>());
      }
    } else {
      return WrongType("stop", "a string or an array of up to 4 strings");
    }
    for (const std::string& item : request.stop) {
      if (item.empty()) return BadParam("stop", "stop strings must not be empty");
    }
  }
  if (auto error = Read(body, "stream", "a boolean", request.stream, Kind::boolean)) return *error;
  if (const auto tandem = body.find("tandem"); tandem != body.end() && !tandem->is_null()) {
    if (!tandem->is_object()) return WrongType("tandem", "an object");
    CompletionRequest::SplitOverride split;
    const auto cut = tandem->find("split");
    if (cut == tandem->end() || !(cut->is_number_unsigned() || *cut == "local")) {
      return WrongType("tandem.split", "a block number or \"local\"");
    }
    split.cut =
        cut->is_number_unsigned() ? static_cast<int>(std::min<uint64_t>(cut->get<uint64_t>(), 1u << 20)) : -1;
    if (const auto codec = tandem->find("codec"); codec != tandem->end() && !codec->is_null()) {
      if (!codec->is_string()) return WrongType("tandem.codec", "a string");
      auto parsed = ParseActivationCodec(codec->get<std::string>());
      if (!parsed.ok()) return BadParam("tandem.codec", parsed.status().message());
      split.codec = *parsed;
    }
    request.split = split;
  }

  // Fields that would change what comes back, which this server does not do: refuse rather than ignore.
  if (const auto n = body.find("n"); n != body.end() && !n->is_null() && *n != 1) {
    return BadParam("n", "only n = 1 is supported");
  }
  // Each with the one value that asks for nothing.
  for (const auto& [name, neutral] :
       {std::pair<const char*, json>{"echo", false}, {"logprobs", 0}, {"suffix", ""}, {"best_of", 1}}) {
    const auto it = body.find(name);
    if (it != body.end() && !it->is_null() && *it != neutral) {
      return BadParam(name, std::string("'") + name + "' is not supported");
    }
  }
  return request;
}

}  // namespace tandem::edge
