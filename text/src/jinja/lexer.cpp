#include "jinja/lexer.hpp"

#include <array>
#include <cstdlib>
#include <string_view>

#include "jinja/py_string.hpp"
#include "unicode.hpp"

namespace tandem::jinja {
namespace {

constexpr std::array<std::string_view, 26> kOperators = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/",
                                                         "*",  "%",  "~",  "[",  "]",  "(",  ")", "{", "}",
                                                         ">",  "<",  "=",  ".",  ":",  "|",  ",", ";"};

Status SyntaxError(const std::string& message, int line) {
  return InvalidArgument(message + " (line " + std::to_string(line) + ")");
}

bool IsDigit(char c) {
  return c >= '0' && c <= '9';
}
bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

// The length of the Python whitespace (\s) at text[pos...].
size_t WhitespaceLength(std::string_view text, size_t pos) {
  size_t end = pos;
  while (end < text.size()) {
    const size_t length = unicode::SymbolLength(text, end);
    if (!PyIsSpace(text.substr(end, length))) break;
    end += length;
  }
  return end - pos;
}

// Python's rstrip() of template text.
std::string_view RightStripped(std::string_view text) {
  std::vector<std::string_view> points = CodePoints(text);
  size_t end = text.size();
  while (!points.empty() && PyIsSpace(points.back())) {
    end -= points.back().size();
    points.pop_back();
  }
  return text.substr(0, end);
}

// Source lines joined with \n (\r\n and \r are line breaks too); one trailing newline dropped
// (keep_trailing_newline=False).
std::string NormalizeSource(const std::string& source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Python's unicode-escape decoding of a string literal's body.
Result<std::string> Unescape(std::string_view body, int line) {
  std::string out;
  for (size_t i = 0; i < body.size(); ++i) {
    if (body[i] != '\\' || i + 1 == body.size()) {
      out.push_back(body[i]);
      continue;
    }
    const char c = body[++i];
    switch (c) {
      case '\n':
        break;
      case '\\':
        out.push_back('\\');
        break;
      case '\'':
        out.push_back('\'');
        break;
      case '"':
        out.push_back('"');
        break;
      case 'a':
        out.push_back('\a');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'v':
        out.push_back('\v');
        break;
      case 'x':
      case 'u':
      case 'U': {
        const size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t cp = 0;
        for (size_t d = 0; d < digits; ++d) {
          const int value = i + 1 + d < body.size() ? HexValue(body[i + 1 + d]) : -1;
          if (value < 0) return SyntaxError("truncated \\" + std::string(1, c) + " escape in a string", line);
          cp = cp * 16 + static_cast<uint32_t>(value);
        }
        if (cp >= 0x110000) return SyntaxError("illegal Unicode character in a string", line);
        unicode::AppendUtf8(cp, out);
        i += digits;
        break;
      }
      case 'N':
        return SyntaxError("\\N{...} escapes are not supported", line);
      default:
        if (c >= '0' && c <= '7') {
          uint32_t cp = static_cast<uint32_t>(c - '0');
          for (int d = 0; d < 2 && i + 1 < body.size() && body[i + 1] >= '0' && body[i + 1] <= '7'; ++d) {
            cp = cp * 8 + static_cast<uint32_t>(body[++i] - '0');
          }
          unicode::AppendUtf8(cp, out);
        } else {
          out.push_back('\\');  // an unknown escape stays as written
          out.push_back(c);
        }
    }
  }
  return out;
}

class Lexer {
 public:
  explicit Lexer(const std::string& source) : source_(NormalizeSource(source)), text_(source_) {}

  Result<std::vector<Token>> Run() {
    while (pos_ < text_.size()) {
      TANDEM_RETURN_IF_ERROR(Root());
    }
    tokens_.push_back(Token{.kind = Token::Kind::kEnd, .line = Line(pos_)});
    return std::move(tokens_);
  }

 private:
  int Line(size_t pos) {
    while (line_pos_ < pos && line_pos_ < text_.size()) {
      if (text_[line_pos_++] == '\n') ++line_;
    }
    return line_;
  }

  void Push(Token::Kind kind, std::string text, size_t pos) {
    tokens_.push_back(Token{.kind = kind, .text = std::move(text), .line = Line(pos)});
  }

  // Text up to the next tag, then the tag.
  Status Root() {
    size_t tag = text_.find('{', pos_);
    while (tag != std::string_view::npos && tag + 1 < text_.size() && text_[tag + 1] != '{' &&
           text_[tag + 1] != '%' && text_[tag + 1] != '#') {
      tag = text_.find('{', tag + 1);
    }
    if (tag == std::string_view::npos || tag + 1 >= text_.size()) {
      Push(Token::Kind::kData, std::string(text_.substr(pos_)), pos_);
      pos_ = text_.size();
      return Status::Ok();
    }
    const char type = text_[tag + 1];
    const char sign = tag + 2 < text_.size() ? text_[tag + 2] : '\0';
    std::string_view data = text_.substr(pos_, tag - pos_);
    if (sign == '-') {
      data = RightStripped(data);
    } else if (sign != '+' && type != '{') {  // lstrip_blocks
      const size_t line_start = data.rfind('\n') == std::string_view::npos ? 0 : data.rfind('\n') + 1;
      const std::string_view tail = data.substr(line_start);
      if ((line_start > 0 || line_starting_) && !tail.empty() && WhitespaceLength(tail, 0) == tail.size()) {
        data = data.substr(0, line_start);
      }
    }
    if (!data.empty()) Push(Token::Kind::kData, std::string(data), pos_);
    pos_ = tag + 2 + (sign == '-' || sign == '+' ? 1 : 0);
    if (type == '#') return Comment(tag);
    const bool block = type == '%';
    Push(block ? Token::Kind::kBlockBegin : Token::Kind::kVariableBegin, "", tag);
    return Tag(block, tag);
  }

  Status Comment(size_t begin) {
    for (size_t p = pos_; p + 1 < text_.size(); ++p) {
      const std::string_view rest = text_.substr(p);
      if (rest.starts_with("+#}")) {
        pos_ = p + 3;
      } else if (rest.starts_with("-#}")) {
        pos_ = p + 3 + WhitespaceLength(text_, p + 3);
      } else if (rest.starts_with("#}")) {
        pos_ = p + 2 + (p + 2 < text_.size() && text_[p + 2] == '\n' ? 1 : 0);
      } else {
        continue;
      }
      line_starting_ = text_[pos_ - 1] == '\n';
      return Status::Ok();
    }
    return SyntaxError("missing end of comment tag", Line(begin));
  }

  // The end of the tag at pos_, when it is there: its length (with the whitespace it strips).
  size_t EndLength(bool block) const {
    const std::string_view rest = text_.substr(pos_);
    const std::string_view end = block ? "%}" : "}}";
    if (block && rest.starts_with("+%}")) return 3;
    if (rest.size() > 2 && rest[0] == '-' && rest.substr(1).starts_with(end)) {
      return 3 + WhitespaceLength(text_, pos_ + 3);
    }
    if (rest.starts_with(end)) return 2 + (block && rest.size() > 2 && rest[2] == '\n' ? 1 : 0);
    return 0;
  }

  Status Tag(bool block, size_t begin) {
    std::vector<char> brackets;
    while (true) {
      pos_ += WhitespaceLength(text_, pos_);
      if (pos_ >= text_.size()) return SyntaxError("unexpected end of template inside a tag", Line(begin));
      if (brackets.empty()) {
        if (const size_t length = EndLength(block); length > 0) {
          Push(block ? Token::Kind::kBlockEnd : Token::Kind::kVariableEnd, "", pos_);
          pos_ += length;
          line_starting_ = text_[pos_ - 1] == '\n';
          return Status::Ok();
        }
      }
      TANDEM_RETURN_IF_ERROR(Expression(brackets));
    }
  }

  Status Number() {
    size_t end = pos_;
    const auto digits = [&] {
      while (end < text_.size() && (IsDigit(text_[end]) || (text_[end] == '_' && end + 1 < text_.size() &&
                                                            IsDigit(text_[end + 1])))) {
        ++end;
      }
    };
    digits();
    bool is_float = false;
    if (end + 1 < text_.size() && text_[end] == '.' && IsDigit(text_[end + 1])) {
      is_float = true;
      ++end;
      digits();
    }
    if (end < text_.size() && (text_[end] == 'e' || text_[end] == 'E')) {
      size_t exponent = end + 1;
      if (exponent < text_.size() && (text_[exponent] == '+' || text_[exponent] == '-')) ++exponent;
      if (exponent < text_.size() && IsDigit(text_[exponent])) {
        is_float = true;
        end = exponent;
        digits();
      }
    }
    std::string literal;
    for (size_t i = pos_; i < end; ++i) {
      if (text_[i] != '_') literal.push_back(text_[i]);
    }
    Token token{
        .kind = is_float ? Token::Kind::kFloat : Token::Kind::kInteger, .text = literal, .line = Line(pos_)};
    if (is_float) {
      token.number = std::strtod(literal.c_str(), nullptr);
    } else {
      if (literal.size() > 1 && literal[0] == '0' && literal.find_first_not_of('0') != std::string::npos) {
        return SyntaxError("integer literals with leading zeros (or 0x/0o/0b) are not supported", token.line);
      }
      errno = 0;
      token.integer = std::strtoll(literal.c_str(), nullptr, 10);
      if (errno == ERANGE) return SyntaxError("integer literal out of range", token.line);
    }
    tokens_.push_back(std::move(token));
    pos_ = end;
    return Status::Ok();
  }

  Status String() {
    const char quote = text_[pos_];
    size_t end = pos_ + 1;
    while (end < text_.size() && text_[end] != quote) end += text_[end] == '\\' ? 2 : 1;
    if (end >= text_.size()) return SyntaxError("unterminated string", Line(pos_));
    TANDEM_ASSIGN_OR_RETURN(std::string value, Unescape(text_.substr(pos_ + 1, end - pos_ - 1), Line(pos_)));
    Push(Token::Kind::kString, std::move(value), pos_);
    pos_ = end + 1;
    return Status::Ok();
  }

  Status Expression(std::vector<char>& brackets) {
    const char c = text_[pos_];
    if (IsDigit(c)) return Number();
    if (IsNameStart(c)) {
      size_t end = pos_;
      while (end < text_.size() && (IsNameStart(text_[end]) || IsDigit(text_[end]))) ++end;
      Push(Token::Kind::kName, std::string(text_.substr(pos_, end - pos_)), pos_);
      pos_ = end;
      return Status::Ok();
    }
    if (c == '\'' || c == '"') return String();
    for (std::string_view op : kOperators) {
      if (!text_.substr(pos_).starts_with(op)) continue;
      if (op == "(" || op == "[" || op == "{") brackets.push_back(op == "(" ? ')' : op == "[" ? ']' : '}');
      if (op == ")" || op == "]" || op == "}") {
        if (brackets.empty() || brackets.back() != op[0]) {
          return SyntaxError("unexpected '" + std::string(op) + "'", Line(pos_));
        }
        brackets.pop_back();
      }
      Push(Token::Kind::kOperator, std::string(op), pos_);
      pos_ += op.size();
      return Status::Ok();
    }
    return SyntaxError("unexpected character '" + std::string(1, c) + "'", Line(pos_));
  }

  std::string source_;
  std::string_view text_;
  size_t pos_ = 0;
  bool line_starting_ = true;
  size_t line_pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

Result<std::vector<Token>> Tokenize(const std::string& source) {
  return Lexer(source).Run();
}

}  // namespace tandem::jinja
