// The parts of a Hugging Face tokenizer.json around its model (internal to tandem_common): the normalizer,
// the pre-tokenizer and the decoder, each parsed from its JSON object and applied as the tokenizers
// library applies it. Only the component types (and settings) that Tandem implements are accepted; any
// other is refused by Parse with an error naming the component ("pre_tokenizer.pretokenizers[1]: type
// \"Digits\" is not supported"), so a file is never tokenized differently without saying so.
//
// All are immutable after Parse; their methods are thread-safe.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "regex.hpp"
#include "tandem/base/status.hpp"

namespace tandem::hf {

// Typed reads of one JSON object of tokenizer.json; errors name `where` and the field.
class JsonFields {
 public:
  JsonFields(const nlohmann::json& object, std::string where) : object_(object), where_(std::move(where)) {}

  // Present and not null.
  bool Has(const char* key) const;
  const nlohmann::json& Get(const char* key) const;  // Has(key) must hold
  Result<std::string> String(const char* key) const;
  Result<std::string> StringOr(const char* key, std::string fallback) const;
  Result<bool> BoolOr(const char* key, bool fallback) const;
  Result<int64_t> Int(const char* key) const;
  Result<int64_t> IntOr(const char* key, int64_t fallback) const;
  Status Error(std::string_view key, std::string_view problem) const;
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& object_;
  std::string where_;
};

// The 256 strings (one code point each) that GPT-2's bytes_to_unicode() maps the bytes to.
const std::vector<std::string>& ByteLevelAlphabet();

// Normalizers: null, Prepend, Replace (String or Regex pattern), NFC, and a Sequence of those.
class Normalizer {
 public:
  static Result<Normalizer> Parse(const nlohmann::json& spec, const std::string& where);
  std::string Apply(std::string_view text) const;

 private:
  enum class Kind { kPrepend, kReplace, kNfc };
  struct Step {
    Kind kind = Kind::kNfc;
    std::string text;            // Prepend's prefix; Replace's content
    std::optional<Regex> regex;  // Replace's pattern (literal or regex)
  };
  static Status ParseInto(const nlohmann::json& spec, const std::string& where, std::vector<Step>& steps);

  std::vector<Step> steps_;
};

// Pre-tokenizers: null, Split (Regex or String pattern, any behavior, invert false), Metaspace, ByteLevel
// (last only), and a Sequence of those.
class PreTokenizer {
 public:
  static Result<PreTokenizer> Parse(const nlohmann::json& spec, const std::string& where);

  // Appends the words of `text` (normalized text between added tokens) to `words`, byte-level mapped when
  // the pre-tokenizer ends with ByteLevel. `at_start`: `text` begins the input (Metaspace's "first").
  void Apply(std::string_view text, bool at_start, std::vector<std::string>& words) const;
  bool byte_level() const { return !steps_.empty() && steps_.back().kind == Kind::kByteLevel; }

 private:
  enum class Kind { kSplit, kMetaspace, kByteLevel };
  enum class Behavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };
  enum class Prepend { kAlways, kFirst, kNever };
  struct Step {
    Kind kind = Kind::kSplit;
    std::optional<Regex> regex;  // Split's pattern; ByteLevel's GPT-2 pattern when use_regex
    Behavior behavior = Behavior::kIsolated;
    std::string replacement;  // Metaspace
    Prepend prepend = Prepend::kAlways;
    bool split = true;              // Metaspace: split before each replacement character
    bool add_prefix_space = false;  // ByteLevel
  };
  static Status ParseInto(const nlohmann::json& spec, const std::string& where, std::vector<Step>& steps);

  std::vector<Step> steps_;
};

// Decoders: ByteLevel, Metaspace, Replace (String pattern), ByteFallback, Fuse, Strip, and a Sequence of
// those (Strip after Fuse only with stop 0; ByteFallback and Metaspace not after Fuse). Hugging Face's
// ByteFallback turns invalid UTF-8 into U+FFFD; here the raw bytes come out, so a stream can be
// concatenated.
class Decoder {
 public:
  static Result<Decoder> Parse(const nlohmann::json& spec, const std::string& where);

  // The bytes of `token` (a vocabulary string) in the decoded text; `first`: it is the first token.
  std::string Decode(std::string_view token, bool first) const;

 private:
  enum class Kind { kByteLevel, kMetaspace, kReplace, kByteFallback, kFuse, kStrip };
  struct Step {
    Kind kind = Kind::kFuse;
    std::string from;     // Replace's pattern; Metaspace's replacement; Strip's content
    std::string to;       // Replace's content
    bool prepend = true;  // Metaspace: prepend_scheme is not "never"
    int64_t start = 0;    // Strip
    int64_t stop = 0;
  };
  static Status ParseInto(const nlohmann::json& spec, const std::string& where, bool& fused,
                          std::vector<Step>& steps);

  std::vector<Step> steps_;
};

}  // namespace tandem::hf
