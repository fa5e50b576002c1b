// Python's str operations on UTF-8 text, by code point as Python counts them: what string methods and
// filters of the Jinja interpreter need (strip, split, splitlines, case mapping, indexing).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::jinja {

// The code points of `text` (a byte that is not valid UTF-8 counts as one, kept as it is).
std::vector<std::string_view> CodePoints(std::string_view text);

// str.isspace() of one code point's UTF-8.
bool PyIsSpace(std::string_view code_point);

// str.strip/lstrip/rstrip: `chars` nullopt strips whitespace, else any of its code points.
std::string PyStrip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right);

// str.split(sep, maxsplit): nullopt splits on runs of whitespace; maxsplit < 0 is no limit.
std::vector<std::string> PySplit(std::string_view text, const std::optional<std::string>& separator,
                                 int64_t max_split);

// str.splitlines() (without keepends): \n, \r\n, \r, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029.
std::vector<std::string> PySplitLines(std::string_view text);

// str.upper(), str.lower(), str.capitalize(), str.title() (full case mapping, libunistring).
std::string PyUpper(std::string_view text);
std::string PyLower(std::string_view text);
std::string PyCapitalize(std::string_view text);
std::string PyTitle(std::string_view text);

// str.replace(old, new, count): count < 0 replaces all.
std::string PyReplace(std::string_view text, std::string_view old_text, std::string_view new_text,
                      int64_t count);

}  // namespace tandem::jinja
