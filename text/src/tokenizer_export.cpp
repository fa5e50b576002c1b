// ExportHfTokenizer: a llama2.c vocabulary as the tokenizer.json Llama 2 ships (see tokenizer.hpp).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>

#include "tandem/text/tokenizer.hpp"
#include "unicode.hpp"

namespace tandem {
namespace {

using nlohmann::json;

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // ▁: SentencePiece's, and tokenizer.json's, space

// llama2.c's export decorated the specials ("\n<s>\n") and turned ▁ into spaces; tokenizer.json has them
// as SentencePiece wrote them.
std::string HfPiece(int id, const std::string& piece) {
  switch (id) {
    case Tokenizer::kUnknown:
      return "<unk>";
    case Tokenizer::kBos:
      return "<s>";
    case Tokenizer::kEos:
      return "</s>";
  }
  std::string out;
  for (char c : piece) {
    if (c == ' ') {
      out += kSpaceMarker;
    } else {
      out += c;
    }
  }
  return out;
}

json SpecialToken(int id, const std::string& content) {
  return {{"id", id},        {"content", content},  {"single_word", false}, {"lstrip", false},
          {"rstrip", false}, {"normalized", false}, {"special", true}};
}

}  // namespace

Result<HfTokenizerFiles> ExportHfTokenizer(const Tokenizer& tokenizer, int max_positions) {
  if (tokenizer.kind() != TokenizerKind::kLlama2c) {
    return InvalidArgument("only a llama2.c tokenizer can be exported as tokenizer.json");
  }
  const int vocab_size = tokenizer.vocab_size();
  // The vocabulary, lowest id first on duplicate pieces (as llama2.c's lookup resolves them).
  json vocab = json::object();
  std::map<std::string, int> ids;
  for (int id = 0; id < vocab_size; ++id) {
    const std::string piece = HfPiece(id, tokenizer.piece(id));
    if (ids.emplace(piece, id).second) vocab[piece] = id;
  }

  // Every split of a token into two tokens at a code point boundary, strongest union first.
  struct Merge {
    float score;
    int id;
    std::string left, right;
  };
  std::vector<Merge> merges;
  for (const auto& [piece, id] : ids) {
    if (id <= Tokenizer::kEos || unicode::ParseBytePiece(piece) >= 0) continue;
    for (size_t at = unicode::SymbolLength(piece, 0); at < piece.size();
         at += unicode::SymbolLength(piece, at)) {
      std::string left = piece.substr(0, at), right = piece.substr(at);
      const auto l = ids.find(left), r = ids.find(right);
      if (l == ids.end() || r == ids.end() || l->second <= Tokenizer::kEos || r->second <= Tokenizer::kEos) {
        continue;
      }
      merges.push_back({*tokenizer.score(id), id, std::move(left), std::move(right)});
    }
  }
  std::stable_sort(merges.begin(), merges.end(), [](const Merge& a, const Merge& b) {
    return a.score != b.score ? a.score > b.score : a.id < b.id;
  });
  json merge_list = json::array();
  for (const Merge& merge : merges) merge_list.push_back({merge.left, merge.right});

  const std::string space(kSpaceMarker);
  const json document = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens",
       {SpecialToken(Tokenizer::kUnknown, "<unk>"), SpecialToken(Tokenizer::kBos, "<s>"),
        SpecialToken(Tokenizer::kEos, "</s>")}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", space}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", space}}}}}},
      {"pre_tokenizer", nullptr},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"SpecialToken", {{"id", "<s>"}, {"type_id", 1}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {Tokenizer::kBos}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Replace"}, {"pattern", {{"String", space}}}, {"content", " "}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", merge_list}}},
  };
  const json config = {{"tokenizer_class", "LlamaTokenizerFast"},
                       {"add_bos_token", true},
                       {"add_eos_token", false},
                       {"bos_token", "<s>"},
                       {"eos_token", "</s>"},
                       {"unk_token", "<unk>"},
                       {"model_max_length", max_positions},
                       {"clean_up_tokenization_spaces", false}};
  return HfTokenizerFiles{document.dump(2) + "\n", config.dump(2) + "\n"};
}

}  // namespace tandem
