// The Jinja lexer: template source to tokens, as jinja2 3.1's Lexer does it in Hugging Face's environment
// (trim_blocks, lstrip_blocks, `-`/`+` whitespace control, one trailing newline dropped, newlines
// normalized to \n). Comments are dropped here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem::jinja {

struct Token {
  enum class Kind {
    kData,           // template text
    kBlockBegin,     // {%
    kBlockEnd,       // %}
    kVariableBegin,  // {{
    kVariableEnd,    // }}
    kName,
    kString,    // text: the unescaped value
    kInteger,   // integer
    kFloat,     // number
    kOperator,  // text: "+", "//", "(", ...
    kEnd,       // end of the template
  };
  Kind kind = Kind::kEnd;
  std::string text;
  int64_t integer = 0;
  double number = 0;
  int line = 1;
};

// The tokens of `source`, ending with kEnd; an error with the line for an unterminated tag, comment or
// string, an unexpected character or unbalanced brackets.
Result<std::vector<Token>> Tokenize(const std::string& source);

}  // namespace tandem::jinja
