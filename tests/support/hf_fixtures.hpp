// Small Hugging Face model files written by tests: the byte-level BPE alphabet, added-token entries, a
// byte-level tokenizer.json, and a chat model directory (config.json, that tokenizer.json,
// tokenizer_config.json with a template).
#pragma once

#include <nlohmann/json.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace tandem::testing {

// GPT-2's bytes_to_unicode(): the symbol of each byte in byte-level BPE vocabularies.
std::vector<std::string> ByteLevelAlphabet();

// An "added_tokens" entry of tokenizer.json, matched as it is written.
nlohmann::json AddedTokenJson(int id, const std::string& content, bool special);

// A byte-level BPE tokenizer.json: GPT-2's byte symbols as ids 0..255 (byte b is id b), no merges, then
// `special_tokens` as added special tokens from id 256 on.
std::string ByteLevelTokenizerJson(const std::vector<std::string>& special_tokens);

// What a chat model directory's tokenizer_config.json says. bos_token / eos_token are JSON (a string,
// {"content": ...} or null), as the families write them.
struct ChatModelFiles {
  std::string chat_template;
  nlohmann::json bos_token;
  nlohmann::json eos_token;
  std::vector<std::string> special_tokens;  // added to the vocabulary after the 256 byte symbols
};

// Writes config.json (a tiny Llama), tokenizer.json (byte-level BPE: the byte symbols, no merges, then
// `files.special_tokens`) and tokenizer_config.json into `dir` (created). No weights: enough for
// `tandem chat-template`, which reads the config and the tokenizer only.
void WriteChatModelDir(const std::filesystem::path& dir, const ChatModelFiles& files);

}  // namespace tandem::testing
