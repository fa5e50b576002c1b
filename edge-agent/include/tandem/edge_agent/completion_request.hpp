// POST /v1/completions: the OpenAI request body, parsed and checked field by field, and the errors in
// OpenAI's shape (status, type, code, param) so that clients can tell what to fix.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/edge_agent/api_error.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem::edge_agent {

struct CompletionRequest {
  std::string model;
  std::string prompt;
  int max_tokens = 16;  // OpenAI's default
  float temperature = 1.0f;
  float top_p = 1.0f;
  std::optional<uint64_t> seed;  // absent: a random seed, reported in the response
  // Up to 4 strings of the client's; the text ends before the first match. Chat adds the end-of-turn
  // markers that are not single tokens (ChatTurnStops).
  std::vector<std::string> stop;
  // Token ids that end the generation and never show, besides the tokenizer's end-of-text ids: set by the
  // server (chat's end-of-turn tokens), never by the client.
  std::vector<int> stop_token_ids;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage (chat: a last chunk with the usage)
  // Tandem's extension "tandem": {"split": K | "local", "codec": "fp32"}: this request runs at that
  // split instead of the planner's choice (for benchmarks and debugging). cut -1: all-local.
  struct SplitOverride {
    int cut = -1;
    ActivationCodec codec;
  };
  std::optional<SplitOverride> split;
  // "tandem": {"draft": "ngram" | "early-exit" | "none" | the edge's --draft, "draft_tokens": N | "auto"}:
  // speculative decoding for this request instead of the edge's default. draft_tokens
  // scheduler::kAutoDraftTokens: auto.
  std::optional<std::string> draft;
  std::optional<int> draft_tokens;
};

// A request ready to run: its fields and the prompt's token ids.
struct PreparedRequest {
  CompletionRequest request;
  std::vector<int> ids;
};

struct CompletionLimits {
  int max_tokens_cap = 0;  // the largest max_tokens accepted
  size_t max_prompt_bytes = size_t{64} * 1024;
};

// Parses a JSON body. Unknown fields are ignored, as OpenAI's API does for fields it does not use; fields
// that would change the output and are not supported (n > 1, echo, best_of, logprobs, suffix) are refused.
// `seed`, `stop` and `stream` may be null.
ApiResult<CompletionRequest> ParseCompletionRequest(std::string_view body, const CompletionLimits& limits);

}  // namespace tandem::edge_agent
