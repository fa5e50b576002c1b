// A compiled PCRE2 pattern for the tokenizer.json pre-tokenizers (internal to tandem_common; PCRE2 stays
// out of public headers).
//
// Patterns are compiled with PCRE2_UTF | PCRE2_UCP, so \p{L}, \p{N}, \s and (?i:...) mean what they mean in
// Oniguruma (Hugging Face's engine) for these patterns, and with PCRE2_MATCH_INVALID_UTF: a subject may hold
// bytes that are not valid UTF-8, and no match ever includes one. Immutable after Compile; FindAll may be
// called from any number of threads at once. Copies share the compiled code.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tandem/base/status.hpp"

struct pcre2_real_code_8;

namespace tandem {

class Regex {
 public:
  // `literal`: match `pattern` as a plain string. Errors carry PCRE2's message and the offset.
  static Result<Regex> Compile(std::string_view pattern, bool literal = false);

  // Appends the [begin, end) of each match in `subject`, left to right, as Oniguruma's find_iter yields
  // them (an empty match right where the previous match ended is skipped by one character). Returns false
  // when PCRE2 stopped early (its match or heap limit, on a pathological pattern); `matches` then holds
  // the matches found before that.
  bool FindAll(std::string_view subject, std::vector<std::pair<size_t, size_t>>& matches) const;

 private:
  explicit Regex(std::shared_ptr<pcre2_real_code_8> code) : code_(std::move(code)) {}

  std::shared_ptr<pcre2_real_code_8> code_;
};

}  // namespace tandem
