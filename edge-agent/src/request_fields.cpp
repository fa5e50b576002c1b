#include "request_fields.hpp"

#include <algorithm>

#include "tandem/scheduler/draft_planner.hpp"

namespace tandem::edge_agent::request_fields {
namespace {

using nlohmann::json;
using Kind = json::value_t;

// Reads `body[name]` when present and not null; the error names the field.
template <typename T>
Refusal Read(const json& body, const std::string& name, const char* expected, T& out, Kind kind,
             Kind alternative = Kind::discarded) {
  const json* field = Field(body, name);
  if (field == nullptr) return std::nullopt;
  if (field->type() != kind && field->type() != alternative) return WrongType(name, expected);
  out = field->get<T>();
  return std::nullopt;
}

// "tandem.draft" and "tandem.draft_tokens".
Refusal ReadDraft(const json& tandem, CompletionRequest& request) {
  if (const json* draft = Field(tandem, "draft")) {
    if (!draft->is_string()) return WrongType("tandem.draft", "a string");
    request.draft = draft->get<std::string>();
  }
  if (const json* tokens = Field(tandem, "draft_tokens")) {
    if (*tokens == "auto") {
      request.draft_tokens = scheduler::kAutoDraftTokens;
    } else if (tokens->is_number_unsigned() && tokens->get<uint64_t>() <= scheduler::kMaxDraftTokens) {
      request.draft_tokens = static_cast<int>(tokens->get<uint64_t>());
    } else {
      return InvalidValue("tandem.draft_tokens", "'tandem.draft_tokens' must be \"auto\" or in 0.." +
                                                     std::to_string(scheduler::kMaxDraftTokens));
    }
  }
  return std::nullopt;
}

}  // namespace

ApiError WrongType(const std::string& param, const std::string& expected) {
  return {.message = "'" + param + "' must be " + expected, .code = "invalid_type", .param = param};
}

ApiError Missing(const std::string& param) {
  return {.message = "'" + param + "' is required", .code = "missing_required_parameter", .param = param};
}

const json* Field(const json& body, const std::string& name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

ApiResult<json> ParseBody(std::string_view text) {
  json body;
  try {
    body = json::parse(text);
  } catch (const json::exception& error) {
    // parse_error, and out_of_range for a number past double's range (1e400): both are the client's.
    return ApiError{.message = std::string("the body is not valid JSON: ") + error.what(),
                    .code = "invalid_json"};
  }
  if (!body.is_object()) return ApiError{.message = "the body must be a JSON object", .code = "invalid_json"};
  return body;
}

Refusal ReadModel(const json& body, CompletionRequest& request) {
  return Read(body, "model", "a string", request.model, Kind::string);
}

Refusal ReadMaxTokens(const json& body, const std::string& name, const CompletionLimits& limits,
                      CompletionRequest& request) {
  int64_t max_tokens = std::min(request.max_tokens, limits.max_tokens_cap);  // OpenAI's 16, or the cap
  if (auto error = Read(body, name, "an integer", max_tokens, Kind::number_unsigned, Kind::number_integer)) {
    return error;
  }
  if (max_tokens < 1 || max_tokens > limits.max_tokens_cap) {
    return InvalidValue(name, "'" + name + "' must be in [1, " + std::to_string(limits.max_tokens_cap) +
                                  "], got " + std::to_string(max_tokens));
  }
  request.max_tokens = static_cast<int>(max_tokens);
  return std::nullopt;
}

Refusal ReadSampling(const json& body, CompletionRequest& request) {
  double temperature = request.temperature, top_p = request.top_p;
  for (auto [name, target] : {std::pair{"temperature", &temperature}, std::pair{"top_p", &top_p}}) {
    const json* field = Field(body, name);
    if (field == nullptr) continue;
    if (!field->is_number()) return WrongType(name, "a number");
    *target = field->get<double>();
  }
  if (!(temperature >= 0 && temperature <= 2))
    return InvalidValue("temperature", "'temperature' must be in [0, 2]");
  if (!(top_p > 0 && top_p <= 1)) return InvalidValue("top_p", "'top_p' must be in (0, 1]");
  request.temperature = static_cast<float>(temperature);
  request.top_p = static_cast<float>(top_p);
  if (const json* seed = Field(body, "seed")) {
    if (!seed->is_number_unsigned()) return WrongType("seed", "a non-negative integer");
    request.seed = seed->get<uint64_t>();
  }
  return std::nullopt;
}

Refusal ReadStop(const json& body, CompletionRequest& request) {
  const json* stop = Field(body, "stop");
  if (stop == nullptr) return std::nullopt;
  if (stop->is_string()) {
    request.stop.push_back(stop->get<std::string>());
  } else if (stop->is_array()) {
    if (stop->size() > 4) return InvalidValue("stop", "at most 4 stop strings");
    for (const json& item : *stop) {
      if (!item.is_string()) return WrongType("stop", "a string or an array of up to 4 strings");
      request.stop.push_back(item.get<std::string>());
    }
  } else {
    return WrongType("stop", "a string or an array of up to 4 strings");
  }
  for (const std::string& item : request.stop) {
    if (item.empty()) return InvalidValue("stop", "stop strings must not be empty");
  }
  return std::nullopt;
}

Refusal ReadStream(const json& body, CompletionRequest& request) {
  if (Refusal error = Read(body, "stream", "a boolean", request.stream, Kind::boolean)) return error;
  const json* options = Field(body, "stream_options");
  if (options == nullptr) return std::nullopt;
  if (!options->is_object()) return WrongType("stream_options", "an object");
  return Read(*options, "include_usage", "a boolean", request.include_usage, Kind::boolean)
             ? Refusal(WrongType("stream_options.include_usage", "a boolean"))
             : std::nullopt;
}

Refusal ReadTandemExtension(const json& body, CompletionRequest& request) {
  const json* tandem = Field(body, "tandem");
  if (tandem == nullptr) return std::nullopt;
  if (!tandem->is_object()) return WrongType("tandem", "an object");
  if (Refusal error = ReadDraft(*tandem, request)) return error;
  CompletionRequest::SplitOverride split;
  const auto cut = tandem->find("split");
  const bool drafting_only =
      cut == tandem->end() && (request.draft || request.draft_tokens) && Field(*tandem, "codec") == nullptr;
  if (drafting_only) return std::nullopt;
  if (cut == tandem->end() || !(cut->is_number_unsigned() || *cut == "local")) {
    return WrongType("tandem.split", "a block number or \"local\"");
  }
  split.cut =
      cut->is_number_unsigned() ? static_cast<int>(std::min<uint64_t>(cut->get<uint64_t>(), 1u << 20)) : -1;
  if (const json* codec = Field(*tandem, "codec")) {
    if (!codec->is_string()) return WrongType("tandem.codec", "a string");
    auto parsed = ParseActivationCodec(codec->get<std::string>());
    if (!parsed.ok()) return InvalidValue("tandem.codec", parsed.status().message());
    split.codec = *parsed;
  }
  request.split = split;
  return std::nullopt;
}

Refusal RefuseSeveralChoices(const json& body) {
  if (const json* n = Field(body, "n"); n != nullptr && *n != 1)
    return InvalidValue("n", "only n = 1 is supported");
  return std::nullopt;
}

}  // namespace tandem::edge_agent::request_fields
