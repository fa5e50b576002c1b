#include "tandem/edge_agent/chat_request.hpp"

#include "request_fields.hpp"

namespace tandem::edge_agent {
namespace {

using nlohmann::json;
using namespace request_fields;

// OpenAI's roles as a template knows them ("developer" is what OpenAI's newer models call system); tool
// and function messages are refused with the tools themselves.
std::optional<std::string> TemplateRole(const std::string& role) {
  if (role == "system" || role == "developer") return "system";
  if (role == "user" || role == "assistant") return role;
  return std::nullopt;
}

// Every part of a content array a text part; the first that is not, named by its `param`. (Joining them is
// ChatContentText's, which tandem chat-template shares.)
Refusal CheckTextParts(const json& parts, const std::string& param) {
  for (size_t j = 0; j < parts.size(); ++j) {
    const std::string part_param = param + "[" + std::to_string(j) + "]";
    const json& part = parts[j];
    if (!part.is_object()) return WrongType(part_param, "an object {\"type\": \"text\", \"text\": ...}");
    const json* type = Field(part, "type");
    if (type == nullptr) return Missing(part_param + ".type");
    if (*type != "text") {
      return InvalidValue(part_param + ".type", "only text parts are supported, not " + type->dump());
    }
    const json* part_text = Field(part, "text");
    if (part_text == nullptr) return Missing(part_param + ".text");
    if (!part_text->is_string()) return WrongType(part_param + ".text", "a string");
  }
  return std::nullopt;
}

ApiResult<ChatMessage> ReadMessage(const json& message, const std::string& param) {
  if (!message.is_object()) return WrongType(param, "an object with 'role' and 'content'");
  const json* role = Field(message, "role");
  if (role == nullptr) return Missing(param + ".role");
  if (!role->is_string()) return WrongType(param + ".role", "a string");
  const std::optional<std::string> template_role = TemplateRole(role->get<std::string>());
  if (!template_role) {
    return InvalidValue(param + ".role", "'role' must be system, developer, user or assistant, not " +
                                             role->dump() + " (tools are not supported)");
  }
  if (Field(message, "tool_calls") != nullptr || Field(message, "function_call") != nullptr) {
    return InvalidValue(param + ".tool_calls", "tool calls are not supported");
  }
  ChatMessage read{.role = *template_role};
  const json* content = Field(message, "content");
  const std::string content_param = param + ".content";
  if (content == nullptr) {
    // An assistant turn may come without content (OpenAI: one that only called tools).
    if (read.role == "assistant") return read;
    return Missing(content_param);
  }
  if (!content->is_string() && !content->is_array()) {
    return WrongType(content_param, "a string or an array of text parts");
  }
  if (content->is_array()) {
    if (Refusal error = CheckTextParts(*content, content_param)) return *error;
  }
  Result<std::string> text = ChatContentText(*content);
  if (!text.ok()) return InvalidValue(content_param, text.status().message());
  read.content = std::move(*text);
  return read;
}

Refusal ReadMessages(const json& body, const CompletionLimits& limits, std::vector<ChatMessage>& messages) {
  const json* list = Field(body, "messages");
  if (list == nullptr) return Missing("messages");
  if (!list->is_array()) return WrongType("messages", "an array of messages");
  if (list->empty()) return InvalidValue("messages", "'messages' must hold at least one message");
  size_t bytes = 0;
  for (size_t i = 0; i < list->size(); ++i) {
    ApiResult<ChatMessage> message = ReadMessage((*list)[i], "messages[" + std::to_string(i) + "]");
    if (!message.ok()) return message.error();
    bytes += message->content.size();
    messages.push_back(std::move(*message));
  }
  if (bytes > limits.max_prompt_bytes) {
    return InvalidValue("messages", "the messages' content is longer than " +
                                        std::to_string(limits.max_prompt_bytes) + " bytes");
  }
  return std::nullopt;
}

// max_completion_tokens, OpenAI's newer name, wins over max_tokens.
Refusal ReadChatMaxTokens(const json& body, const CompletionLimits& limits, CompletionRequest& request) {
  const bool newer = Field(body, "max_completion_tokens") != nullptr;
  return ReadMaxTokens(body, newer ? "max_completion_tokens" : "max_tokens", limits, request);
}

// What would change the answer and is not served: refuse rather than ignore, saying what is supported.
Refusal RefuseUnsupportedChat(const json& body) {
  if (Refusal error = RefuseSeveralChoices(body)) return error;
  if (const json* logprobs = Field(body, "logprobs"); logprobs != nullptr && *logprobs != false)
    return InvalidValue("logprobs", "'logprobs' is not supported");
  if (Field(body, "top_logprobs") != nullptr)
    return InvalidValue("top_logprobs", "'top_logprobs' is not supported");
  for (const char* name : {"tools", "functions"}) {
    const json* field = Field(body, name);
    if (field != nullptr && !(field->is_array() && field->empty())) {
      return InvalidValue(name,
                          std::string("'") + name + "' is not supported: this server generates text only");
    }
  }
  if (const json* choice = Field(body, "tool_choice"); choice != nullptr && *choice != "none")
    return InvalidValue("tool_choice", "'tool_choice' is not supported (only \"none\"): no tools");
  if (const json* format = Field(body, "response_format");
      format != nullptr && !(format->is_object() && format->value("type", json()) == "text")) {
    return InvalidValue("response_format", "only response_format {\"type\": \"text\"} is supported");
  }
  return std::nullopt;
}

}  // namespace

ApiResult<ChatRequest> ParseChatRequest(std::string_view text, const CompletionLimits& limits) {
  ApiResult<json> parsed = ParseBody(text);
  if (!parsed.ok()) return parsed.error();
  const json& body = *parsed;
  ChatRequest chat;
  CompletionRequest& request = chat.completion;
  // In this order: the first field at fault is the one reported (each reader reads its own fields).
  for (Refusal error :
       {ReadModel(body, request), ReadMessages(body, limits, chat.messages),
        ReadChatMaxTokens(body, limits, request), ReadSampling(body, request), ReadStop(body, request),
        ReadStream(body, request), ReadTandemExtension(body, request), RefuseUnsupportedChat(body)}) {
    if (error) return *error;
  }
  return chat;
}

TurnStops ChatTurnStops(const ChatTemplate& chat_template, const Tokenizer& tokenizer) {
  TurnStops stops;
  for (const std::string& marker : chat_template.end_of_turn()) {
    if (marker.empty()) continue;
    const std::vector<int> ids = tokenizer.Encode(marker, false, false);
    if (ids.size() == 1 && tokenizer.piece(ids[0]) == marker) {
      stops.token_ids.push_back(ids[0]);
    } else {
      stops.strings.push_back(marker);
    }
  }
  return stops;
}

bool RenderedPromptNeedsBos(std::string_view rendered, const Tokenizer& tokenizer) {
  if (tokenizer.bos() < 0) return false;  // Qwen2: the tokenizer adds none either way
  const std::string& bos = tokenizer.piece(tokenizer.bos());
  return bos.empty() || !rendered.starts_with(bos);
}

ApiResult<PreparedRequest> PrepareChat(ChatRequest chat, const ChatTemplate* chat_template,
                                       const Tokenizer& tokenizer) {
  if (chat_template == nullptr) {
    return ApiError{.message =
                        "this model has no chat template: start tandem-edge with --chat-template "
                        "NAME|FILE (a built-in name such as chatml, or a Jinja file) to serve chat, "
                        "or use /v1/completions",
                    .code = "chat_template_missing",
                    .param = "messages"};
  }
  Result<std::string> rendered = chat_template->Render(chat.messages, /*add_generation_prompt=*/true);
  if (!rendered.ok()) {
    return InvalidValue("messages", "the chat template (" + chat_template->origin() +
                                        ") refused the messages: " + rendered.status().message());
  }
  PreparedRequest prepared{.request = std::move(chat.completion)};
  CompletionRequest& request = prepared.request;
  request.prompt = std::move(*rendered);
  prepared.ids = tokenizer.Encode(request.prompt, RenderedPromptNeedsBos(request.prompt, tokenizer), false);
  TurnStops stops = ChatTurnStops(*chat_template, tokenizer);
  request.stop_token_ids = std::move(stops.token_ids);
  request.stop.insert(request.stop.end(), stops.strings.begin(), stops.strings.end());
  return prepared;
}

}  // namespace tandem::edge_agent
