#include "added_tokens.hpp"

#include <algorithm>
#include <utility>

#include "unicode.hpp"

namespace tandem {
namespace {

// The length of the whitespace that ends / starts `text` (Unicode White_Space, whole code points).
size_t TrailingWhitespace(std::string_view text) {
  size_t end = text.size();
  while (end > 0) {
    size_t begin = end - 1;
    while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80 && end - begin < 4) --begin;
    const size_t length = unicode::ValidSequenceLength(text, begin);
    if (length != end - begin || !unicode::IsWhitespace(unicode::DecodeSequence(text, begin, length))) break;
    end = begin;
  }
  return text.size() - end;
}

size_t LeadingWhitespace(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    const size_t length = unicode::ValidSequenceLength(text, i);
    if (length == 0 || !unicode::IsWhitespace(unicode::DecodeSequence(text, i, length))) break;
    i += length;
  }
  return i;
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedTokenSpec> tokens) {
  std::erase_if(tokens, [](const AddedTokenSpec& token) { return token.content.empty(); });
  // Longest first; among equal contents the first listed wins (stable).
  std::stable_sort(tokens.begin(), tokens.end(), [](const AddedTokenSpec& a, const AddedTokenSpec& b) {
    return a.content.size() > b.content.size();
  });
  tokens_ = std::move(tokens);
  for (size_t i = 0; i < tokens_.size(); ++i) {
    by_first_byte_[static_cast<unsigned char>(tokens_[i].content[0])].push_back(static_cast<uint32_t>(i));
  }
}

std::vector<AddedTokenMatcher::Segment> AddedTokenMatcher::Split(std::string_view text) const {
  std::vector<Segment> segments;
  size_t text_start = 0;  // start of the text not yet emitted
  size_t i = 0;
  while (i < text.size()) {
    const AddedTokenSpec* match = nullptr;
    for (uint32_t index : by_first_byte_[static_cast<unsigned char>(text[i])]) {
      const AddedTokenSpec& token = tokens_[index];
      if (text.substr(i).starts_with(token.content)) {
        match = &token;
        break;
      }
    }
    if (match == nullptr) {
      ++i;
      continue;
    }
    size_t before_end = i;
    if (match->lstrip) before_end -= TrailingWhitespace(text.substr(text_start, i - text_start));
    if (before_end > text_start) {
      segments.push_back({.text = text.substr(text_start, before_end - text_start), .offset = text_start});
    }
    segments.push_back({.text = text.substr(i, match->content.size()), .id = match->id, .offset = i});
    i += match->content.size();
    if (match->rstrip) i += LeadingWhitespace(text.substr(i));
    text_start = i;
  }
  if (text_start < text.size()) {
    segments.push_back({.text = text.substr(text_start), .offset = text_start});
  }
  return segments;
}

}  // namespace tandem
