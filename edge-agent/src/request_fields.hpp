// The request fields /v1/completions and /v1/chat/completions share, parsed and checked one group at a
// time: each reader returns the refusal of the first field at fault (OpenAI's error object with its
// `param`), or nullopt having filled its part of the CompletionRequest. Null counts as absent, as in
// OpenAI's API. Private to the edge agent's request parsers.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "tandem/edge_agent/completion_request.hpp"

namespace tandem::edge_agent::request_fields {

using Refusal = std::optional<ApiError>;

// 400 invalid_type: "'<param>' must be <expected>".
ApiError WrongType(const std::string& param, const std::string& expected);
// 400 missing_required_parameter.
ApiError Missing(const std::string& param);
// The field when present and not null, else nullptr.
const nlohmann::json* Field(const nlohmann::json& body, const std::string& name);
// The body as a JSON object (invalid_json otherwise).
ApiResult<nlohmann::json> ParseBody(std::string_view text);

Refusal ReadModel(const nlohmann::json& body, CompletionRequest& request);
// `name` (max_tokens, or chat's max_completion_tokens), in [1, limits.max_tokens_cap]; absent: OpenAI's 16,
// or the cap when lower.
Refusal ReadMaxTokens(const nlohmann::json& body, const std::string& name, const CompletionLimits& limits,
                      CompletionRequest& request);
// temperature, top_p and seed: what the sampler is given.
Refusal ReadSampling(const nlohmann::json& body, CompletionRequest& request);
// Up to 4 non-empty stop strings.
Refusal ReadStop(const nlohmann::json& body, CompletionRequest& request);
// stream, and stream_options.include_usage.
Refusal ReadStream(const nlohmann::json& body, CompletionRequest& request);
// Tandem's extension: "tandem": {"split": K | "local", "codec": C, "draft": D, "draft_tokens": N}.
Refusal ReadTandemExtension(const nlohmann::json& body, CompletionRequest& request);
// n: only 1.
Refusal RefuseSeveralChoices(const nlohmann::json& body);

}  // namespace tandem::edge_agent::request_fields
