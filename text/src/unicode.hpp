// UTF-8 helpers and Unicode NFC for the tokenizers (internal to tandem_common).
//
// Text from callers is bytes that are usually, not always, UTF-8. Everything here accepts any bytes:
// a byte that does not start a valid UTF-8 sequence (overlong forms, surrogates, code points past
// U+10FFFF and truncated sequences are invalid, as in PCRE2's UTF check) is a "raw byte" of length 1.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem::unicode {

// The length (1..4) of the valid UTF-8 sequence that starts at text[i], or 0 when text[i] does not start
// one. `i` must be < text.size().
size_t ValidSequenceLength(std::string_view text, size_t i);

// The length of the next symbol at text[i]: the valid sequence's length, or 1 for a raw byte.
inline size_t SymbolLength(std::string_view text, size_t i) {
  const size_t length = ValidSequenceLength(text, i);
  return length == 0 ? 1 : length;
}

// The code point of the valid `length`-byte sequence at text[i] (as ValidSequenceLength returned).
uint32_t DecodeSequence(std::string_view text, size_t i, size_t length);

// Appends the UTF-8 form of code point `cp` (< 0x110000).
void AppendUtf8(uint32_t cp, std::string& out);

// Unicode White_Space (Rust's char::is_whitespace, which Hugging Face's lstrip/rstrip use).
bool IsWhitespace(uint32_t cp);

// Canonical composition (NFC) of `text`, as Hugging Face's NFC normalizer does it (libunistring's
// u8_normalize). Raw bytes are kept as they are and block composition across them. ASCII-only text is
// returned unchanged without work.
std::string Nfc(std::string_view text);

// "<0xAB>" (either case of hex digits, exactly six characters) -> the byte 0xAB; -1 otherwise.
int ParseBytePiece(std::string_view piece);

}  // namespace tandem::unicode
