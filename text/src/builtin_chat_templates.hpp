// The chat templates ChatTemplate knows by name (--chat-template llama3 ...): each the chat_template of that
// family's tokenizer_config.json on the Hugging Face Hub, as published.
#pragma once

#include <span>
#include <string_view>

namespace tandem {

struct BuiltinChatTemplate {
  std::string_view name;
  std::string_view model;  // the model whose tokenizer_config.json it is
  std::string_view source;
};

std::span<const BuiltinChatTemplate> BuiltinChatTemplates();

}  // namespace tandem
