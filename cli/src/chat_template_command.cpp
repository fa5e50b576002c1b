#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/model/hf_config.hpp"
#include "tandem/text/chat_template.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "chat-template";

// The model's vocabulary size, which loading its tokenizer needs: config.json of a Hugging Face directory
// (no weights read), the header of a llama2.c checkpoint.
Result<int32_t> VocabSize(const std::string& model) {
  if (std::filesystem::is_directory(model)) {
    TANDEM_ASSIGN_OR_RETURN(const HfModelConfig config, LoadHfConfig(model));
    return config.shape.vocab_size;
  }
  TANDEM_ASSIGN_OR_RETURN(const std::shared_ptr<const Checkpoint> checkpoint, Checkpoint::Load(model));
  return checkpoint->config().vocab_size;
}

Result<std::vector<ChatMessage>> ReadMessages(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return InvalidArgument("cannot read --messages file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  const nlohmann::json messages = nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (messages.is_discarded()) return InvalidArgument("--messages file '" + path + "' is not valid JSON");
  Result<std::vector<ChatMessage>> parsed = ChatMessagesFromJson(messages);
  if (!parsed.ok()) return parsed.status().WithContext("--messages file '" + path + "'");
  return parsed;
}

}  // namespace

int RunChatTemplate(std::span<const std::string> args) {
  std::string model, tokenizer_path, chat_template, messages_path;
  bool no_generation_prompt = false;
  FlagSet flags(
      "usage: tandem chat-template --model DIR|FILE [--tokenizer F] [--chat-template NAME|FILE] --messages "
      "FILE.json [--no-generation-prompt]\n\n"
      "Prints the prompt the model's chat template renders for the messages (a JSON array of {\"role\",\n"
      "\"content\"}), exactly as Hugging Face's apply_chat_template(tokenize=False) does; nothing is added.");
  flags.String("model", &model, kModelFlagHelp);
  flags.String("tokenizer", &tokenizer_path, kTokenizerFlagHelp);
  flags.String("chat-template", &chat_template,
               "a built-in template (llama3, llama2, mistral, chatml, phi3), a Jinja file or a "
               "tokenizer_config.json (default: the model directory's)");
  flags.String("messages", &messages_path, "JSON file: an array of {\"role\", \"content\"} messages");
  flags.Bool("no-generation-prompt", &no_generation_prompt,
             "render without the assistant header that opens the reply (add_generation_prompt=False)");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = RequireModelAndTokenizer(flags, model); !status.ok()) {
    return Fail(kCommand, status, kExitUsage);
  }
  if (Status status = Require(flags, "messages"); !status.ok()) return Fail(kCommand, status, kExitUsage);
  Result<int32_t> vocab_size = VocabSize(model);
  if (!vocab_size.ok()) return Fail(kCommand, vocab_size.status(), kExitUsage);
  Result<Tokenizer> tokenizer = Tokenizer::LoadForModel(model, tokenizer_path, *vocab_size);
  if (!tokenizer.ok()) return Fail(kCommand, tokenizer.status(), kExitUsage);
  Result<std::optional<ChatTemplate>> loaded = ChatTemplate::LoadForModel(model, chat_template, *tokenizer);
  if (!loaded.ok()) return Fail(kCommand, loaded.status(), kExitUsage);
  if (!loaded->has_value()) {
    return Fail(kCommand,
                InvalidArgument("'" + model + "' has no chat template; --chat-template NAME|FILE gives one"),
                kExitUsage);
  }
  Result<std::vector<ChatMessage>> messages = ReadMessages(messages_path);
  if (!messages.ok()) return Fail(kCommand, messages.status(), kExitUsage);
  Result<std::string> prompt = (*loaded)->Render(*messages, !no_generation_prompt);
  if (!prompt.ok()) return Fail(kCommand, prompt.status());
  std::fwrite(prompt->data(), 1, prompt->size(), stdout);
  return 0;
}

}  // namespace tandem::cli
