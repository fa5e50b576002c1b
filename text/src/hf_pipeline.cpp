#include "hf_pipeline.hpp"

#include <nlohmann/json.hpp>

#include <unordered_map>

#include "unicode.hpp"

namespace tandem::hf {
namespace {

using nlohmann::json;

// GPT-2's pre-tokenizer regex: ByteLevel's with use_regex.
constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct Range {
  size_t begin;
  size_t end;
  bool is_match;
};

// Cuts `length` bytes around `matches` as the tokenizers library's NormalizedString::split does for each
// SplitDelimiterBehavior, dropping empty pieces.
template <typename Behavior>
std::vector<Range> SplitRanges(size_t length, const std::vector<std::pair<size_t, size_t>>& matches,
                               Behavior behavior) {
  std::vector<Range> splits;
  size_t previous = 0;
  for (const auto& [begin, end] : matches) {
    if (previous != begin) splits.push_back({previous, begin, false});
    splits.push_back({begin, end, true});
    previous = end;
  }
  if (previous != length) splits.push_back({previous, length, false});

  std::vector<Range> out;
  bool previous_match = false;
  switch (behavior) {
    case Behavior::kIsolated:
      out = std::move(splits);
      break;
    case Behavior::kRemoved:
      for (const Range& range : splits) {
        if (!range.is_match) out.push_back(range);
      }
      break;
    case Behavior::kContiguous:
      for (const Range& range : splits) {
        if (range.is_match == previous_match && !out.empty()) {
          out.back().end = range.end;
        } else {
          out.push_back(range);
        }
        previous_match = range.is_match;
      }
      break;
    case Behavior::kMergedWithPrevious:
      for (const Range& range : splits) {
        if (range.is_match && !previous_match && !out.empty()) {
          out.back().end = range.end;
        } else {
          out.push_back(range);
        }
        previous_match = range.is_match;
      }
      break;
    case Behavior::kMergedWithNext:
      for (auto it = splits.rbegin(); it != splits.rend(); ++it) {
        if (it->is_match && !previous_match && !out.empty()) {
          out.back().begin = it->begin;
        } else {
          out.push_back(*it);
        }
        previous_match = it->is_match;
      }
      std::reverse(out.begin(), out.end());
      break;
  }
  std::erase_if(out, [](const Range& range) { return range.begin == range.end; });
  return out;
}

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (!from.empty() && text.substr(i).starts_with(from)) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

// Every occurrence of `needle` in `text`, left to right, not overlapping.
std::vector<std::pair<size_t, size_t>> FindLiteral(std::string_view text, std::string_view needle) {
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t at = text.find(needle); at != std::string_view::npos;
       at = text.find(needle, at + needle.size())) {
    matches.emplace_back(at, at + needle.size());
  }
  return matches;
}

// The code point of each alphabet string -> its byte.
const std::unordered_map<uint32_t, uint8_t>& ByteLevelInverse() {
  static const auto* const inverse = [] {
    auto* map = new std::unordered_map<uint32_t, uint8_t>();
    const std::vector<std::string>& alphabet = ByteLevelAlphabet();
    for (int b = 0; b < 256; ++b) {
      const std::string& s = alphabet[b];
      map->emplace(unicode::DecodeSequence(s, 0, s.size()), static_cast<uint8_t>(b));
    }
    return map;
  }();
  return *inverse;
}

// A Split or Replace pattern: {"String": "..."} or {"Regex": "..."}.
Result<Regex> ParsePattern(const JsonFields& fields) {
  if (!fields.Has("pattern") || !fields.Get("pattern").is_object()) {
    return fields.Error("pattern", "must be {\"String\": ...} or {\"Regex\": ...}");
  }
  const JsonFields pattern(fields.Get("pattern"), fields.where() + ".pattern");
  const bool literal = pattern.Has("String");
  if (!literal && !pattern.Has("Regex")) return pattern.Error("", "must have \"String\" or \"Regex\"");
  TANDEM_ASSIGN_OR_RETURN(const std::string text, pattern.String(literal ? "String" : "Regex"));
  if (text.empty()) return pattern.Error(literal ? "String" : "Regex", "is empty");
  auto regex = Regex::Compile(text, literal);
  if (!regex.ok()) return pattern.Error(literal ? "String" : "Regex", regex.status().message());
  return regex;
}

Result<std::string> ParseType(const json& spec, const std::string& where) {
  if (!spec.is_object()) return InvalidArgument(where + ": must be an object or null");
  return JsonFields(spec, where).String("type");
}

Status Unsupported(const std::string& where, const std::string& type) {
  return InvalidArgument(where + ": type \"" + type + "\" is not supported");
}

}  // namespace

bool JsonFields::Has(const char* key) const {
  const auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

const json& JsonFields::Get(const char* key) const {
  return object_.at(key);
}

Status JsonFields::Error(std::string_view key, std::string_view problem) const {
  std::string message = where_;
  if (!key.empty()) message.append(".").append(key);
  return InvalidArgument(message.append(": ").append(problem));
}

Result<std::string> JsonFields::String(const char* key) const {
  if (!Has(key)) return Error(key, "is missing");
  const json& value = Get(key);
  if (!value.is_string()) return Error(key, "must be a string");
  return value.get<std::string>();
}

Result<std::string> JsonFields::StringOr(const char* key, std::string fallback) const {
  if (!Has(key)) return fallback;
  return String(key);
}

Result<bool> JsonFields::BoolOr(const char* key, bool fallback) const {
  if (!Has(key)) return fallback;
  const json& value = Get(key);
  if (!value.is_boolean()) return Error(key, "must be true or false");
  return value.get<bool>();
}

Result<int64_t> JsonFields::Int(const char* key) const {
  if (!Has(key)) return Error(key, "is missing");
  const json& value = Get(key);
  if (value.is_number_unsigned()) {
    if (value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) return Error(key, "is too large");
    return static_cast<int64_t>(value.get<uint64_t>());
  }
  if (!value.is_number_integer()) return Error(key, "must be an integer");
  return value.get<int64_t>();
}

Result<int64_t> JsonFields::IntOr(const char* key, int64_t fallback) const {
  if (!Has(key)) return fallback;
  return Int(key);
}

const std::vector<std::string>& ByteLevelAlphabet() {
  // GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the others (controls, space,
  // 0x7F..0xA0, 0xAD) for U+0100 onwards in byte order.
  static const auto* const alphabet = [] {
    auto* strings = new std::vector<std::string>(256);
    uint32_t next = 256;
    for (uint32_t b = 0; b < 256; ++b) {
      const bool itself = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      unicode::AppendUtf8(itself ? b : next++, (*strings)[b]);
    }
    return strings;
  }();
  return *alphabet;
}

// --- Normalizer ---

Result<Normalizer> Normalizer::Parse(const json& spec, const std::string& where) {
  Normalizer normalizer;
  if (!spec.is_null()) TANDEM_RETURN_IF_ERROR(ParseInto(spec, where, normalizer.steps_));
  return normalizer;
}

Status Normalizer::ParseInto(const json& spec, const std::string& where, std::vector<Step>& steps) {
  TANDEM_ASSIGN_OR_RETURN(const std::string type, ParseType(spec, where));
  const JsonFields fields(spec, where);
  if (type == "Sequence") {
    if (!fields.Has("normalizers") || !fields.Get("normalizers").is_array()) {
      return fields.Error("normalizers", "must be an array");
    }
    const json& list = fields.Get("normalizers");
    for (size_t i = 0; i < list.size(); ++i) {
      TANDEM_RETURN_IF_ERROR(ParseInto(list[i], where + ".normalizers[" + std::to_string(i) + "]", steps));
    }
    return Status::Ok();
  }
  if (type == "Prepend") {
    TANDEM_ASSIGN_OR_RETURN(std::string prepend, fields.String("prepend"));
    steps.push_back({.kind = Kind::kPrepend, .text = std::move(prepend)});
    return Status::Ok();
  }
  if (type == "Replace") {
    TANDEM_ASSIGN_OR_RETURN(Regex pattern, ParsePattern(fields));
    TANDEM_ASSIGN_OR_RETURN(std::string content, fields.String("content"));
    steps.push_back({.kind = Kind::kReplace, .text = std::move(content), .regex = std::move(pattern)});
    return Status::Ok();
  }
  if (type == "NFC") {
    steps.push_back({.kind = Kind::kNfc});
    return Status::Ok();
  }
  return Unsupported(where, type);
}

std::string Normalizer::Apply(std::string_view text) const {
  std::string s(text);
  std::vector<std::pair<size_t, size_t>> matches;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kPrepend:
        if (!s.empty()) s.insert(0, step.text);
        break;
      case Kind::kReplace: {
        matches.clear();
        step.regex->FindAll(s, matches);
        if (matches.empty()) break;
        std::string out;
        size_t previous = 0;
        for (const auto& [begin, end] : matches) {
          out.append(s, previous, begin - previous).append(step.text);
          previous = end;
        }
        out.append(s, previous);
        s = std::move(out);
        break;
      }
      case Kind::kNfc:
        s = unicode::Nfc(s);
        break;
    }
  }
  return s;
}

// --- PreTokenizer ---

Result<PreTokenizer> PreTokenizer::Parse(const json& spec, const std::string& where) {
  PreTokenizer pre_tokenizer;
  if (spec.is_null()) return pre_tokenizer;
  TANDEM_RETURN_IF_ERROR(ParseInto(spec, where, pre_tokenizer.steps_));
  for (size_t i = 0; i + 1 < pre_tokenizer.steps_.size(); ++i) {
    if (pre_tokenizer.steps_[i].kind == Kind::kByteLevel) {
      return InvalidArgument(where + ": ByteLevel followed by other pre-tokenizers is not supported");
    }
  }
  return pre_tokenizer;
}

Status PreTokenizer::ParseInto(const json& spec, const std::string& where, std::vector<Step>& steps) {
  TANDEM_ASSIGN_OR_RETURN(const std::string type, ParseType(spec, where));
  const JsonFields fields(spec, where);
  if (type == "Sequence") {
    if (!fields.Has("pretokenizers") || !fields.Get("pretokenizers").is_array()) {
      return fields.Error("pretokenizers", "must be an array");
    }
    const json& list = fields.Get("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      TANDEM_RETURN_IF_ERROR(ParseInto(list[i], where + ".pretokenizers[" + std::to_string(i) + "]", steps));
    }
    return Status::Ok();
  }
  if (type == "Split") {
    Step step{.kind = Kind::kSplit};
    TANDEM_ASSIGN_OR_RETURN(step.regex, ParsePattern(fields));
    TANDEM_ASSIGN_OR_RETURN(const std::string behavior, fields.String("behavior"));
    if (behavior == "Isolated") {
      step.behavior = Behavior::kIsolated;
    } else if (behavior == "Removed") {
      step.behavior = Behavior::kRemoved;
    } else if (behavior == "MergedWithPrevious") {
      step.behavior = Behavior::kMergedWithPrevious;
    } else if (behavior == "MergedWithNext") {
      step.behavior = Behavior::kMergedWithNext;
    } else if (behavior == "Contiguous") {
      step.behavior = Behavior::kContiguous;
    } else {
      return fields.Error("behavior", "\"" + behavior + "\" is not supported");
    }
    TANDEM_ASSIGN_OR_RETURN(const bool invert, fields.BoolOr("invert", false));
    if (invert) return fields.Error("invert", "true is not supported");
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  if (type == "Metaspace") {
    Step step{.kind = Kind::kMetaspace};
    TANDEM_ASSIGN_OR_RETURN(step.replacement, fields.String("replacement"));
    if (step.replacement.empty()) return fields.Error("replacement", "is empty");
    // Files before tokenizers 0.14 have add_prefix_space (and always split); later ones prepend_scheme.
    TANDEM_ASSIGN_OR_RETURN(const bool add_prefix_space, fields.BoolOr("add_prefix_space", true));
    TANDEM_ASSIGN_OR_RETURN(const std::string scheme,
                            fields.StringOr("prepend_scheme", add_prefix_space ? "always" : "never"));
    if (scheme == "always") {
      step.prepend = Prepend::kAlways;
    } else if (scheme == "first") {
      step.prepend = Prepend::kFirst;
    } else if (scheme == "never") {
      step.prepend = Prepend::kNever;
    } else {
      return fields.Error("prepend_scheme", "\"" + scheme + "\" is not supported");
    }
    TANDEM_ASSIGN_OR_RETURN(step.split, fields.BoolOr("split", true));
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    Step step{.kind = Kind::kByteLevel};
    TANDEM_ASSIGN_OR_RETURN(step.add_prefix_space, fields.BoolOr("add_prefix_space", true));
    TANDEM_ASSIGN_OR_RETURN(const bool use_regex, fields.BoolOr("use_regex", true));
    if (use_regex) {
      auto regex = Regex::Compile(kGpt2Pattern);
      if (!regex.ok()) return Internal(where + ": GPT-2 pattern: " + regex.status().message());
      step.regex = std::move(*regex);
    }
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  return Unsupported(where, type);
}

void PreTokenizer::Apply(std::string_view text, bool at_start, std::vector<std::string>& words) const {
  struct Piece {
    std::string text;
    bool at_start;
  };
  std::vector<Piece> pieces;
  if (!text.empty()) pieces.push_back({std::string(text), at_start});
  std::vector<Piece> next;
  std::vector<std::pair<size_t, size_t>> matches;
  const auto cut = [&](const Piece& piece, Behavior behavior) {
    for (const Range& range : SplitRanges(piece.text.size(), matches, behavior)) {
      next.push_back(
          {piece.text.substr(range.begin, range.end - range.begin), piece.at_start && range.begin == 0});
    }
  };
  for (const Step& step : steps_) {
    next.clear();
    for (Piece& piece : pieces) {
      matches.clear();
      switch (step.kind) {
        case Kind::kSplit:
          // On a PCRE2 limit the rest of the piece stays one piece.
          step.regex->FindAll(piece.text, matches);
          cut(piece, step.behavior);
          break;
        case Kind::kMetaspace: {
          piece.text = ReplaceAll(piece.text, " ", step.replacement);
          const bool prepend =
              step.prepend == Prepend::kAlways || (step.prepend == Prepend::kFirst && piece.at_start);
          if (prepend && !piece.text.starts_with(step.replacement)) piece.text.insert(0, step.replacement);
          if (step.split) {
            matches = FindLiteral(piece.text, step.replacement);
            cut(piece, Behavior::kMergedWithNext);
          } else {
            next.push_back(std::move(piece));
          }
          break;
        }
        case Kind::kByteLevel:
          if (step.add_prefix_space && !piece.text.starts_with(' ')) piece.text = " " + piece.text;
          if (step.regex) {
            step.regex->FindAll(piece.text, matches);
            cut(piece, Behavior::kIsolated);
          } else {
            next.push_back(std::move(piece));
          }
          break;
      }
    }
    pieces.swap(next);
  }
  const std::vector<std::string>& alphabet = ByteLevelAlphabet();
  for (Piece& piece : pieces) {
    if (piece.text.empty()) continue;
    if (!byte_level()) {
      words.push_back(std::move(piece.text));
      continue;
    }
    std::string mapped;
    mapped.reserve(piece.text.size() * 2);
    for (char c : piece.text) mapped.append(alphabet[static_cast<unsigned char>(c)]);
    words.push_back(std::move(mapped));
  }
}

// --- Decoder ---

Result<Decoder> Decoder::Parse(const json& spec, const std::string& where) {
  if (spec.is_null()) {
    return InvalidArgument(where +
                           ": null (Hugging Face then joins the tokens with spaces) is not supported");
  }
  Decoder decoder;
  bool fused = false;
  TANDEM_RETURN_IF_ERROR(ParseInto(spec, where, fused, decoder.steps_));
  return decoder;
}

Status Decoder::ParseInto(const json& spec, const std::string& where, bool& fused, std::vector<Step>& steps) {
  TANDEM_ASSIGN_OR_RETURN(const std::string type, ParseType(spec, where));
  const JsonFields fields(spec, where);
  if (type == "Sequence") {
    if (!fields.Has("decoders") || !fields.Get("decoders").is_array()) {
      return fields.Error("decoders", "must be an array");
    }
    const json& list = fields.Get("decoders");
    for (size_t i = 0; i < list.size(); ++i) {
      TANDEM_RETURN_IF_ERROR(
          ParseInto(list[i], where + ".decoders[" + std::to_string(i) + "]", fused, steps));
    }
    return Status::Ok();
  }
  // After Fuse the decoders see the whole text as one token; only what is the same per token is possible
  // when decoding one token at a time.
  const auto not_after_fuse = [&]() -> Status {
    if (fused) return InvalidArgument(where + ": " + type + " after Fuse is not supported");
    return Status::Ok();
  };
  if (type == "ByteLevel") {
    steps.push_back({.kind = Kind::kByteLevel});
    return Status::Ok();
  }
  if (type == "Metaspace") {
    TANDEM_RETURN_IF_ERROR(not_after_fuse());
    Step step{.kind = Kind::kMetaspace};
    TANDEM_ASSIGN_OR_RETURN(step.from, fields.String("replacement"));
    if (step.from.empty()) return fields.Error("replacement", "is empty");
    TANDEM_ASSIGN_OR_RETURN(const bool add_prefix_space, fields.BoolOr("add_prefix_space", true));
    TANDEM_ASSIGN_OR_RETURN(const std::string scheme,
                            fields.StringOr("prepend_scheme", add_prefix_space ? "always" : "never"));
    if (scheme != "always" && scheme != "first" && scheme != "never") {
      return fields.Error("prepend_scheme", "\"" + scheme + "\" is not supported");
    }
    step.prepend = scheme != "never";
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  if (type == "Replace") {
    if (!fields.Has("pattern") || !fields.Get("pattern").is_object() ||
        !JsonFields(fields.Get("pattern"), "").Has("String")) {
      return fields.Error("pattern",
                          "must be {\"String\": ...} (a Regex pattern is not supported in a decoder)");
    }
    Step step{.kind = Kind::kReplace};
    TANDEM_ASSIGN_OR_RETURN(step.from,
                            JsonFields(fields.Get("pattern"), where + ".pattern").String("String"));
    if (step.from.empty()) return fields.Error("pattern.String", "is empty");
    TANDEM_ASSIGN_OR_RETURN(step.to, fields.String("content"));
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  if (type == "ByteFallback") {
    TANDEM_RETURN_IF_ERROR(not_after_fuse());
    steps.push_back({.kind = Kind::kByteFallback});
    return Status::Ok();
  }
  if (type == "Fuse") {
    fused = true;
    steps.push_back({.kind = Kind::kFuse});
    return Status::Ok();
  }
  if (type == "Strip") {
    Step step{.kind = Kind::kStrip};
    TANDEM_ASSIGN_OR_RETURN(step.from, fields.String("content"));
    if (step.from.empty()) return fields.Error("content", "is empty");
    TANDEM_ASSIGN_OR_RETURN(step.start, fields.IntOr("start", 0));
    TANDEM_ASSIGN_OR_RETURN(step.stop, fields.IntOr("stop", 0));
    if (step.start < 0 || step.stop < 0) return fields.Error("start", "and stop must be >= 0");
    if (fused && step.stop != 0) {
      return fields.Error("stop", "after Fuse (stripping the end of the whole text) is not supported");
    }
    steps.push_back(std::move(step));
    return Status::Ok();
  }
  return Unsupported(where, type);
}

std::string Decoder::Decode(std::string_view token, bool first) const {
  std::string s(token);
  bool fused = false;
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::kByteLevel: {
        // As the tokenizers library: a token with a character outside the alphabet stays as it is.
        const auto& inverse = ByteLevelInverse();
        std::string bytes;
        bool complete = true;
        for (size_t i = 0; i < s.size() && complete;) {
          const size_t length = unicode::ValidSequenceLength(s, i);
          const auto it = length == 0 ? inverse.end() : inverse.find(unicode::DecodeSequence(s, i, length));
          if (it == inverse.end()) {
            complete = false;
          } else {
            bytes.push_back(static_cast<char>(it->second));
            i += length;
          }
        }
        if (complete) s = std::move(bytes);
        break;
      }
      case Kind::kMetaspace:
        // The first token loses every replacement character; the others turn them into spaces.
        s = ReplaceAll(s, step.from, first && step.prepend ? "" : " ");
        break;
      case Kind::kReplace:
        s = ReplaceAll(s, step.from, step.to);
        break;
      case Kind::kByteFallback:
        if (const int byte = unicode::ParseBytePiece(s); byte >= 0) s.assign(1, static_cast<char>(byte));
        break;
      case Kind::kFuse:
        fused = true;
        break;
      case Kind::kStrip: {
        if (fused && !first) break;
        for (int64_t n = 0; n < step.start && s.starts_with(step.from); ++n) s.erase(0, step.from.size());
        if (fused) break;
        for (int64_t n = 0; n < step.stop && s.ends_with(step.from); ++n)
          s.resize(s.size() - step.from.size());
        break;
      }
    }
  }
  return s;
}

}  // namespace tandem::hf
