#include "regex.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "unicode.hpp"

namespace tandem {

Result<Regex> Regex::Compile(std::string_view pattern, bool literal) {
  // PCRE2_LITERAL refuses PCRE2_UCP, which only changes the meaning of escapes anyway.
  const uint32_t options =
      PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : static_cast<uint32_t>(PCRE2_UCP));
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                                   &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return InvalidArgument("regex error at offset " + std::to_string(offset) + ": " +
                           reinterpret_cast<const char*>(message));
  }
  // JIT is only faster; when it is not available the interpreter gives the same matches.
  (void)pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  return Regex(std::shared_ptr<pcre2_real_code_8>(code, pcre2_code_free));
}

bool Regex::FindAll(std::string_view subject, std::vector<std::pair<size_t, size_t>>& matches) const {
  std::unique_ptr<pcre2_match_data, decltype(&pcre2_match_data_free)> data(
      pcre2_match_data_create_from_pattern(code_.get(), nullptr), pcre2_match_data_free);
  if (data == nullptr) return false;
  const auto* bytes = reinterpret_cast<PCRE2_SPTR>(subject.data());
  size_t start = 0;
  bool have_last = false;
  size_t last_end = 0;
  while (start <= subject.size()) {
    const int rc = pcre2_match(code_.get(), bytes, subject.size(), start, 0, data.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return true;
    if (rc < 0) return false;
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data.get());
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (begin > end || end > subject.size()) return false;  // \K tricks; not in any real pattern
    if (begin == end && have_last && end == last_end) {
      // Oniguruma's find_iter: no empty match right after the previous one; step over one character.
      if (start >= subject.size()) return true;
      start += unicode::SymbolLength(subject, start);
      continue;
    }
    matches.emplace_back(begin, end);
    have_last = true;
    last_end = end;
    start = end;
  }
  return true;
}

}  // namespace tandem
