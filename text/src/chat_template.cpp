#include "tandem/text/chat_template.hpp"

#include <nlohmann/json.hpp>

#include <array>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "builtin_chat_templates.hpp"
#include "jinja/evaluator.hpp"
#include "jinja/parser.hpp"
#include "tandem/base/json_file.hpp"
#include "tandem/text/tokenizer.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr size_t kMaxTemplateBytes = 1u << 20;

// The end-of-turn markers of the template families Tandem knows, looked for in the source.
constexpr std::array<std::string_view, 4> kEndOfTurnMarkers = {"<|eot_id|>", "<|im_end|>", "<|end|>",
                                                               "<end_of_turn>"};

Result<std::string> ReadTemplateFile(const fs::path& path) {
  std::error_code error;
  const auto size = fs::file_size(path, error);
  if (error) return InvalidArgument("cannot read chat template '" + path.string() + "': " + error.message());
  if (size > kMaxTemplateBytes) return InvalidArgument("chat template '" + path.string() + "' is over 1 MiB");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  if (!in) return InvalidArgument("cannot read chat template '" + path.string() + "'");
  return text.str();
}

// tokenizer_config.json's chat_template: a string, or a list of {"name", "template"} whose "default" is
// taken. nullopt when there is none.
Result<std::optional<std::string>> TemplateFromConfig(const json& config, const std::string& path) {
  if (!config.contains("chat_template") || config.at("chat_template").is_null())
    return std::optional<std::string>();
  const json& value = config.at("chat_template");
  if (value.is_string()) return std::optional<std::string>(value.get<std::string>());
  if (value.is_array()) {
    for (const json& entry : value) {
      if (entry.is_object() && entry.value("name", json()) == "default" && entry.contains("template") &&
          entry.at("template").is_string()) {
        return std::optional<std::string>(entry.at("template").get<std::string>());
      }
    }
    return InvalidArgument(path + ": chat_template lists no template named \"default\"");
  }
  return InvalidArgument(path + ": chat_template must be a string or a list of {\"name\", \"template\"}");
}

// bos_token / eos_token of tokenizer_config.json: a string or {"content": ...}; nullopt when absent or null.
std::optional<std::string> SpecialToken(const std::optional<json>& config, const char* field) {
  if (!config || !config->contains(field)) return std::nullopt;
  const json& value = config->at(field);
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value.at("content").is_string()) {
    return value.at("content").get<std::string>();
  }
  return std::nullopt;
}

std::string TokenPiece(const Tokenizer& tokenizer, int id) {
  return id >= 0 && id < tokenizer.vocab_size() ? tokenizer.piece(id) : std::string();
}

struct Source {
  std::string text;
  std::string origin;
};

// The template the flag names: a built-in, a tokenizer_config.json (.json) or a Jinja file.
Result<Source> SourceFromFlag(const std::string& flag) {
  for (const BuiltinChatTemplate& builtin : BuiltinChatTemplates()) {
    if (flag == builtin.name) {
      return Source{std::string(builtin.source), "built-in chat template '" + flag + "'"};
    }
  }
  const fs::path path(flag);
  std::error_code error;
  if (!fs::is_regular_file(path, error)) {
    std::string names;
    for (const BuiltinChatTemplate& builtin : BuiltinChatTemplates())
      names += " " + std::string(builtin.name);
    return InvalidArgument("--chat-template '" + flag + "' is neither a built-in template (" +
                           names.substr(1) + ") nor a file");
  }
  if (path.extension() == ".json") {
    TANDEM_ASSIGN_OR_RETURN(const std::optional<json> config, ReadJsonObjectIfExists(path));
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> text, TemplateFromConfig(*config, path.string()));
    if (!text) return InvalidArgument(path.string() + " has no chat_template");
    return Source{std::move(*text), path.string()};
  }
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadTemplateFile(path));
  return Source{std::move(text), path.string()};
}

}  // namespace

struct ChatTemplate::Impl {
  jinja::Template tmpl;
  std::string bos_token;
  std::string eos_token;
  std::string origin;
  std::vector<std::string> end_of_turn;
};

ChatTemplate::ChatTemplate(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

std::span<const std::string_view> ChatTemplate::BuiltinNames() {
  static const std::vector<std::string_view> names = [] {
    std::vector<std::string_view> all;
    for (const BuiltinChatTemplate& builtin : BuiltinChatTemplates()) all.push_back(builtin.name);
    return all;
  }();
  return names;
}

std::optional<std::string_view> ChatTemplate::BuiltinSource(std::string_view name) {
  for (const BuiltinChatTemplate& builtin : BuiltinChatTemplates()) {
    if (builtin.name == name) return builtin.source;
  }
  return std::nullopt;
}

// `source` by value: the header's signature (only read here).
Result<ChatTemplate> ChatTemplate::FromSource(
    std::string source,  // NOLINT(performance-unnecessary-value-param)
    std::string bos_token, std::string eos_token, std::string origin) {
  Result<jinja::Template> parsed = jinja::Parse(source);
  if (!parsed.ok()) return parsed.status().WithContext("chat template " + origin);
  auto impl = std::make_shared<Impl>();
  impl->tmpl = std::move(parsed).value();
  if (!eos_token.empty()) impl->end_of_turn.push_back(eos_token);
  for (std::string_view marker : kEndOfTurnMarkers) {
    if (source.find(marker) != std::string::npos && marker != eos_token)
      impl->end_of_turn.emplace_back(marker);
  }
  impl->bos_token = std::move(bos_token);
  impl->eos_token = std::move(eos_token);
  impl->origin = std::move(origin);
  return ChatTemplate(std::move(impl));
}

Result<std::optional<ChatTemplate>> ChatTemplate::LoadForModel(const std::string& model_path,
                                                               const std::string& chat_template_flag,
                                                               const Tokenizer& tokenizer) {
  std::error_code error;
  const bool is_directory = !model_path.empty() && fs::is_directory(model_path, error);
  std::optional<json> config;
  if (is_directory) {
    TANDEM_ASSIGN_OR_RETURN(config, ReadJsonObjectIfExists(fs::path(model_path) / "tokenizer_config.json"));
  }
  std::optional<Source> source;
  if (!chat_template_flag.empty()) {
    TANDEM_ASSIGN_OR_RETURN(source, SourceFromFlag(chat_template_flag));
  } else if (is_directory && fs::is_regular_file(fs::path(model_path) / "chat_template.jinja", error)) {
    const fs::path path = fs::path(model_path) / "chat_template.jinja";
    TANDEM_ASSIGN_OR_RETURN(std::string text, ReadTemplateFile(path));
    source = Source{std::move(text), path.string()};
  } else if (config) {
    const std::string path = (fs::path(model_path) / "tokenizer_config.json").string();
    TANDEM_ASSIGN_OR_RETURN(std::optional<std::string> text, TemplateFromConfig(*config, path));
    if (text) source = Source{std::move(*text), path};
  }
  if (!source) return std::optional<ChatTemplate>();
  std::string bos = SpecialToken(config, "bos_token").value_or(TokenPiece(tokenizer, tokenizer.bos()));
  std::string eos = SpecialToken(config, "eos_token").value_or(TokenPiece(tokenizer, tokenizer.eos()));
  TANDEM_ASSIGN_OR_RETURN(ChatTemplate loaded, FromSource(std::move(source->text), std::move(bos),
                                                          std::move(eos), source->origin));
  return std::optional<ChatTemplate>(std::move(loaded));
}

Result<std::string> ChatTemplate::Render(std::span<const ChatMessage> messages,
                                         bool add_generation_prompt) const {
  using jinja::Value;
  std::vector<Value> list;
  for (const ChatMessage& message : messages) {
    jinja::Dict entry;
    entry.Set("role", message.role);
    entry.Set("content", message.content);
    list.push_back(Value::MakeDict(std::move(entry)));
  }
  // What transformers' apply_chat_template passes: tools and documents are None without them; a special
  // token the tokenizer does not have is left out (undefined), as its special_tokens_map leaves it out.
  jinja::Dict variables;
  variables.Set("messages", Value::List(std::move(list)));
  variables.Set("tools", jinja::None{});
  variables.Set("documents", jinja::None{});
  variables.Set("add_generation_prompt", add_generation_prompt);
  if (!impl_->bos_token.empty()) variables.Set("bos_token", impl_->bos_token);
  if (!impl_->eos_token.empty()) variables.Set("eos_token", impl_->eos_token);
  Result<std::string> text = jinja::Render(impl_->tmpl, variables);
  if (!text.ok()) return text.status().WithContext("chat template " + impl_->origin);
  return text;
}

const std::vector<std::string>& ChatTemplate::end_of_turn() const {
  return impl_->end_of_turn;
}

const std::string& ChatTemplate::origin() const {
  return impl_->origin;
}

Result<std::string> ChatContentText(const json& content) {
  if (content.is_string()) return content.get<std::string>();
  if (!content.is_array()) return InvalidArgument("content must be a string or an array of text parts");
  std::string text;
  for (size_t i = 0; i < content.size(); ++i) {
    const json& part = content[i];
    const std::string where = "content[" + std::to_string(i) + "]";
    if (!part.is_object()) return InvalidArgument(where + " must be an object");
    const json type = part.value("type", json());
    if (!type.is_string()) return InvalidArgument(where + ".type must be a string");
    if (type != "text")
      return InvalidArgument(where + ".type '" + type.get<std::string>() +
                             "' is not supported (only \"text\")");
    if (!part.contains("text") || !part.at("text").is_string())
      return InvalidArgument(where + ".text must be a string");
    if (i > 0) text += "\n";
    text += part.at("text").get<std::string>();
  }
  return text;
}

Result<std::vector<ChatMessage>> ChatMessagesFromJson(const json& messages) {
  if (!messages.is_array()) return InvalidArgument("messages must be an array");
  std::vector<ChatMessage> parsed;
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& message = messages[i];
    const std::string where = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) return InvalidArgument(where + " must be an object");
    if (!message.contains("role") || !message.at("role").is_string()) {
      return InvalidArgument(where + ".role must be a string");
    }
    if (!message.contains("content")) return InvalidArgument(where + " has no content");
    Result<std::string> content = ChatContentText(message.at("content"));
    if (!content.ok()) return content.status().WithContext(where);
    parsed.push_back(ChatMessage{message.at("role").get<std::string>(), std::move(content).value()});
  }
  return parsed;
}

}  // namespace tandem
