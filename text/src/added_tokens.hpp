// Splitting text on added tokens ("<|eot_id|>", "<s>"), as Hugging Face's AddedVocabulary does before
// the normalizer and the model see the text (internal to tandem_common).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct AddedTokenSpec {
  std::string content;  // the exact text that becomes the token; empty ones never match
  int id = -1;
  bool lstrip = false;  // the match also takes the whitespace on its left
  bool rstrip = false;  // ... and on its right
};

// Immutable after construction; Split is thread-safe.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  explicit AddedTokenMatcher(std::vector<AddedTokenSpec> tokens);

  struct Segment {
    std::string_view text;  // a view into Split's argument
    int id = -1;            // >= 0: this segment is that added token; -1: text to encode
    size_t offset = 0;      // where `text` starts in Split's argument
  };

  // `text` cut into text segments (never empty) and added tokens, in order. At each position the longest
  // token that matches there wins (leftmost-longest, as Hugging Face's Aho-Corasick matcher).
  std::vector<Segment> Split(std::string_view text) const;

  bool empty() const { return tokens_.empty(); }

 private:
  std::vector<AddedTokenSpec> tokens_;                    // longest first
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices into tokens_, longest first
};

}  // namespace tandem
