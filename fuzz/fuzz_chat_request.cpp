// Fuzz target: POST /v1/chat/completions body -> ChatRequest, then the messages through the built-in
// ChatML template as the edge renders them. The parser must answer every body with a request or an
// ApiError (never an exception: the server would turn it into a 500); a request holds at least one
// message, each with a role the templates know, within the limits it was checked against.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <string_view>

#include "fuzz_support.hpp"
#include "tandem/edge_agent/chat_request.hpp"

namespace {

using tandem::ChatTemplate;
using tandem::edge_agent::CompletionLimits;

// Small limits so that the fuzzer reaches both sides of each check.
constexpr CompletionLimits kLimits{.max_tokens_cap = 256, .max_prompt_bytes = 1024};

const ChatTemplate& ChatMl() {
  static const ChatTemplate chat_ml =
      ChatTemplate::FromSource(std::string(*ChatTemplate::BuiltinSource("chatml")), "", "<|im_end|>",
                               "chatml")
          .value();
  return chat_ml;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  try {
    auto parsed = tandem::edge_agent::ParseChatRequest(body, kLimits);
    if (!parsed.ok()) {
      FUZZ_CHECK(parsed.error().status >= 400 && parsed.error().status <= 599);
      FUZZ_CHECK(!parsed.error().message.empty());
      return 0;
    }
    FUZZ_CHECK(!parsed->messages.empty());
    size_t bytes = 0;
    for (const auto& message : parsed->messages) {
      FUZZ_CHECK(message.role == "system" || message.role == "user" || message.role == "assistant");
      bytes += message.content.size();
    }
    FUZZ_CHECK(bytes <= kLimits.max_prompt_bytes);
    const auto& request = parsed->completion;
    FUZZ_CHECK(request.max_tokens >= 1 && request.max_tokens <= kLimits.max_tokens_cap);
    FUZZ_CHECK(request.stop.size() <= 4);
    auto rendered = ChatMl().Render(parsed->messages, true);
    FUZZ_CHECK(rendered.ok());  // ChatML takes any roles in any order
  } catch (const std::exception& error) {
    std::fprintf(stderr, "ParseChatRequest or the render threw: %s\n", error.what());
    std::abort();
  }
  return 0;
}
