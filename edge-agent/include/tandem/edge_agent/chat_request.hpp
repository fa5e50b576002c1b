// POST /v1/chat/completions: the OpenAI chat request body, parsed and checked as a completion's is (the
// shared fields through the same readers, with the same errors), then turned into the completion it runs
// as: the model's chat template renders the messages with the generation prompt, the rendering is
// tokenized (BOS as the template decides), and the template's end-of-turn markers become stops.
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "tandem/edge_agent/completion_request.hpp"
#include "tandem/text/chat_template.hpp"
#include "tandem/text/tokenizer.hpp"

namespace tandem::edge_agent {

struct ChatRequest {
  std::vector<ChatMessage> messages;  // roles system, user, assistant ("developer" read as system)
  CompletionRequest completion;       // every field but the prompt, which the template renders
};

// Parses a JSON body: messages (content a string or an array of {"type": "text", "text"} parts, joined
// with "\n"), max_tokens / max_completion_tokens (the latter wins), temperature, top_p, seed, stop, stream,
// stream_options.include_usage, n = 1, and the "tandem" extension. Unknown fields are ignored; what would
// change the answer and is not supported (n > 1, logprobs, top_logprobs, tools, functions, tool_choice,
// a response_format other than text, image or audio parts) is refused with its `param`
// ("messages[2].content[0].type").
ApiResult<ChatRequest> ParseChatRequest(std::string_view body, const CompletionLimits& limits);

// The template's end-of-turn strings split by how the generation stops at them: a string the tokenizer
// encodes as exactly one token whose piece is that string stops at that token id (it never shows);
// any other is a stop string, cut from the text like the client's.
struct TurnStops {
  std::vector<int> token_ids;
  std::vector<std::string> strings;
};
TurnStops ChatTurnStops(const ChatTemplate& chat_template, const Tokenizer& tokenizer);

// Whether the rendered prompt's tokens get a BOS prepended: yes, unless the template wrote the BOS token's
// text itself (Llama 2, Llama 3 and Mistral templates start with {{ bos_token }}), so a prompt never has
// two. llama.cpp's server follows the same rule.
bool RenderedPromptNeedsBos(std::string_view rendered, const Tokenizer& tokenizer);

// The chat as the completion it runs as: the prompt the template renders (add_generation_prompt), its
// token ids, and the end-of-turn stops added to the request's. Errors (400, param "messages"): no template
// (a llama2.c model without --chat-template: code chat_template_missing), or the template's own
// (raise_exception for roles that do not alternate: code invalid_value with the template's message).
ApiResult<PreparedRequest> PrepareChat(ChatRequest chat, const ChatTemplate* chat_template,
                                       const Tokenizer& tokenizer);

}  // namespace tandem::edge_agent
