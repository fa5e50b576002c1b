// The llama2.c tokenizer: byte-pair merges by score over a vocabulary of UTF-8 pieces, with byte fallback
// (the format is described in tokenizer.hpp).
#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "tokenizer_model.hpp"
#include "unicode.hpp"

namespace tandem {
namespace {

// Anything larger is not a llama2.c tokenizer; refusing it early keeps a corrupt header from driving
// allocations.
constexpr int32_t kMaxTokenLengthLimit = 1 << 20;

// A little-endian (host order, as llama2.c writes it) cursor that never reads past the end.
class Reader {
 public:
  explicit Reader(std::string_view bytes) : bytes_(bytes) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return bytes_.size() - offset_; }

  template <typename T>
  bool Read(T& value) {
    if (remaining() < sizeof(T)) return false;
    std::memcpy(&value, bytes_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return true;
  }

  bool ReadString(size_t length, std::string& out) {
    if (remaining() < length) return false;
    out.assign(bytes_.data() + offset_, length);
    offset_ += length;
    return true;
  }

 private:
  std::string_view bytes_;
  size_t offset_ = 0;
};

// isprint/isspace in the "C" locale, spelled out so the output does not depend on the process locale.
bool IsPrintOrSpace(unsigned char c) {
  return (c >= 0x20 && c <= 0x7E) || (c >= 0x09 && c <= 0x0D);
}

bool IsContinuationByte(char c) {
  return (static_cast<unsigned char>(c) & 0xC0) == 0x80;
}

// Immutable after LoadLlama2cTokenizer.
class Llama2cTokenizer final : public TokenizerModel {
 public:
  TokenizerKind kind() const override { return TokenizerKind::kLlama2c; }
  std::vector<int> Encode(std::string_view text, bool add_bos, bool add_eos) const override;
  std::string_view Decode(int previous, int token) const override;
  std::string DecodeAll(const std::vector<int>& ids) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int token) const override { return pieces_.at(token); }
  int TokenId(std::string_view content) const override {
    const auto it = ids_.find(std::string(content));
    return it == ids_.end() ? -1 : it->second;
  }
  std::optional<float> score(int token) const override { return scores_.at(token); }

 private:
  friend Result<std::unique_ptr<TokenizerModel>> tandem::LoadLlama2cTokenizer(const std::string& path,
                                                                              std::string_view bytes,
                                                                              int32_t vocab_size);

  std::vector<std::string> pieces_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int> ids_;  // piece -> token id
  int32_t max_token_length_ = 0;
  std::string byte_pieces_;  // 256 one-byte strings, backing Decode's views of raw bytes
};

}  // namespace

Result<std::unique_ptr<TokenizerModel>> LoadLlama2cTokenizer(const std::string& path, std::string_view bytes,
                                                             int32_t vocab_size) {
  if (vocab_size <= 0) {
    return InvalidArgument(path + ": vocab_size " + std::to_string(vocab_size) + " must be positive");
  }
  Reader reader(bytes);

  auto model = std::make_unique<Llama2cTokenizer>();
  Llama2cTokenizer& tokenizer = *model;
  if (!reader.Read(tokenizer.max_token_length_)) {
    return InvalidArgument(path + ": truncated at byte " + std::to_string(bytes.size()) +
                           " (max_token_length header needs 4 bytes)");
  }
  const int32_t max_length = tokenizer.max_token_length_;
  if (max_length <= 0 || max_length > kMaxTokenLengthLimit) {
    return InvalidArgument(path + ": max_token_length " + std::to_string(max_length) +
                           " is out of range (1.." + std::to_string(kMaxTokenLengthLimit) + ")");
  }

  // Every token takes at least 8 bytes, so a vocab_size too large for the file cannot force a big reserve.
  const size_t reserve = std::min(static_cast<size_t>(vocab_size), reader.remaining() / 8);
  tokenizer.pieces_.reserve(reserve);
  tokenizer.scores_.reserve(reserve);
  tokenizer.ids_.reserve(reserve);

  const std::string of_total = " of " + std::to_string(vocab_size) + ")";
  for (int32_t i = 0; i < vocab_size; ++i) {
    float score = 0.0f;
    int32_t length = 0;
    if (!reader.Read(score) || !reader.Read(length)) {
      return InvalidArgument(path + ": truncated at byte " + std::to_string(bytes.size()) + " (token " +
                             std::to_string(i) + of_total);
    }
    if (length < 0) {
      return InvalidArgument(path + ": token " + std::to_string(i) + " length " + std::to_string(length) +
                             " is negative");
    }
    if (length > max_length) {
      return InvalidArgument(path + ": token " + std::to_string(i) + " length " + std::to_string(length) +
                             " exceeds max_token_length " + std::to_string(max_length));
    }
    std::string piece;
    if (!reader.ReadString(static_cast<size_t>(length), piece)) {
      return InvalidArgument(path + ": truncated at byte " + std::to_string(bytes.size()) + " (token " +
                             std::to_string(i) + of_total);
    }
    // On duplicate pieces the lowest id wins (llama2.c's bsearch picks an unspecified one).
    tokenizer.ids_.emplace(piece, i);
    tokenizer.pieces_.push_back(std::move(piece));
    tokenizer.scores_.push_back(score);
  }
  if (reader.remaining() != 0) {
    return InvalidArgument(path + ": " + std::to_string(reader.remaining()) + " trailing bytes after " +
                           std::to_string(vocab_size) + " tokens (at byte " +
                           std::to_string(reader.offset()) + "); does vocab_size match this tokenizer?");
  }

  tokenizer.byte_pieces_.resize(256);
  for (int b = 0; b < 256; ++b) tokenizer.byte_pieces_[b] = static_cast<char>(b);
  // llama2.c's fixed ids; its run.c ends a story when the model emits BOS.
  model->set_specials({.bos_token = Tokenizer::kBos,
                       .add_bos = true,
                       .eos = Tokenizer::kEos,
                       .stops = {Tokenizer::kBos, Tokenizer::kEos}});
  return std::unique_ptr<TokenizerModel>(std::move(model));
}

std::vector<int> Llama2cTokenizer::Encode(std::string_view text, bool add_bos, bool add_eos) const {
  const int vocab = vocab_size();
  std::vector<int> tokens;
  tokens.reserve(text.size() + 3);
  if (add_bos && specials().bos() >= 0) tokens.push_back(specials().bos());

  // llama2.c's add_dummy_prefix. (A vocabulary without " " would make llama2.c push -1; skip instead.)
  if (!text.empty()) {
    if (auto it = ids_.find(" "); it != ids_.end()) tokens.push_back(it->second);
  }

  // Ids 3..258 are the raw bytes <0x00>..<0xFF>; a vocabulary too small to have them gets <unk>.
  auto push_bytes = [&](std::string_view bytes) {
    for (char c : bytes) {
      const int id = static_cast<unsigned char>(c) + 3;
      tokens.push_back(id < vocab ? id : Tokenizer::kUnknown);
    }
  };

  // Walk code points as llama2.c does: a byte that is not a continuation starts a new buffer, and the
  // buffer is flushed when the next byte is not a continuation or it already holds 4 bytes.
  std::string buffer;  // reused for every lookup below to avoid allocations
  size_t start = 0;
  size_t length = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if (!IsContinuationByte(text[i])) length = 0;
    if (length == 0) start = i;
    ++length;
    if (i + 1 < text.size() && IsContinuationByte(text[i + 1]) && length < 4) continue;
    const std::string_view code_point = text.substr(start, length);
    buffer.assign(code_point);
    if (auto it = ids_.find(buffer); it != ids_.end()) {
      tokens.push_back(it->second);
    } else {
      push_bytes(code_point);
    }
    length = 0;
  }

  // Merge the adjacent pair whose concatenation has the highest score (the leftmost on ties) until none.
  // The bounds check only matters for vocabularies too small to hold BOS.
  while (true) {
    float best_score = -1e10f;
    int best_id = -1;
    size_t best_index = 0;
    for (size_t i = 0; i + 1 < tokens.size(); ++i) {
      if (tokens[i] >= vocab || tokens[i + 1] >= vocab) continue;
      buffer.assign(pieces_[tokens[i]]);
      buffer.append(pieces_[tokens[i + 1]]);
      auto it = ids_.find(buffer);
      if (it != ids_.end() && scores_[it->second] > best_score) {
        best_score = scores_[it->second];
        best_id = it->second;
        best_index = i;
      }
    }
    if (best_id < 0) break;
    tokens[best_index] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_index) + 1);
  }

  if (add_eos && specials().eos >= 0) tokens.push_back(specials().eos);
  return tokens;
}

std::string_view Llama2cTokenizer::Decode(int previous, int token) const {
  if (token < 0 || token >= vocab_size()) return {};
  std::string_view piece = pieces_[token];
  if (previous == specials().bos_token && previous >= 0 && !piece.empty() && piece.front() == ' ') {
    piece.remove_prefix(1);
  }
  if (const int byte = unicode::ParseBytePiece(piece); byte >= 0) {
    return std::string_view(byte_pieces_).substr(static_cast<size_t>(byte), 1);
  }
  return piece;
}

std::string Llama2cTokenizer::DecodeAll(const std::vector<int>& ids) const {
  std::string text;
  for (size_t i = 1; i < ids.size(); ++i) {
    const std::string_view piece = Decode(ids[i - 1], ids[i]);
    // llama2.c's safe_printf: nothing for empty pieces or lone unprintable bytes.
    if (piece.empty()) continue;
    if (piece.size() == 1 && !IsPrintOrSpace(static_cast<unsigned char>(piece[0]))) continue;
    text.append(piece);
  }
  return text;
}

}  // namespace tandem
