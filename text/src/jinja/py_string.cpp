#include "jinja/py_string.hpp"

#include <unicase.h>
#include <unictype.h>

#include <cstdlib>
#include <memory>

#include "jinja/value.hpp"
#include "unicode.hpp"

namespace tandem::jinja {
namespace {

uint32_t CodePointOf(std::string_view code_point) {
  const size_t length = unicode::ValidSequenceLength(code_point, 0);
  return length == 0 ? 0xFFFFFFFFu : unicode::DecodeSequence(code_point, 0, length);
}

bool IsLineBreak(uint32_t cp) {
  return cp == '\n' || cp == '\r' || cp == 0x0B || cp == 0x0C || (cp >= 0x1C && cp <= 0x1E) || cp == 0x85 ||
         cp == 0x2028 || cp == 0x2029;
}

using CaseMapping = uint8_t* (*)(const uint8_t*, size_t, const char*, uninorm_t, uint8_t*, size_t*);

// libunistring's full case mapping of valid UTF-8 runs; raw bytes are kept as they are.
std::string MapCase(std::string_view text, CaseMapping mapping) {
  std::string out;
  size_t run_start = 0;
  const auto flush = [&](size_t end) {
    if (end == run_start) return;
    size_t length = 0;
    std::unique_ptr<uint8_t, decltype(&std::free)> mapped(
        mapping(reinterpret_cast<const uint8_t*>(text.data() + run_start), end - run_start, nullptr, nullptr,
                nullptr, &length),
        &std::free);
    if (mapped == nullptr) {
      out.append(text.substr(run_start, end - run_start));
    } else {
      out.append(reinterpret_cast<const char*>(mapped.get()), length);
    }
  };
  for (size_t i = 0; i < text.size();) {
    const size_t length = unicode::ValidSequenceLength(text, i);
    if (length == 0) {
      flush(i);
      out.push_back(text[i]);
      run_start = ++i;
    } else {
      i += length;
    }
  }
  flush(text.size());
  return out;
}

bool IsCased(std::string_view code_point) {
  const uint32_t cp = CodePointOf(code_point);
  return cp != 0xFFFFFFFFu &&
         uc_is_general_category(
             cp, uc_general_category_or(uc_general_category_or(UC_UPPERCASE_LETTER, UC_LOWERCASE_LETTER),
                                        UC_TITLECASE_LETTER));
}

}  // namespace

std::vector<std::string_view> CodePoints(std::string_view text) {
  std::vector<std::string_view> points;
  for (size_t i = 0; i < text.size();) {
    const size_t length = unicode::SymbolLength(text, i);
    points.push_back(text.substr(i, length));
    i += length;
  }
  return points;
}

bool PyIsSpace(std::string_view code_point) {
  const uint32_t cp = CodePointOf(code_point);
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
         cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

std::string PyStrip(std::string_view text, const std::optional<std::string>& chars, bool left, bool right) {
  const std::vector<std::string_view> points = CodePoints(text);
  const std::vector<std::string_view> strip_set =
      chars ? CodePoints(*chars) : std::vector<std::string_view>{};
  const auto strips = [&](std::string_view point) {
    if (!chars) return PyIsSpace(point);
    for (std::string_view candidate : strip_set) {
      if (candidate == point) return true;
    }
    return false;
  };
  size_t begin = 0, end = points.size();
  while (left && begin < end && strips(points[begin])) ++begin;
  while (right && end > begin && strips(points[end - 1])) --end;
  std::string out;
  for (size_t i = begin; i < end; ++i) out.append(points[i]);
  return out;
}

std::vector<std::string> PySplit(std::string_view text, const std::optional<std::string>& separator,
                                 int64_t max_split) {
  std::vector<std::string> parts;
  if (separator) {
    size_t start = 0;
    while (max_split < 0 || static_cast<int64_t>(parts.size()) < max_split) {
      const size_t found = text.find(*separator, start);
      if (found == std::string_view::npos) break;
      parts.emplace_back(text.substr(start, found - start));
      start = found + separator->size();
    }
    parts.emplace_back(text.substr(start));
    return parts;
  }
  const std::vector<std::string_view> points = CodePoints(text);
  size_t i = 0;
  while (true) {
    while (i < points.size() && PyIsSpace(points[i])) ++i;
    if (i == points.size()) break;
    std::string part;
    if (max_split >= 0 && static_cast<int64_t>(parts.size()) == max_split) {
      // The rest, trailing whitespace stripped.
      size_t end = points.size();
      while (end > i && PyIsSpace(points[end - 1])) --end;
      for (; i < end; ++i) part.append(points[i]);
      parts.push_back(std::move(part));
      break;
    }
    while (i < points.size() && !PyIsSpace(points[i])) part.append(points[i++]);
    parts.push_back(std::move(part));
  }
  return parts;
}

std::vector<std::string> PySplitLines(std::string_view text) {
  std::vector<std::string> lines;
  const std::vector<std::string_view> points = CodePoints(text);
  std::string line;
  for (size_t i = 0; i < points.size(); ++i) {
    const uint32_t cp = CodePointOf(points[i]);
    if (!IsLineBreak(cp)) {
      line.append(points[i]);
      continue;
    }
    if (cp == '\r' && i + 1 < points.size() && points[i + 1] == "\n") ++i;
    lines.push_back(std::move(line));
    line.clear();
  }
  if (!line.empty()) lines.push_back(std::move(line));
  return lines;
}

std::string PyUpper(std::string_view text) {
  return MapCase(text, &u8_toupper);
}

std::string PyLower(std::string_view text) {
  return MapCase(text, &u8_tolower);
}

std::string PyCapitalize(std::string_view text) {
  const std::vector<std::string_view> points = CodePoints(text);
  if (points.empty()) return "";
  return MapCase(points[0], &u8_totitle) + PyLower(text.substr(points[0].size()));
}

std::string PyTitle(std::string_view text) {
  std::string out;
  bool previous_cased = false;
  for (std::string_view point : CodePoints(text)) {
    out += previous_cased ? MapCase(point, &u8_tolower) : MapCase(point, &u8_totitle);
    previous_cased = IsCased(point);
  }
  return out;
}

std::string PyReplace(std::string_view text, std::string_view old_text, std::string_view new_text,
                      int64_t count) {
  std::string out;
  if (old_text.empty()) {
    // Python inserts `new` before every code point and at the end.
    int64_t done = 0;
    for (std::string_view point : CodePoints(text)) {
      if (count < 0 || done < count) {
        out.append(new_text);
        CheckValueSize(out.size());
        ++done;
      }
      out.append(point);
    }
    if (count < 0 || done < count) out.append(new_text);
    return out;
  }
  size_t start = 0;
  for (int64_t done = 0; count < 0 || done < count; ++done) {
    const size_t found = text.find(old_text, start);
    if (found == std::string_view::npos) break;
    out.append(text.substr(start, found - start)).append(new_text);
    CheckValueSize(out.size());
    start = found + old_text.size();
  }
  out.append(text.substr(start));
  return out;
}

}  // namespace tandem::jinja
