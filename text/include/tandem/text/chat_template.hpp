// Chat templates: a model's Jinja chat_template turned into the prompt text for a list of messages, as
// Hugging Face's apply_chat_template(messages, tokenize=False, add_generation_prompt=...) renders it.
//
// Where a template comes from (LoadForModel):
// - --chat-template VALUE: one of the built-in names (BuiltinNames(): Llama 3, Llama 2, Mistral, ChatML as
//   Qwen2 uses it, Phi-3, each the text of that family's tokenizer_config.json), else a file: a Jinja
//   source, or a tokenizer_config.json (a .json file) whose chat_template is taken;
// - else the model directory's chat_template.jinja, else its tokenizer_config.json "chat_template" (a
//   string, or a list of {"name", "template"} of which "default" is taken);
// - else none: a llama2.c checkpoint, or a directory without one (chat on it is refused by the caller).
// bos_token / eos_token are the strings of the directory's tokenizer_config.json (a string or
// {"content": ...}), else the tokenizer's bos()/eos() pieces.
//
// Templates run in Tandem's own Jinja interpreter (text/src/jinja/), with the environment Hugging Face uses
// (trim_blocks, lstrip_blocks, loop controls; raise_exception, strftime_now, tojson). A template that uses
// syntax, a filter, a test or a method the interpreter does not implement is refused when it is loaded,
// with the reason and its line, never rendered differently from Jinja.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

class Tokenizer;

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" (the template decides what it accepts)
  std::string content;
};

// A message's "content" as OpenAI clients send it: a string, or an array of {"type": "text", "text": ...}
// parts joined with "\n". Anything else (null, a number, a part of another type or without a string
// "text") is INVALID_ARGUMENT saying what is wrong: the caller's 400.
Result<std::string> ChatContentText(const nlohmann::json& content);

// The messages of a JSON array of {"role", "content"} (role a string, content as ChatContentText takes
// it); errors name the message's index. Roles are not checked: the template decides.
Result<std::vector<ChatMessage>> ChatMessagesFromJson(const nlohmann::json& messages);

class ChatTemplate {
 public:
  // "llama3", "llama2", "mistral", "chatml", "phi3".
  static std::span<const std::string_view> BuiltinNames();
  // The Jinja source of a built-in template; nullopt for another name.
  static std::optional<std::string_view> BuiltinSource(std::string_view name);

  // The template of a model as tandem-edge --model/--tokenizer/--chat-template give it (see above).
  // nullopt: the model has none and no flag gives one. A file that cannot be read or parsed, or a template
  // that cannot be rendered, is an error naming the file (or built-in name) and the reason.
  static Result<std::optional<ChatTemplate>> LoadForModel(const std::string& model_path,
                                                          const std::string& chat_template_flag,
                                                          const Tokenizer& tokenizer);

  // A template from its Jinja source; `origin` names it in errors ("tokenizer_config.json", a path).
  static Result<ChatTemplate> FromSource(std::string source, std::string bos_token, std::string eos_token,
                                         std::string origin);

  // The prompt text. An error is the template's own raise_exception (roles that do not alternate, a system
  // message the template does not take) or a runtime error, with its message: the caller's 400.
  Result<std::string> Render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

  // The strings that end an assistant turn: eos_token and the end-of-turn markers the template writes
  // (<|eot_id|>, <|im_end|>, <|end|>, <end_of_turn>). A generation stops at them and never shows them.
  const std::vector<std::string>& end_of_turn() const;
  const std::string& origin() const;

 private:
  struct Impl;
  explicit ChatTemplate(std::shared_ptr<const Impl> impl);

  std::shared_ptr<const Impl> impl_;
};

}  // namespace tandem
