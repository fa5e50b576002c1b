// Tokenizer kinds other than llama2.c's, on small vocabularies written by the tests, with the expected ids
// worked out by hand in the comments: tokenizer.json BPE in the SentencePiece style (Llama 2, Mistral) and
// byte-level (GPT-2, Llama 3, Qwen2), a hand-written SentencePiece tokenizer.model, added tokens in text,
// invalid UTF-8, malformed files, and LoadForModel's choice of files and of BOS/EOS/stop ids.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "hf_fixtures.hpp"
#include "tandem/text/tokenizer.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ::tandem::testing::TempDir;

using ::tandem::testing::AddedTokenJson;
using ::tandem::testing::ByteLevelAlphabet;

const std::string kSpace = "\xE2\x96\x81";  // ▁
const std::string kG = "\xC4\xA0";          // Ġ: byte 0x20 in the byte-level alphabet

// The concatenation of Decode(previous, id) over `ids`, starting after -1.
std::string Concatenate(const Tokenizer& tokenizer, const std::vector<int>& ids) {
  std::string text;
  int previous = -1;
  for (int id : ids) {
    text.append(tokenizer.Decode(previous, id));
    previous = id;
  }
  return text;
}

void ExpectIdsInRange(const Tokenizer& tokenizer, const std::vector<int>& ids) {
  for (int id : ids) {
    EXPECT_GE(id, 0);
    EXPECT_LT(id, tokenizer.vocab_size());
  }
}

// --- (1) SentencePiece-style tokenizer.json (Llama 2) ---

// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF> (byte b is b + 3), then
//   259 ▁  260 h  261 e  262 l  263 o  264 w  265 r  266 d
//   267 ll  268 ▁h  269 ell  270 ▁hell  271 ▁hello  272 or  273 ▁w  274 ▁wor  275 ld
// with the merges, by rank: l l, ▁ h, e ll, ▁h ell, ▁hell o, o r, ▁ w, ▁w or, l d.
constexpr int kSpHello = 271, kSpWor = 274, kSpLd = 275, kSpH = 268, kSpSpace = 259;
constexpr int kSpVocab = 276;

enum class SpStyle { kLegacy, kMetaspace, kMetaspaceSplit };

json SentencePieceStyleJson(SpStyle style, bool byte_fallback = true, bool fuse_unk = true) {
  json vocab = json::object();
  vocab["<unk>"] = 0;
  vocab["<s>"] = 1;
  vocab["</s>"] = 2;
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = b + 3;
  }
  const std::vector<std::string> pieces = {kSpace,
                                           "h",
                                           "e",
                                           "l",
                                           "o",
                                           "w",
                                           "r",
                                           "d",
                                           "ll",
                                           kSpace + "h",
                                           "ell",
                                           kSpace + "hell",
                                           kSpace + "hello",
                                           "or",
                                           kSpace + "w",
                                           kSpace + "wor",
                                           "ld"};
  for (size_t i = 0; i < pieces.size(); ++i) vocab[pieces[i]] = static_cast<int>(259 + i);
  json merges = {"l l",         kSpace + " h",   "e ll", kSpace + "h ell", kSpace + "hell o", "o r",
                 kSpace + " w", kSpace + "w or", "l d"};
  json added = json::array();
  for (const auto& [id, content] :
       std::vector<std::pair<int, std::string>>{{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}}) {
    added.push_back(AddedTokenJson(id, content, /*special=*/true));
  }
  json doc = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", nullptr},
              {"post_processor",
               {{"type", "TemplateProcessing"},
                {"single", json::array({{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
                                        {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
                {"pair", json::array()},
                {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {1}}, {"tokens", {"<s>"}}}}}}}},
              {"model",
               {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", "<unk>"},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", fuse_unk},
                {"byte_fallback", byte_fallback},
                {"vocab", vocab},
                {"merges", merges}}}};
  if (style == SpStyle::kLegacy) {
    doc["normalizer"] = {{"type", "Sequence"},
                         {"normalizers",
                          {{{"type", "Prepend"}, {"prepend", kSpace}},
                           {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", kSpace}}}}};
    doc["decoder"] = {{"type", "Sequence"},
                      {"decoders",
                       {{{"type", "Replace"}, {"pattern", {{"String", kSpace}}}, {"content", " "}},
                        {{"type", "ByteFallback"}},
                        {{"type", "Fuse"}},
                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}};
  } else {
    doc["pre_tokenizer"] = {{"type", "Metaspace"},
                            {"replacement", kSpace},
                            {"prepend_scheme", "first"},
                            {"split", style == SpStyle::kMetaspaceSplit}};
    doc["decoder"] = {
        {"type", "Sequence"},
        {"decoders",
         {{{"type", "Metaspace"}, {"replacement", kSpace}, {"prepend_scheme", "first"}, {"split", false}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}}}}};
  }
  return doc;
}

class SentencePieceStyleTest : public ::testing::Test {
 protected:
  Tokenizer Load(const json& doc, int32_t vocab_size = 32000) {
    const fs::path path = temp_ / "tokenizer.json";
    testing::WriteBytes(path, doc.dump());
    auto loaded = Tokenizer::LoadFile(path.string(), vocab_size);
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    return std::move(loaded).value();
  }

  TempDir temp_;
};

TEST_F(SentencePieceStyleTest, EncodesHelloWorldByMergeRank) {
  const Tokenizer tokenizer = Load(SentencePieceStyleJson(SpStyle::kLegacy));
  EXPECT_EQ(tokenizer.kind(), TokenizerKind::kHfBpe);
  EXPECT_EQ(tokenizer.vocab_size(), kSpVocab);
  // "hello world" -> "▁hello▁world" -> ▁ h e l l o ▁ w o r l d. By rank: l l, ▁ h, e ll, ▁h ell, ▁hell o
  // make ▁hello; o r, ▁ w, ▁w or make ▁wor; l d makes ld.
  EXPECT_EQ(tokenizer.Encode("hello world", false, false), (std::vector<int>{kSpHello, kSpWor, kSpLd}));
  // BOS from the post-processor template.
  EXPECT_EQ(tokenizer.bos(), 1);
  EXPECT_EQ(tokenizer.Encode("hello world", true, false), (std::vector<int>{1, kSpHello, kSpWor, kSpLd}));
  // No eos without a model directory.
  EXPECT_EQ(tokenizer.eos(), -1);
  EXPECT_EQ(tokenizer.Encode("hello", true, true), (std::vector<int>{1, kSpHello}));
  EXPECT_TRUE(tokenizer.Encode("", false, false).empty());
  EXPECT_EQ(tokenizer.Encode("", true, false), (std::vector<int>{1}));
  EXPECT_EQ(tokenizer.piece(kSpHello), kSpace + "hello");
}

TEST_F(SentencePieceStyleTest, ByteFallbackForUnknownCharacters) {
  const Tokenizer tokenizer = Load(SentencePieceStyleJson(SpStyle::kLegacy));
  // "hé" -> ▁ h é; é (C3 A9) is not in the vocabulary: <0xC3> <0xA9> = ids 0xC3 + 3, 0xA9 + 3; ▁ h merges.
  const std::vector<int> ids = tokenizer.Encode("h\xC3\xA9", true, false);
  EXPECT_EQ(ids, (std::vector<int>{1, kSpH, 0xC3 + 3, 0xA9 + 3}));
  EXPECT_EQ(tokenizer.DecodeAll(ids), "h\xC3\xA9");
  // Each byte token decodes to its raw byte.
  EXPECT_EQ(tokenizer.Decode(kSpH, 0xC3 + 3), "\xC3");
  EXPECT_EQ(tokenizer.Decode(0xC3 + 3, 0xA9 + 3), "\xA9");
}

TEST_F(SentencePieceStyleTest, UnknownTokenWithoutByteFallback) {
  // é and € are both unknown: fused into one <unk>, or one each without fuse_unk.
  EXPECT_EQ(Load(SentencePieceStyleJson(SpStyle::kLegacy, false, true))
                .Encode("h\xC3\xA9\xE2\x82\xAC", false, false),
            (std::vector<int>{kSpH, 0}));
  EXPECT_EQ(Load(SentencePieceStyleJson(SpStyle::kLegacy, false, false))
                .Encode("h\xC3\xA9\xE2\x82\xAC", false, false),
            (std::vector<int>{kSpH, 0, 0}));
}

TEST_F(SentencePieceStyleTest, DecodeStripsTheFirstLeadingSpace) {
  const Tokenizer tokenizer = Load(SentencePieceStyleJson(SpStyle::kLegacy));
  EXPECT_EQ(tokenizer.Decode(1, kSpHello), "hello");   // after BOS
  EXPECT_EQ(tokenizer.Decode(-1, kSpHello), "hello");  // at the very start
  EXPECT_EQ(tokenizer.Decode(kSpHello, kSpWor), " wor");
  EXPECT_EQ(tokenizer.Decode(kSpWor, kSpLd), "ld");
  EXPECT_EQ(tokenizer.Decode(1, kSpSpace), "");
  EXPECT_EQ(tokenizer.DecodeAll({1, kSpHello, kSpWor, kSpLd}), "hello world");
  EXPECT_EQ(tokenizer.DecodeText({1, kSpHello, kSpWor, kSpLd}), "hello world");
  EXPECT_EQ(tokenizer.DecodeText({kSpHello, kSpWor, kSpLd}), "hello world");
  EXPECT_EQ(tokenizer.Decode(kSpLd, 2), "</s>");  // a special token decodes to its content
  EXPECT_EQ(tokenizer.Decode(1, kSpVocab), "");
  EXPECT_EQ(tokenizer.Decode(1, -3), "");
  // Round trip of a longer text.
  const std::string text = "hello world  hello\xE2\x82\xAC world!";
  EXPECT_EQ(Concatenate(tokenizer, tokenizer.Encode(text, false, false)), text);
}

TEST_F(SentencePieceStyleTest, MetaspacePreTokenizer) {
  for (SpStyle style : {SpStyle::kMetaspace, SpStyle::kMetaspaceSplit}) {
    const Tokenizer tokenizer = Load(SentencePieceStyleJson(style));
    // The same pieces as the Prepend + Replace normalizer: "▁hello▁world" (split or not).
    EXPECT_EQ(tokenizer.Encode("hello world", false, false), (std::vector<int>{kSpHello, kSpWor, kSpLd}));
    // The Metaspace decoder drops ▁ in the first token only.
    EXPECT_EQ(tokenizer.DecodeAll({1, kSpHello, kSpWor, kSpLd}), "hello world");
    EXPECT_EQ(tokenizer.Decode(kSpHello, kSpHello), " hello");
  }
}

TEST_F(SentencePieceStyleTest, AddedTokensInTextAsHuggingFace) {
  // Legacy Llama 2: the Prepend normalizer gives every piece between added tokens its ▁.
  const Tokenizer legacy = Load(SentencePieceStyleJson(SpStyle::kLegacy));
  EXPECT_EQ(legacy.Encode("<s>hello</s>", false, false), (std::vector<int>{1, kSpHello, 2}));
  // Metaspace with prepend_scheme "first": only the piece that starts the text gets ▁, so "hello" after
  // <s> is h e l l o -> l l, e ll -> h ell o = 260, 269, 263.
  const Tokenizer first = Load(SentencePieceStyleJson(SpStyle::kMetaspace));
  EXPECT_EQ(first.Encode("<s>hello", false, false), (std::vector<int>{1, 260, 269, 263}));
  EXPECT_EQ(first.Encode("hello<s>", false, false), (std::vector<int>{kSpHello, 1}));
}

TEST_F(SentencePieceStyleTest, InvalidUtf8BecomesByteTokens) {
  const Tokenizer tokenizer = Load(SentencePieceStyleJson(SpStyle::kLegacy));
  // "h\xFF": ▁ h, then the invalid byte 0xFF -> <0xFF> = 258.
  EXPECT_EQ(tokenizer.Encode("h\xFF", false, false), (std::vector<int>{kSpH, 0xFF + 3}));
  // A truncated sequence: ▁, the lone lead byte C3 -> <0xC3>, "(" is not in the vocabulary -> <0x28>.
  EXPECT_EQ(tokenizer.Encode("\xC3(", false, false), (std::vector<int>{kSpSpace, 0xC3 + 3, 0x28 + 3}));
  // A UTF-8 encoded surrogate is three invalid bytes.
  EXPECT_EQ(tokenizer.Encode("\xED\xA0\x80", false, false),
            (std::vector<int>{kSpSpace, 0xED + 3, 0xA0 + 3, 0x80 + 3}));
  const std::string bad = "\x80hello\xFE\xFF world\xC0\xAF";
  const std::vector<int> ids = tokenizer.Encode(bad, false, false);
  ExpectIdsInRange(tokenizer, ids);
  // The raw bytes come back: spaces as ▁ and back.
  EXPECT_EQ(Concatenate(tokenizer, ids), bad);
}

// --- (2) Byte-level BPE (GPT-2, Llama 3, Qwen2) ---

const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Ids 0..255: the byte-level alphabet in byte order (id = byte). Then, in merge-rank order:
//   256 Ġ1 (Ġ 1)  257 ll  258 He  259 or  260 Hell  261 Ġw  262 Hello  263 Ġwor  264 ld  265 Ġworld
//   266 's  267 12  268 123 (12 3)  269 bc  270 ab  271 Ã© (é's bytes)
// and the added tokens 272 <|begin_of_text|>, 273 <|end_of_text|>, 274 <|eot_id|> (special), 275 "<|e".
constexpr int kBlHello = 262, kBlWorld = 265, kBlApostropheS = 266, kBl123 = 268, kBlEAcute = 271;
constexpr int kBegin = 272, kEnd = 273, kEot = 274, kPartial = 275;

enum class ByteLevelStyle { kGpt2, kLlama3, kQwen2 };

json ByteLevelJson(ByteLevelStyle style, bool pair_merges) {
  const std::vector<std::string> alphabet = ByteLevelAlphabet();
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[alphabet[b]] = b;
  const std::vector<std::pair<std::string, std::string>> merges = {
      {kG, "1"},    {"l", "l"},         {"H", "e"},    {"o", "r"},
      {"He", "ll"}, {kG, "w"},          {"Hell", "o"}, {kG + "w", "or"},
      {"l", "d"},   {kG + "wor", "ld"}, {"'", "s"},    {"1", "2"},
      {"12", "3"},  {"b", "c"},         {"a", "b"},    {alphabet[0xC3], alphabet[0xA9]}};
  json merge_list = json::array();
  for (size_t i = 0; i < merges.size(); ++i) {
    vocab[merges[i].first + merges[i].second] = static_cast<int>(256 + i);
    if (pair_merges) {
      merge_list.push_back({merges[i].first, merges[i].second});
    } else {
      merge_list.push_back(merges[i].first + " " + merges[i].second);
    }
  }
  json added = json::array();
  for (const auto& [id, content, special] :
       std::vector<std::tuple<int, std::string, bool>>{{kBegin, "<|begin_of_text|>", true},
                                                       {kEnd, "<|end_of_text|>", true},
                                                       {kEot, "<|eot_id|>", true},
                                                       {kPartial, "<|e", false}}) {
    added.push_back(AddedTokenJson(id, content, special));
  }
  const json byte_level = {{"type", "ByteLevel"},
                           {"add_prefix_space", false},
                           {"trim_offsets", true},
                           {"use_regex", style == ByteLevelStyle::kGpt2}};
  json doc = {
      {"version", "1.0"},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", style == ByteLevelStyle::kLlama3},
        {"vocab", vocab},
        {"merges", merge_list}}}};
  if (style == ByteLevelStyle::kGpt2) {
    doc["pre_tokenizer"] = byte_level;
  } else {
    doc["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern", {{"Regex", style == ByteLevelStyle::kLlama3 ? kLlama3Pattern : kQwen2Pattern}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          byte_level}}};
  }
  if (style == ByteLevelStyle::kLlama3) {
    doc["post_processor"] = {
        {"type", "Sequence"},
        {"processors",
         {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}},
          {{"type", "TemplateProcessing"},
           {"single", json::array({{{"SpecialToken", {{"id", "<|begin_of_text|>"}, {"type_id", 0}}}},
                                   {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
           {"pair", json::array()},
           {"special_tokens",
            {{"<|begin_of_text|>",
              {{"id", "<|begin_of_text|>"}, {"ids", {kBegin}}, {"tokens", {"<|begin_of_text|>"}}}}}}}}}};
  }
  if (style == ByteLevelStyle::kQwen2) doc["normalizer"] = {{"type", "NFC"}};
  return doc;
}

class ByteLevelTest : public ::testing::Test {
 protected:
  Tokenizer Load(ByteLevelStyle style, bool pair_merges = false) {
    const fs::path path = temp_ / "tokenizer.json";
    testing::WriteBytes(path, ByteLevelJson(style, pair_merges).dump());
    auto loaded = Tokenizer::LoadFile(path.string(), 300);
    EXPECT_TRUE(loaded.ok()) << loaded.status().ToString();
    return std::move(loaded).value();
  }

  TempDir temp_;
};

TEST_F(ByteLevelTest, Llama3RegexSplitsThenMergesByRank) {
  for (bool pair_merges : {false, true}) {
    SCOPED_TRACE(pair_merges ? "[\"a\", \"b\"] merges" : "\"a b\" merges");
    const Tokenizer tokenizer = Load(ByteLevelStyle::kLlama3, pair_merges);
    EXPECT_EQ(tokenizer.kind(), TokenizerKind::kHfByteLevelBpe);
    // The Llama 3 regex cuts "Hello world's 123!" into "Hello", " world", "'s", " ", "123", "!": the space
    // before digits stands alone (\s+ ; digits are \p{N}{1,3}), so the rank-0 merge Ġ 1 never applies.
    // Hello: l l, H e, He ll, Hell o. Ġworld: o r, Ġ w, Ġw or, l d, Ġwor ld. 's. Ġ = 32. 123: 1 2, 12 3.
    EXPECT_EQ(tokenizer.Encode("Hello world's 123!", false, false),
              (std::vector<int>{kBlHello, kBlWorld, kBlApostropheS, 32, kBl123, '!'}));
    // \p{N}{1,3}: "12345" is "123", "45".
    EXPECT_EQ(tokenizer.Encode("12345", false, false), (std::vector<int>{kBl123, '4', '5'}));
    // By rank, not by position: in "abc", b c (rank 13) merges before a b (rank 14).
    EXPECT_EQ(tokenizer.Encode("abc", false, false), (std::vector<int>{'a', 269}));
    EXPECT_EQ(tokenizer.Encode("ab", false, false), (std::vector<int>{270}));
  }
}

TEST_F(ByteLevelTest, Gpt2RegexKeepsTheSpaceWithTheDigits) {
  const Tokenizer tokenizer = Load(ByteLevelStyle::kGpt2);
  // GPT-2's " ?\p{N}+" keeps " 123" together: Ġ 1 2 3 -> Ġ1 (rank 0) 2 3, and no merge joins 2 and 3.
  EXPECT_EQ(tokenizer.Encode("Hello world's 123!", false, false),
            (std::vector<int>{kBlHello, kBlWorld, kBlApostropheS, 256, '2', '3', '!'}));
  EXPECT_EQ(tokenizer.bos(), -1);  // no template: GPT-2 adds no BOS
  EXPECT_EQ(tokenizer.Encode("ab", true, true), (std::vector<int>{270}));
  // Without a BOS, DecodeText decodes every id; DecodeAll takes ids[0] for context, as it always has.
  const std::vector<int> ids = tokenizer.Encode("Hello world's 123!", true, false);
  EXPECT_EQ(tokenizer.DecodeText(ids), "Hello world's 123!");
  EXPECT_EQ(tokenizer.DecodeAll(ids), " world's 123!");
}

TEST_F(ByteLevelTest, NonAsciiGoesThroughBytes) {
  const Tokenizer tokenizer = Load(ByteLevelStyle::kLlama3);
  // é = C3 A9 -> "Ã©" (merged, 271); " é" is one regex piece: Ġ Ã©.
  EXPECT_EQ(tokenizer.Encode("\xC3\xA9", false, false), (std::vector<int>{kBlEAcute}));
  EXPECT_EQ(tokenizer.Encode(" \xC3\xA9", false, false), (std::vector<int>{32, kBlEAcute}));
  // 😀 = F0 9F 98 80: one piece of four unmerged bytes.
  const std::vector<int> grin = tokenizer.Encode("\xF0\x9F\x98\x80", false, false);
  EXPECT_EQ(grin, (std::vector<int>{0xF0, 0x9F, 0x98, 0x80}));
  // Each token decodes to its raw bytes, partial UTF-8 included.
  EXPECT_EQ(tokenizer.Decode(-1, 0xF0), "\xF0");
  EXPECT_EQ(tokenizer.Decode(0xF0, 0x9F), "\x9F");
  EXPECT_EQ(tokenizer.Decode(-1, kBlWorld), " world");  // byte-level keeps leading spaces
  for (const std::string& text : std::vector<std::string>{
           "Hello world's 123!", "caf\xC3\xA9 \xF0\x9F\x98\x80 ok\n\n  x\t", "  lead", "e\xCC\x81"}) {
    SCOPED_TRACE(text);
    const std::vector<int> ids = tokenizer.Encode(text, false, false);
    ExpectIdsInRange(tokenizer, ids);
    EXPECT_EQ(Concatenate(tokenizer, ids), text);
  }
}

TEST_F(ByteLevelTest, NfcNormalizerComposes) {
  // Qwen2 normalizes to NFC: e + U+0301 becomes é (then Ã© = 271); the Hangul jamo U+1100 U+1161 become
  // U+AC00 (EA B0 80). Llama 3 has no normalizer: the bytes stay as written.
  const Tokenizer qwen = Load(ByteLevelStyle::kQwen2);
  EXPECT_EQ(qwen.Encode("e\xCC\x81", false, false), (std::vector<int>{kBlEAcute}));
  EXPECT_EQ(qwen.Encode("\xE1\x84\x80\xE1\x85\xA1", false, false), (std::vector<int>{0xEA, 0xB0, 0x80}));
  EXPECT_EQ(qwen.Encode("\xC3\xA9", false, false), (std::vector<int>{kBlEAcute}));
  // Qwen2's \p{N}: one digit at a time.
  EXPECT_EQ(qwen.Encode("123", false, false), (std::vector<int>{'1', '2', '3'}));
  const Tokenizer llama3 = Load(ByteLevelStyle::kLlama3);
  // "e" is a \p{L}+ piece; U+0301 (CC 81, a mark) is a piece of its own.
  EXPECT_EQ(llama3.Encode("e\xCC\x81", false, false), (std::vector<int>{'e', 0xCC, 0x81}));
}

TEST_F(ByteLevelTest, InvalidUtf8IsEncodedAsRawBytes) {
  for (ByteLevelStyle style : {ByteLevelStyle::kGpt2, ByteLevelStyle::kLlama3, ByteLevelStyle::kQwen2}) {
    const Tokenizer tokenizer = Load(style);
    // No regex match includes an invalid byte; it falls in a gap and is byte-level mapped like any byte.
    EXPECT_EQ(tokenizer.Encode("a\xFF"
                               "b",
                               false, false),
              (std::vector<int>{'a', 0xFF, 'b'}));
    EXPECT_EQ(tokenizer.Encode("\xC3", false, false), (std::vector<int>{0xC3}));
    EXPECT_EQ(tokenizer.Encode("\xED\xA0\x80", false, false), (std::vector<int>{0xED, 0xA0, 0x80}));
    for (const std::string& text : std::vector<std::string>{"\x80\x80\x80", "ab\xC3(\xF0\x9F\x98 x",
                                                            "\xF8\x88\x80\x80\x80 1\xFF"
                                                            "23"}) {
      const std::vector<int> ids = tokenizer.Encode(text, false, false);
      ExpectIdsInRange(tokenizer, ids);
      EXPECT_EQ(Concatenate(tokenizer, ids), text);
    }
  }
}

TEST_F(ByteLevelTest, LongInputsDoNotHitRegexLimits) {
  const Tokenizer tokenizer = Load(ByteLevelStyle::kLlama3);
  for (const std::string& text : std::vector<std::string>{
           std::string(100000, ' '), std::string(100000, 'a'), std::string(50000, '\n') + "x",
           std::string(30000, '!') + std::string(30000, ' ')}) {
    const std::vector<int> ids = tokenizer.Encode(text, false, false);
    EXPECT_EQ(Concatenate(tokenizer, ids), text);
  }
}

// --- (3) Added tokens in text; EOS and stops ---

TEST_F(ByteLevelTest, SpecialTokensMatchedInText) {
  const Tokenizer tokenizer = Load(ByteLevelStyle::kLlama3);
  // BOS from the template; "Hi" is H i (no merge); the specials are matched, the longest first, so
  // "<|eot_id|>" wins over the added token "<|e".
  EXPECT_EQ(tokenizer.bos(), kBegin);
  EXPECT_EQ(tokenizer.Encode("<|begin_of_text|>Hi<|eot_id|>", false, false),
            (std::vector<int>{kBegin, 'H', 'i', kEot}));
  EXPECT_EQ(tokenizer.Encode("Hi", true, false), (std::vector<int>{kBegin, 'H', 'i'}));
  EXPECT_EQ(tokenizer.Encode("<|ex", false, false), (std::vector<int>{kPartial, 'x'}));
  EXPECT_EQ(tokenizer.Encode("<|eot_id|<|end_of_text|>", false, false),
            (std::vector<int>{kPartial, 'o', 't', '_', 'i', 'd', '|', kEnd}));
  EXPECT_EQ(tokenizer.Decode('i', kEot), "<|eot_id|>");
  EXPECT_EQ(tokenizer.piece(kEot), "<|eot_id|>");
  EXPECT_EQ(tokenizer.DecodeAll({kBegin, 'H', 'i', kEot}), "Hi<|eot_id|>");
}

TEST_F(ByteLevelTest, EveryGenerationConfigEosIsAStop) {
  const fs::path dir = temp_ / "llama3";
  fs::create_directories(dir);
  testing::WriteBytes(dir / "tokenizer.json", ByteLevelJson(ByteLevelStyle::kLlama3, true).dump());
  testing::WriteBytes(dir / "config.json",
                      R"({"bos_token_id": 272, "eos_token_id": 273, "vocab_size": 300})");
  testing::WriteBytes(dir / "generation_config.json",
                      R"({"bos_token_id": 272, "eos_token_id": [273, 274, 275]})");
  testing::WriteBytes(
      dir / "tokenizer_config.json",
      R"({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "model_max_length": 8192})");
  auto loaded = Tokenizer::LoadForModel(dir.string(), "", 300);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->bos(), kBegin);
  EXPECT_EQ(loaded->eos(), kEot);  // tokenizer_config.json's eos_token comes first
  for (int id : {kEnd, kEot, kPartial}) EXPECT_TRUE(loaded->IsEndOfText(id)) << id;
  EXPECT_EQ(loaded->EndOfTextIds(), (std::vector<int>{kEnd, kEot, kPartial}));
  for (int id : std::vector<int>{kBegin, 'H', 0, 299, -1}) EXPECT_FALSE(loaded->IsEndOfText(id)) << id;
  EXPECT_EQ(loaded->Encode("Hi", true, true), (std::vector<int>{kBegin, 'H', 'i', kEot}));
}

TEST_F(ByteLevelTest, Qwen2HasNoBos) {
  const fs::path dir = temp_ / "qwen2";
  fs::create_directories(dir);
  testing::WriteBytes(dir / "tokenizer.json", ByteLevelJson(ByteLevelStyle::kQwen2, false).dump());
  // As Qwen2's files: config.json names a bos_token_id, but the tokenizer has none and adds none.
  testing::WriteBytes(dir / "config.json", R"({"bos_token_id": 273, "eos_token_id": 274})");
  testing::WriteBytes(dir / "generation_config.json", R"({"bos_token_id": 273, "eos_token_id": [274, 273]})");
  testing::WriteBytes(dir / "tokenizer_config.json",
                      R"({"bos_token": null, "eos_token": "<|eot_id|>", "errors": "replace"})");
  auto loaded = Tokenizer::LoadForModel(dir.string(), "", 300);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->bos(), -1);
  EXPECT_EQ(loaded->eos(), kEot);
  EXPECT_TRUE(loaded->IsEndOfText(kEnd));
  EXPECT_EQ(loaded->Encode("Hi", true, false), (std::vector<int>{'H', 'i'}));
  // Without BOS, decoding after -1 keeps everything.
  EXPECT_EQ(loaded->Decode(-1, kBlWorld), " world");
}

// --- (4) SentencePiece tokenizer.model, written in protobuf wire format ---

void Varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}
void Tag(std::string& out, int field, int wire_type) {
  Varint(out, static_cast<uint64_t>(field << 3 | wire_type));
}
void Bytes(std::string& out, int field, const std::string& bytes) {
  Tag(out, field, 2);
  Varint(out, bytes.size());
  out.append(bytes);
}
void VarintField(std::string& out, int field, uint64_t value) {
  Tag(out, field, 0);
  Varint(out, value);
}

// ModelProto.pieces: SentencePiece {piece = 1, score = 2 (float), type = 3 (NORMAL 1, UNKNOWN 2,
// CONTROL 3, BYTE 6)}.
std::string Piece(const std::string& piece, float score, int type) {
  std::string message;
  Bytes(message, 1, piece);
  Tag(message, 2, 5);
  char raw[4];
  std::memcpy(raw, &score, 4);
  message.append(raw, 4);
  VarintField(message, 3, static_cast<uint64_t>(type));
  return message;
}

// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte pieces, then NORMAL pieces with the scores BPE merges by
// (the highest first): 259 ▁  260 h  261 e  262 l  263 o  264 w (0 each)  265 ll (-1)  266 lo (-1.5)
// 267 ▁h (-2)  268 ▁he (-3)  269 ▁hell (-4)  270 ▁hello (-5)  271 ▁w (-6). trainer_spec: BPE, byte
// fallback; normalizer_spec: identity, dummy prefix, spaces kept.
std::string SentencePieceModel() {
  std::string model;
  Bytes(model, 1, Piece("<unk>", 0, 2));
  Bytes(model, 1, Piece("<s>", 0, 3));
  Bytes(model, 1, Piece("</s>", 0, 3));
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    Bytes(model, 1, Piece(name, 0, 6));
  }
  const std::vector<std::pair<std::string, float>> pieces = {{kSpace, 0},
                                                             {"h", 0},
                                                             {"e", 0},
                                                             {"l", 0},
                                                             {"o", 0},
                                                             {"w", 0},
                                                             {"ll", -1},
                                                             {"lo", -1.5f},
                                                             {kSpace + "h", -2},
                                                             {kSpace + "he", -3},
                                                             {kSpace + "hell", -4},
                                                             {kSpace + "hello", -5},
                                                             {kSpace + "w", -6}};
  for (const auto& [piece, score] : pieces) Bytes(model, 1, Piece(piece, score, 1));
  std::string trainer;
  VarintField(trainer, 3, 2);    // model_type: BPE
  VarintField(trainer, 4, 272);  // vocab_size
  VarintField(trainer, 35, 1);   // byte_fallback
  Bytes(model, 2, trainer);
  std::string normalizer;
  Bytes(normalizer, 1, "identity");
  VarintField(normalizer, 3, 1);  // add_dummy_prefix
  VarintField(normalizer, 4, 0);  // remove_extra_whitespaces
  VarintField(normalizer, 5, 1);  // escape_whitespaces
  Bytes(model, 3, normalizer);
  return model;
}

class SentencePieceModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = temp_ / "tokenizer.model";
    testing::WriteBytes(path_, SentencePieceModel());
    auto probe = Tokenizer::LoadFile(path_.string(), 300);
    if (!probe.ok() && probe.status().message().find("AddressSanitizer") != std::string::npos) {
      GTEST_SKIP() << probe.status().message();
    }
  }

  TempDir temp_;
  fs::path path_;
};

TEST_F(SentencePieceModelTest, EncodesByScoreWithByteFallback) {
  auto loaded = Tokenizer::LoadFile(path_.string(), 32000);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  const Tokenizer& tokenizer = *loaded;
  EXPECT_EQ(tokenizer.kind(), TokenizerKind::kSentencePiece);
  EXPECT_EQ(tokenizer.vocab_size(), 272);
  EXPECT_EQ(tokenizer.bos(), 1);
  EXPECT_EQ(tokenizer.eos(), 2);
  EXPECT_TRUE(tokenizer.IsEndOfText(2));
  // "▁hello▁world": ll (-1) beats lo (-1.5) for the first l; then ▁h, ▁he, ▁hell, ▁hello; ▁w. "o" stays;
  // r and d are not pieces: byte fallback to 0x72 + 3 and 0x64 + 3; l stays.
  const std::vector<int> ids = tokenizer.Encode("hello world", true, false);
  EXPECT_EQ(ids, (std::vector<int>{1, 270, 271, 263, 0x72 + 3, 262, 0x64 + 3}));
  EXPECT_EQ(tokenizer.DecodeAll(ids), "hello world");
  EXPECT_EQ(tokenizer.DecodeText(ids), "hello world");
  EXPECT_EQ(tokenizer.Decode(1, 270), "hello");
  EXPECT_EQ(tokenizer.Decode(270, 271), " w");
  // With nothing better, lo merges: ▁ lo.
  EXPECT_EQ(tokenizer.Encode("lo", false, true), (std::vector<int>{259, 266, 2}));
  // Control pieces written in the text become their ids (as LlamaTokenizer); each piece between them
  // gets the dummy prefix again.
  EXPECT_EQ(tokenizer.Encode("<s>hello</s>", false, false), (std::vector<int>{1, 270, 2}));
  EXPECT_EQ(tokenizer.Decode(270, 2), "</s>");
}

TEST_F(SentencePieceModelTest, InvalidUtf8DoesWhatSentencePieceDoes) {
  auto loaded = Tokenizer::LoadFile(path_.string(), 300);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  // libsentencepiece replaces the invalid byte with U+FFFD (EF BF BD), which then falls back to bytes.
  EXPECT_EQ(loaded->Encode("h\xFF", false, false), (std::vector<int>{267, 0xEF + 3, 0xBF + 3, 0xBD + 3}));
  for (const std::string& text :
       std::vector<std::string>{"\x80", "\xC3", "hello\xED\xA0\x80world", std::string("a\0b", 3)}) {
    ExpectIdsInRange(*loaded, loaded->Encode(text, true, true));
  }
}

TEST_F(SentencePieceModelTest, DetectedByContentAndVocabularyChecked) {
  const fs::path unnamed = temp_ / "sp-without-extension";
  testing::WriteBytes(unnamed, SentencePieceModel());
  auto loaded = Tokenizer::LoadFile(unnamed.string(), 272);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->kind(), TokenizerKind::kSentencePiece);
  auto small = Tokenizer::LoadFile(path_.string(), 271);
  ASSERT_FALSE(small.ok());
  EXPECT_NE(small.status().message().find("more than the model's vocab_size 271"), std::string::npos)
      << small.status().message();
  EXPECT_NE(small.status().message().find(path_.string()), std::string::npos);
  testing::WriteBytes(path_, "\x0a\x05garbage-not-a-model");
  auto garbage = Tokenizer::LoadFile(path_.string(), 300);
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("not a SentencePiece model"), std::string::npos)
      << garbage.status().message();
}

// --- (5) llama2.c through the new entry points ---

// <unk>, BOS, EOS, <0x00>..<0xFF> (3..258), " " (259), "a" (260).
std::string Llama2cFile() {
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    pieces.emplace_back(name);
  }
  pieces.emplace_back(" ");
  pieces.emplace_back("a");
  std::string bytes;
  const auto append = [&](auto value) { bytes.append(reinterpret_cast<const char*>(&value), sizeof(value)); };
  append(int32_t{8});
  for (const std::string& piece : pieces) {
    append(0.0f);
    append(static_cast<int32_t>(piece.size()));
    bytes.append(piece);
  }
  return bytes;
}

TEST(Llama2cKindTest, InvalidUtf8AndSpecialIds) {
  TempDir temp;
  const fs::path path = temp / "tok";  // no extension: recognised by content
  testing::WriteBytes(path, Llama2cFile());
  auto loaded = Tokenizer::LoadFile(path.string(), 261);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->kind(), TokenizerKind::kLlama2c);
  EXPECT_EQ(loaded->bos(), Tokenizer::kBos);
  EXPECT_EQ(loaded->eos(), Tokenizer::kEos);
  EXPECT_TRUE(loaded->IsEndOfText(1));  // llama2.c ends a story at BOS
  EXPECT_TRUE(loaded->IsEndOfText(2));
  EXPECT_FALSE(loaded->IsEndOfText(0));
  EXPECT_EQ(loaded->EndOfTextIds(), (std::vector<int>{1, 2}));
  // " ", "a", then the lone 0xFF byte -> 0xFF + 3.
  EXPECT_EQ(loaded->Encode("a\xFF", true, true), (std::vector<int>{1, 259, 260, 0xFF + 3, 2}));
  // The " " after BOS decodes to nothing; DecodeText keeps the raw byte DecodeAll's filter drops.
  EXPECT_EQ(loaded->DecodeText({1, 259, 260, 0xFF + 3}), "a\xFF");
  EXPECT_EQ(loaded->DecodeAll({1, 259, 260, 0xFF + 3}), "a");
  // A llama2.c tokenizer must match the model's vocabulary exactly.
  auto wrong = Tokenizer::LoadFile(path.string(), 300);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("truncated"), std::string::npos);
}

TEST(TokenizerHandleTest, CopiesShareTheModel) {
  TempDir temp;
  testing::WriteBytes(temp / "tokenizer.json", SentencePieceStyleJson(SpStyle::kLegacy).dump());
  std::string_view piece;
  std::optional<Tokenizer> copy;
  {
    auto loaded = Tokenizer::LoadFile((temp / "tokenizer.json").string(), 300);
    ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
    copy.emplace(*loaded);
    piece = loaded->Decode(kSpHello, kSpWor);
  }
  EXPECT_EQ(piece, " wor");  // still valid: the copy keeps the model alive
  EXPECT_EQ(copy->Decode(kSpHello, kSpWor).data(), piece.data());
}

// --- (6) Malformed tokenizer.json ---

class MalformedJsonTest : public ::testing::Test {
 protected:
  // Writes `text` as a tokenizer.json and expects it refused with an error naming the file and `problem`.
  void ExpectRefused(const std::string& text, const std::string& problem, int32_t vocab_size = 32000) {
    const fs::path path = temp_ / "tokenizer.json";
    testing::WriteBytes(path, text);
    auto loaded = Tokenizer::LoadFile(path.string(), vocab_size);
    ASSERT_FALSE(loaded.ok()) << "accepted: " << text.substr(0, 200);
    EXPECT_EQ(loaded.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(loaded.status().message().find(path.string()), std::string::npos) << loaded.status().message();
    EXPECT_NE(loaded.status().message().find(problem), std::string::npos) << loaded.status().message();
  }

  static json Edited(const std::function<void(json&)>& edit) {
    json doc = SentencePieceStyleJson(SpStyle::kLegacy);
    edit(doc);
    return doc;
  }

  TempDir temp_;
};

TEST_F(MalformedJsonTest, NotJson) {
  ExpectRefused("{\"model\": {\"type\": \"BPE\",", "not valid JSON");
  ExpectRefused("{}", "model: missing");
  ExpectRefused("[1, 2]", "not a JSON object");
}

TEST_F(MalformedJsonTest, UnsupportedModelType) {
  ExpectRefused(Edited([](json& d) { d["model"]["type"] = "WordPiece"; }).dump(),
                "model: type \"WordPiece\" is not supported");
  ExpectRefused(Edited([](json& d) { d["model"]["type"] = "Unigram"; }).dump(),
                "\"Unigram\" is not supported");
  ExpectRefused(Edited([](json& d) { d["model"]["dropout"] = 0.1; }).dump(), "model.dropout");
  ExpectRefused(Edited([](json& d) { d["model"]["continuing_subword_prefix"] = "##"; }).dump(),
                "model.continuing_subword_prefix");
}

TEST_F(MalformedJsonTest, FieldsOfTheWrongType) {
  ExpectRefused(Edited([](json& d) { d["model"]["unk_token"] = 5; }).dump(),
                "model.unk_token: must be a string");
  ExpectRefused(Edited([](json& d) { d["model"]["byte_fallback"] = "yes"; }).dump(),
                "model.byte_fallback: must be true or false");
  ExpectRefused(Edited([](json& d) { d["added_tokens"][0].erase("content"); }).dump(),
                "added_tokens[0].content: is missing");
  ExpectRefused(Edited([](json& d) { d["normalizer"]["normalizers"][0]["prepend"] = nullptr; }).dump(),
                "normalizer.normalizers[0].prepend: is missing");
  ExpectRefused(Edited([](json& d) { d["decoder"]["decoders"][3]["start"] = "one"; }).dump(),
                "decoder.decoders[3].start: must be an integer");
}

TEST_F(MalformedJsonTest, MergeOfTokensNotInTheVocabulary) {
  ExpectRefused(Edited([](json& d) { d["model"]["merges"].push_back("q z"); }).dump(),
                "model.merges[9] (\"q\", \"z\"): \"q\" is not in the vocabulary");
  // Both parts exist, their concatenation does not.
  ExpectRefused(Edited([](json& d) { d["model"]["merges"].push_back("h e"); }).dump(),
                "\"he\" is not in the vocabulary");
  ExpectRefused(Edited([](json& d) { d["model"]["merges"].push_back("ll"); }).dump(), "is not two tokens");
  ExpectRefused(Edited([](json& d) { d["model"]["merges"].push_back(json::array({"l"})); }).dump(),
                "model.merges[9]");
  ExpectRefused(Edited([](json& d) { d["model"]["unk_token"] = "<nope>"; }).dump(), "model.unk_token");
}

TEST_F(MalformedJsonTest, UnsupportedComponents) {
  ExpectRefused(Edited([](json& d) {
                  d["pre_tokenizer"] = {{"type", "Whitespace"}};
                }).dump(),
                "pre_tokenizer: type \"Whitespace\" is not supported");
  ExpectRefused(Edited([](json& d) {
                  d["pre_tokenizer"] = {{"type", "Sequence"},
                                        {"pretokenizers",
                                         {{{"type", "Split"},
                                           {"pattern", {{"Regex", "\\s"}}},
                                           {"behavior", "Isolated"},
                                           {"invert", false}},
                                          {{"type", "Digits"}, {"individual_digits", true}}}}};
                }).dump(),
                "pre_tokenizer.pretokenizers[1]: type \"Digits\" is not supported");
  ExpectRefused(
      Edited([](json& d) {
        d["pre_tokenizer"] = {
            {"type", "Split"}, {"pattern", {{"Regex", "\\s"}}}, {"behavior", "Isolated"}, {"invert", true}};
      }).dump(),
      "pre_tokenizer.invert: true is not supported");
  ExpectRefused(Edited([](json& d) {
                  d["pre_tokenizer"] = {
                      {"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
                }).dump(),
                "pre_tokenizer.pattern.Regex: regex error");
  ExpectRefused(Edited([](json& d) {
                  d["normalizer"]["normalizers"].push_back({{"type", "NFKC"}});
                }).dump(),
                "normalizer.normalizers[2]: type \"NFKC\" is not supported");
  ExpectRefused(Edited([](json& d) { d["decoder"] = nullptr; }).dump(), "decoder: null");
  ExpectRefused(Edited([](json& d) {
                  d["decoder"] = {{"type", "WordPiece"}};
                }).dump(),
                "decoder: type \"WordPiece\" is not supported");
  ExpectRefused(Edited([](json& d) {
                  d["post_processor"] = {{"type", "BertProcessing"}};
                }).dump(),
                "post_processor: type \"BertProcessing\" is not supported");
  ExpectRefused(Edited([](json& d) { d["added_tokens"][1]["single_word"] = true; }).dump(),
                "added_tokens[1] (\"<s>\"): single_word true is not supported");
}

TEST_F(MalformedJsonTest, IdsOutsideTheModelOrRepeated) {
  // 276 tokens do not fit a model of 100.
  ExpectRefused(SentencePieceStyleJson(SpStyle::kLegacy).dump(), "more than the model's vocab_size 100", 100);
  ExpectRefused(Edited([](json& d) { d["model"]["vocab"]["zz"] = 5000; }).dump(),
                "id 5000 is outside the model's vocabulary of 1000 tokens", 1000);
  ExpectRefused(Edited([](json& d) { d["model"]["vocab"]["zz"] = -1; }).dump(), "is negative");
  ExpectRefused(Edited([](json& d) { d["model"]["vocab"]["zz"] = 5; }).dump(), "id 5 is given to both");
  ExpectRefused(Edited([](json& d) { d["model"]["vocab"]["zz"] = "7"; }).dump(), "must be an integer");
  // A vocabulary smaller than the model's is fine (models pad their embeddings).
  const fs::path path = temp_ / "small.json";
  testing::WriteBytes(path, SentencePieceStyleJson(SpStyle::kLegacy).dump());
  auto loaded = Tokenizer::LoadFile(path.string(), 32000);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->vocab_size(), kSpVocab);
}

// --- (7) LoadForModel: which file, which ids ---

class LoadForModelTest : public ::testing::Test {
 protected:
  fs::path Dir(const std::string& name) {
    const fs::path dir = temp_ / name;
    fs::create_directories(dir);
    return dir;
  }

  TempDir temp_;
};

TEST_F(LoadForModelTest, PrefersTokenizerJsonThenTokenizerModel) {
  const fs::path both = Dir("both");
  testing::WriteBytes(both / "tokenizer.json", SentencePieceStyleJson(SpStyle::kLegacy).dump());
  testing::WriteBytes(both / "tokenizer.model", SentencePieceModel());
  auto json_kind = Tokenizer::LoadForModel(both.string(), "", 32000);
  ASSERT_TRUE(json_kind.ok()) << json_kind.status().ToString();
  EXPECT_EQ(json_kind->kind(), TokenizerKind::kHfBpe);

  const fs::path model_only = Dir("model-only");
  testing::WriteBytes(model_only / "tokenizer.model", SentencePieceModel());
  auto sp_kind = Tokenizer::LoadForModel(model_only.string(), "", 32000);
  ASSERT_TRUE(sp_kind.ok()) << sp_kind.status().ToString();
  EXPECT_EQ(sp_kind->kind(), TokenizerKind::kSentencePiece);

  const fs::path empty = Dir("empty");
  auto none = Tokenizer::LoadForModel(empty.string(), "", 32000);
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find((empty / "tokenizer.json").string()), std::string::npos);
  EXPECT_NE(none.status().message().find((empty / "tokenizer.model").string()), std::string::npos);
}

TEST_F(LoadForModelTest, CheckpointFileNeedsATokenizer) {
  const fs::path checkpoint = temp_ / "model.bin";
  testing::WriteBytes(checkpoint, "not really a checkpoint");
  auto result = Tokenizer::LoadForModel(checkpoint.string(), "", 512);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(result.status().message().find("--tokenizer is required"), std::string::npos)
      << result.status().message();
  EXPECT_NE(result.status().message().find(checkpoint.string()), std::string::npos);

  // With --tokenizer, a llama2.c tokenizer beside a checkpoint file: its own fixed ids, no config files read.
  const fs::path tok = temp_ / "tok.bin";
  testing::WriteBytes(tok, Llama2cFile());
  testing::WriteBytes(temp_ / "config.json", "this would be an error if it were read");
  auto loaded = Tokenizer::LoadForModel(checkpoint.string(), tok.string(), 261);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->kind(), TokenizerKind::kLlama2c);
  EXPECT_EQ(loaded->eos(), 2);
}

TEST_F(LoadForModelTest, ALlama2cTokenizerKeepsItsIdsBesideAModelDirectory) {
  // --tokenizer names a llama2.c file for a Hugging Face directory: the directory's files describe the
  // directory's own tokenizer (their token names need not exist in this vocabulary), so they are not read.
  const fs::path dir = Dir("model");
  testing::WriteBytes(dir / "config.json", R"({"bos_token_id": 1, "eos_token_id": [2, 5]})");
  testing::WriteBytes(dir / "tokenizer_config.json", R"({"bos_token": "<s>"})");
  const fs::path tok = temp_ / "tok.bin";
  testing::WriteBytes(tok, Llama2cFile());
  auto loaded = Tokenizer::LoadForModel(dir.string(), tok.string(), 261);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->bos(), 1);
  EXPECT_EQ(loaded->eos(), 2);
  EXPECT_FALSE(loaded->IsEndOfText(5));
  EXPECT_TRUE(loaded->IsEndOfText(1));  // llama2.c ends a story at BOS
}

TEST_F(LoadForModelTest, TokenizerConfigNamesAndAddBos) {
  const fs::path dir = Dir("llama2");
  testing::WriteBytes(dir / "tokenizer.json", SentencePieceStyleJson(SpStyle::kLegacy).dump());
  testing::WriteBytes(dir / "tokenizer_config.json", R"({"add_bos_token": true, "add_eos_token": false,
      "bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
      "eos_token": {"__type": "AddedToken", "content": "</s>"}, "unk_token": "<unk>"})");
  auto loaded = Tokenizer::LoadForModel(dir.string(), "", 32000);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->bos(), 1);
  EXPECT_EQ(loaded->eos(), 2);
  EXPECT_TRUE(loaded->IsEndOfText(2));
  EXPECT_EQ(loaded->Encode("hello", true, true), (std::vector<int>{1, kSpHello, 2}));

  testing::WriteBytes(dir / "tokenizer_config.json", R"({"add_bos_token": false, "bos_token": "<s>"})");
  auto no_bos = Tokenizer::LoadForModel(dir.string(), "", 32000);
  ASSERT_TRUE(no_bos.ok()) << no_bos.status().ToString();
  EXPECT_EQ(no_bos->bos(), -1);
  EXPECT_EQ(no_bos->Encode("hello", true, false), (std::vector<int>{kSpHello}));
  // Decoding still drops the leading space after the BOS token and at the start.
  EXPECT_EQ(no_bos->Decode(1, kSpHello), "hello");

  // A tokenizer.json given with --tokenizer beside a checkpoint file: the files of its own directory.
  const fs::path checkpoint = temp_ / "model.bin";
  testing::WriteBytes(checkpoint, "x");
  auto beside = Tokenizer::LoadForModel(checkpoint.string(), (dir / "tokenizer.json").string(), 32000);
  ASSERT_TRUE(beside.ok()) << beside.status().ToString();
  EXPECT_EQ(beside->bos(), -1);
}

TEST_F(LoadForModelTest, MalformedConfigFilesAreErrors) {
  const fs::path dir = Dir("bad");
  testing::WriteBytes(dir / "tokenizer.json", SentencePieceStyleJson(SpStyle::kLegacy).dump());
  const auto expect_error = [&](const std::string& file, const std::string& text,
                                const std::string& problem) {
    testing::WriteBytes(dir / file, text);
    auto loaded = Tokenizer::LoadForModel(dir.string(), "", 32000);
    ASSERT_FALSE(loaded.ok()) << file << ": " << text;
    EXPECT_NE(loaded.status().message().find((dir / file).string()), std::string::npos)
        << loaded.status().message();
    EXPECT_NE(loaded.status().message().find(problem), std::string::npos) << loaded.status().message();
    fs::remove(dir / file);
  };
  expect_error("config.json", "{\"eos_token_id\": ", "not valid JSON");
  expect_error("config.json", R"({"eos_token_id": "two"})", "eos_token_id must be an integer");
  expect_error("config.json", R"({"eos_token_id": [2, 900]})", "eos_token_id[1] 900 is outside");
  expect_error("generation_config.json", R"({"eos_token_id": -4})", "eos_token_id -4 is outside");
  expect_error("tokenizer_config.json", R"({"bos_token": "<nope>"})",
               "bos_token \"<nope>\" is not in the vocabulary");
  expect_error("tokenizer_config.json", R"({"eos_token": 7})", "eos_token must be a string");
  expect_error("tokenizer_config.json", R"({"add_bos_token": "yes"})", "add_bos_token must be true or false");
  expect_error("tokenizer_config.json", R"([])", "not a JSON object");
}

}  // namespace
}  // namespace tandem
