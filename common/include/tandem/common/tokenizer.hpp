// The llama2.c tokenizer: byte-pair merges by score over a vocabulary of UTF-8 pieces, with byte fallback.
//
// File format (tokenizer.bin / tok512.bin): int32 max_token_length, then for each of the model's
// vocab_size tokens: float32 score, int32 length, `length` bytes. The file does not store the vocabulary
// size: it is the model's, and the file must hold exactly that many tokens.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tandem/common/status.hpp"

namespace tandem {

// Immutable after Load; thread-safe.
class Tokenizer {
 public:
  static constexpr int kUnknown = 0;
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Reads `path`, expecting exactly `vocab_size` tokens. A truncated file, a negative or oversized length,
  // a token longer than max_token_length, or trailing bytes are refused with an error naming the file.
  static Result<Tokenizer> Load(const std::string& path, int32_t vocab_size);

  // Encodes as llama2.c's encode(): optional BOS, a leading " " piece when `text` is not empty, one piece
  // per UTF-8 code point (byte fallback to ids 3..258 for unknown ones), then greedy merges of the
  // adjacent pair with the best score, optional EOS.
  std::vector<int> Encode(std::string_view text, bool add_bos, bool add_eos) const;

  // The text of `token` following `previous` (as llama2.c's decode()): the leading space is dropped after
  // BOS, and "<0xAB>" pieces become the raw byte.
  std::string_view Decode(int previous, int token) const;

  // Decodes `ids` (which start with BOS) as llama2.c prints them: pieces concatenated, skipping raw single
  // bytes that are neither printable nor whitespace.
  std::string DecodeAll(const std::vector<int>& ids) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int token) const { return pieces_.at(token); }

 private:
  Tokenizer() = default;

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;  // piece -> token id
  int32_t max_token_length_ = 0;
  std::string byte_pieces_;  // 256 one-byte strings, backing Decode's views of raw bytes
};

}  // namespace tandem
