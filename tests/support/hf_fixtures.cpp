#include "hf_fixtures.hpp"

#include <cstdint>

#include "tandem/model/hf_config.hpp"
#include "test_env.hpp"

namespace tandem::testing {

using nlohmann::json;

std::vector<std::string> ByteLevelAlphabet() {
  std::vector<std::string> alphabet(256);
  uint32_t next = 256;
  for (uint32_t b = 0; b < 256; ++b) {
    const bool itself = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    const uint32_t cp = itself ? b : next++;
    if (cp < 0x80) {
      alphabet[b] = std::string(1, static_cast<char>(cp));
    } else {
      alphabet[b] = {static_cast<char>(0xC0 | (cp >> 6)), static_cast<char>(0x80 | (cp & 0x3F))};
    }
  }
  return alphabet;
}

json AddedTokenJson(int id, const std::string& content, bool special) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", special}};
}

std::string ByteLevelTokenizerJson(const std::vector<std::string>& special_tokens) {
  const std::vector<std::string> alphabet = ByteLevelAlphabet();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet[b]] = b;
  json added = json::array();
  for (size_t i = 0; i < special_tokens.size(); ++i) {
    added.push_back(AddedTokenJson(static_cast<int>(256 + i), special_tokens[i], true));
  }
  const json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const json tokenizer = {{"version", "1.0"},
                          {"added_tokens", added},
                          {"normalizer", nullptr},
                          {"pre_tokenizer", byte_level},
                          {"post_processor", nullptr},
                          {"decoder", byte_level},
                          {"model",
                           {{"type", "BPE"},
                            {"dropout", nullptr},
                            {"unk_token", nullptr},
                            {"fuse_unk", false},
                            {"byte_fallback", false},
                            {"vocab", vocab},
                            {"merges", json::array()}}}};
  return tokenizer.dump();
}

void WriteChatModelDir(const std::filesystem::path& dir, const ChatModelFiles& files) {
  std::filesystem::create_directories(dir);
  ModelConfig shape;
  shape.dim = 16;
  shape.hidden_dim = 32;
  shape.n_layers = 2;
  shape.n_heads = 2;
  shape.n_kv_heads = 2;
  shape.vocab_size = static_cast<int>(256 + files.special_tokens.size());
  shape.seq_len = 64;
  shape.rope_layout = RopeLayout::kHalves;
  const json config = {
      {"chat_template", files.chat_template}, {"bos_token", files.bos_token}, {"eos_token", files.eos_token}};
  WriteBytes(dir / "config.json", WriteHfConfigJson(shape, 0, 0));
  WriteBytes(dir / "tokenizer.json", ByteLevelTokenizerJson(files.special_tokens));
  WriteBytes(dir / "tokenizer_config.json", config.dump(2));
}

}  // namespace tandem::testing
