// Fuzz target: POST /v1/completions body -> CompletionRequest. The parser must answer every body with a
// request or an ApiError (never an exception: the server would turn it into a 500), the request must
// satisfy the limits it was checked against, and the error must render as the server renders it.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <string_view>

#include "fuzz_support.hpp"
#include "tandem/edge_agent/completion_request.hpp"

namespace {

using tandem::edge_agent::ApiError;
using tandem::edge_agent::CompletionLimits;
using tandem::edge_agent::CompletionRequest;

// Small limits so that the fuzzer reaches both sides of each check.
constexpr CompletionLimits kLimits{.max_tokens_cap = 256, .max_prompt_bytes = 1024};

// As services::ErrorResponse renders it (messages may quote invalid UTF-8 from the body).
void RenderError(const ApiError& error) {
  nlohmann::json body = {
      {"message", error.message}, {"type", error.type}, {"param", nullptr}, {"code", nullptr}};
  if (!error.param.empty()) body["param"] = error.param;
  if (!error.code.empty()) body["code"] = error.code;
  const std::string text =
      nlohmann::json{{"error", body}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  FUZZ_CHECK(!text.empty());
}

void CheckRequest(const CompletionRequest& request) {
  FUZZ_CHECK(request.max_tokens >= 1 && request.max_tokens <= kLimits.max_tokens_cap);
  FUZZ_CHECK(request.prompt.size() <= kLimits.max_prompt_bytes);
  FUZZ_CHECK(request.temperature >= 0 && request.temperature <= 2);
  FUZZ_CHECK(request.top_p > 0 && request.top_p <= 1);
  FUZZ_CHECK(request.stop.size() <= 4);
  for (const auto& stop : request.stop) FUZZ_CHECK(!stop.empty());
  if (request.split) {
    FUZZ_CHECK(request.split->cut >= -1);
    FUZZ_CHECK(request.split->codec.Name() != "invalid");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    auto parsed = tandem::edge_agent::ParseCompletionRequest(body, kLimits);
    if (!parsed.ok()) {
      FUZZ_CHECK(parsed.error().status >= 400 && parsed.error().status <= 599);
      RenderError(parsed.error());
    } else {
      CheckRequest(*parsed);
    }
  } catch (const std::exception& error) {
    std::fprintf(stderr, "ParseCompletionRequest threw: %s\n", error.what());
    std::abort();
  }
  return 0;
}
