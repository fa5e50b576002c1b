// Hugging Face tokenizer.json with a BPE model: added tokens, normalizer, pre-tokenizer and decoder (in
// hf_pipeline.cpp), and the BPE model itself, ported from the tokenizers library (models/bpe).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <queue>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "added_tokens.hpp"
#include "hf_pipeline.hpp"
#include "tokenizer_model.hpp"
#include "unicode.hpp"

namespace tandem {
namespace {

using hf::JsonFields;
using nlohmann::json;

// tokenizer.json files of real models are a few to ~20 MB; this keeps a hostile one from driving a parse
// of gigabytes.
constexpr size_t kMaxFileBytes = size_t{256} << 20;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringIdMap = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

uint64_t PairKey(int left, int right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

struct Merge {
  int rank;
  int id;  // the merged token
};

// A symbol of a word during merging, in a doubly linked list over the word's initial symbols.
struct Symbol {
  int id;
  int prev;
  int next;
  size_t length;  // bytes of the word it covers; 0 once merged into its left neighbour
};

// Immutable after LoadHfTokenizerJson.
class HfBpeTokenizer final : public TokenizerModel {
 public:
  TokenizerKind kind() const override { return kind_; }
  std::vector<int> Encode(std::string_view text, bool add_bos, bool add_eos) const override;
  std::string_view Decode(int previous, int token) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int token) const override { return pieces_.at(token); }
  int TokenId(std::string_view content) const override {
    if (const auto it = added_ids_.find(content); it != added_ids_.end()) return it->second;
    if (const auto it = vocab_.find(content); it != vocab_.end()) return it->second;
    return -1;
  }

 private:
  friend class HfTokenizerParser;

  void EncodeNormalized(std::string_view text, bool at_start, std::vector<int>& out) const;
  void EncodeWord(std::string_view word, std::vector<int>& out) const;

  TokenizerKind kind_ = TokenizerKind::kHfBpe;
  AddedTokenMatcher raw_added_;         // added tokens with normalized: false, matched on the input
  AddedTokenMatcher normalized_added_;  // normalized: true, matched on the normalized text
  hf::Normalizer normalizer_;
  hf::PreTokenizer pre_tokenizer_;

  StringIdMap vocab_;
  std::unordered_map<uint64_t, Merge> merges_;  // (left id, right id) -> merge
  int unk_id_ = -1;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::vector<int> byte_ids_ = std::vector<int>(256, -1);  // id of "<0xAB>", -1 if not in the vocabulary

  std::vector<std::string> pieces_;   // by id: vocabulary string or added content; "" in gaps
  std::vector<std::string> decoded_;  // by id: the bytes the decoder makes of it
  std::unordered_map<int, std::string> decoded_first_;  // where a token starting the text decodes otherwise
  StringIdMap added_ids_;                               // added content -> id
};

std::vector<int> HfBpeTokenizer::Encode(std::string_view text, bool add_bos, bool add_eos) const {
  std::vector<int> tokens;
  tokens.reserve(text.size() / 2 + 2);
  if (add_bos && specials().bos() >= 0) tokens.push_back(specials().bos());
  for (const AddedTokenMatcher::Segment& segment : raw_added_.Split(text)) {
    if (segment.id >= 0) {
      tokens.push_back(segment.id);
      continue;
    }
    const std::string normalized = normalizer_.Apply(segment.text);
    for (const AddedTokenMatcher::Segment& part : normalized_added_.Split(normalized)) {
      if (part.id >= 0) {
        tokens.push_back(part.id);
      } else {
        EncodeNormalized(part.text, segment.offset == 0 && part.offset == 0, tokens);
      }
    }
  }
  if (add_eos && specials().eos >= 0) tokens.push_back(specials().eos);
  return tokens;
}

void HfBpeTokenizer::EncodeNormalized(std::string_view text, bool at_start, std::vector<int>& out) const {
  std::vector<std::string> words;
  pre_tokenizer_.Apply(text, at_start, words);
  for (const std::string& word : words) EncodeWord(word, out);
}

// The tokenizers library's BPE::merge_word and Word::merge_all without dropout: the word's characters
// (or their <0xAB> byte tokens, or the unknown token), then the pair of lowest merge rank, leftmost
// first, merged until no pair has a merge.
void HfBpeTokenizer::EncodeWord(std::string_view word, std::vector<int>& out) const {
  if (ignore_merges_) {
    if (const auto it = vocab_.find(word); it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&](int id, size_t length) {
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({id, index - 1, index + 1, length});
  };
  int unk_length = 0;  // bytes of a pending (possibly fused) unknown token; 0: none
  const auto flush_unk = [&] {
    if (unk_length > 0) add(unk_id_, static_cast<size_t>(unk_length));
    unk_length = 0;
  };
  for (size_t i = 0; i < word.size();) {
    const size_t length = unicode::SymbolLength(word, i);
    const std::string_view character = word.substr(i, length);
    i += length;
    if (const auto it = vocab_.find(character); it != vocab_.end()) {
      flush_unk();
      add(it->second, length);
      continue;
    }
    if (byte_fallback_ && std::all_of(character.begin(), character.end(), [&](char c) {
          return byte_ids_[static_cast<unsigned char>(c)] >= 0;
        })) {
      // As the library: byte tokens go in without ending a pending unknown token.
      for (char c : character) add(byte_ids_[static_cast<unsigned char>(c)], 1);
      continue;
    }
    if (unk_id_ < 0) continue;  // no unknown token: the character is dropped, as in the library
    if (unk_length > 0 && !fuse_unk_) flush_unk();
    unk_length += static_cast<int>(length);
  }
  flush_unk();
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    int pos;
    int rank;
    int id;
  };
  const auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank != b.rank ? a.rank > b.rank : a.pos > b.pos;
  };
  std::priority_queue<Candidate, std::vector<Candidate>, decltype(later)> queue(later);
  const auto find = [&](int left, int right) -> const Merge* {
    const auto it = merges_.find(PairKey(left, right));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const Merge* merge = find(symbols[i].id, symbols[i + 1].id)) {
      queue.push({static_cast<int>(i), merge->rank, merge->id});
    }
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& current = symbols[static_cast<size_t>(top.pos)];
    if (current.length == 0 || current.next < 0) continue;
    const Symbol right = symbols[static_cast<size_t>(current.next)];
    // Skip entries made stale by an earlier merge.
    const Merge* merge = find(current.id, right.id);
    if (merge == nullptr || merge->id != top.id) continue;
    const int right_index = current.next;
    current.id = top.id;
    current.length += right.length;
    current.next = right.next;
    symbols[static_cast<size_t>(right_index)].length = 0;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;
    if (current.prev >= 0) {
      if (const Merge* left = find(symbols[static_cast<size_t>(current.prev)].id, current.id)) {
        queue.push({current.prev, left->rank, left->id});
      }
    }
    if (current.next >= 0) {
      if (const Merge* next = find(current.id, symbols[static_cast<size_t>(current.next)].id)) {
        queue.push({top.pos, next->rank, next->id});
      }
    }
  }
  for (const Symbol& symbol : symbols) {
    if (symbol.length != 0) out.push_back(symbol.id);
  }
}

std::string_view HfBpeTokenizer::Decode(int previous, int token) const {
  if (token < 0 || token >= vocab_size()) return {};
  if (previous < 0 || previous == specials().bos_token) {
    if (const auto it = decoded_first_.find(token); it != decoded_first_.end()) return it->second;
  }
  return decoded_[token];
}

// Reads tokenizer.json into an HfBpeTokenizer; every error names the file and the component.
class HfTokenizerParser {
 public:
  HfTokenizerParser(const std::string& path, int32_t vocab_size) : path_(path), vocab_size_(vocab_size) {}

  Result<std::unique_ptr<TokenizerModel>> Parse(std::string_view bytes) {
    if (bytes.size() > kMaxFileBytes) {
      return Error("is " + std::to_string(bytes.size()) + " bytes, more than the limit of " +
                   std::to_string(kMaxFileBytes))
          .WithContext(path_);
    }
    json doc;
    try {
      doc = json::parse(bytes);
    } catch (const json::exception& e) {
      return Error(std::string("is not valid JSON: ") + e.what()).WithContext(path_);
    }
    if (!doc.is_object()) return Error("is not a JSON object").WithContext(path_);
    model_ = std::make_unique<HfBpeTokenizer>();
    Status status;
    // Type errors deep in nlohmann are bugs of this parser's checks, not of the file: still an error.
    try {
      status = ParseDocument(doc);
    } catch (const json::exception& e) {
      status = Error(std::string("unexpected JSON content: ") + e.what());
    }
    if (!status.ok()) return status.WithContext(path_);
    return std::unique_ptr<TokenizerModel>(std::move(model_));
  }

 private:
  // Errors below name the component; Parse puts the file's path in front of them.
  static Status Error(const std::string& problem) { return InvalidArgument(problem); }

  Status ParseDocument(const json& doc) {
    const JsonFields top(doc, "tokenizer.json");
    if (!top.Has("model") || !doc.at("model").is_object()) return Error("model: missing or not an object");
    TANDEM_RETURN_IF_ERROR(ParseModel(doc.at("model")));
    if (top.Has("added_tokens")) TANDEM_RETURN_IF_ERROR(ParseAddedTokens(doc.at("added_tokens")));
    const auto component = [&](const char* key) -> const json& {
      static const json kNull;
      const auto it = doc.find(key);
      return it == doc.end() ? kNull : *it;
    };
    auto normalizer = hf::Normalizer::Parse(component("normalizer"), "normalizer");
    if (!normalizer.ok()) return normalizer.status();
    model_->normalizer_ = std::move(*normalizer);
    auto pre_tokenizer = hf::PreTokenizer::Parse(component("pre_tokenizer"), "pre_tokenizer");
    if (!pre_tokenizer.ok()) return pre_tokenizer.status();
    model_->pre_tokenizer_ = std::move(*pre_tokenizer);
    model_->kind_ =
        model_->pre_tokenizer_.byte_level() ? TokenizerKind::kHfByteLevelBpe : TokenizerKind::kHfBpe;
    auto decoder = hf::Decoder::Parse(component("decoder"), "decoder");
    if (!decoder.ok()) return decoder.status();
    TANDEM_RETURN_IF_ERROR(BuildTables(*decoder));
    return ParsePostProcessor(component("post_processor"));
  }

  Status ParseModel(const json& spec) {
    const JsonFields fields(spec, "model");
    // Files of old tokenizers versions have no "type"; the library then recognises BPE by its merges.
    TANDEM_ASSIGN_OR_RETURN(const std::string type,
                            fields.StringOr("type", fields.Has("merges") ? "BPE" : "(none)"));
    if (type != "BPE") return Error("model: type \"" + type + "\" is not supported (only BPE)");
    if (fields.Has("dropout")) {
      const json& dropout = spec.at("dropout");
      if (!dropout.is_number() || dropout.get<double>() != 0.0) {
        return Error("model.dropout: only null or 0 is supported (dropout makes encoding random)");
      }
    }
    for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
      auto value = fields.StringOr(key, "");
      if (!value.ok()) return value.status();
      if (!value->empty())
        return Error(std::string("model.") + key + ": \"" + *value + "\" is not supported");
    }
    auto fuse_unk = fields.BoolOr("fuse_unk", false);
    auto byte_fallback = fields.BoolOr("byte_fallback", false);
    auto ignore_merges = fields.BoolOr("ignore_merges", false);
    for (const auto* flag : {&fuse_unk, &byte_fallback, &ignore_merges}) {
      if (!flag->ok()) return flag->status();
    }
    model_->fuse_unk_ = *fuse_unk;
    model_->byte_fallback_ = *byte_fallback;
    model_->ignore_merges_ = *ignore_merges;

    if (!fields.Has("vocab") || !spec.at("vocab").is_object())
      return Error("model.vocab: missing or not an object");
    const json& vocab = spec.at("vocab");
    if (vocab.size() > static_cast<size_t>(vocab_size_)) {
      return Error("model.vocab has " + std::to_string(vocab.size()) +
                   " tokens, more than the model's vocab_size " + std::to_string(vocab_size_));
    }
    model_->vocab_.reserve(vocab.size());
    for (const auto& [token, value] : vocab.items()) {
      TANDEM_ASSIGN_OR_RETURN(const int id, CheckId(value, "model.vocab[\"" + token + "\"]"));
      TANDEM_RETURN_IF_ERROR(SetPiece(id, token, "model.vocab"));
      model_->vocab_.emplace(token, id);
    }

    TANDEM_ASSIGN_OR_RETURN(const std::string unk, fields.StringOr("unk_token", ""));
    if (!unk.empty()) {
      const auto it = model_->vocab_.find(unk);
      if (it == model_->vocab_.end())
        return Error("model.unk_token \"" + unk + "\" is not in the vocabulary");
      model_->unk_id_ = it->second;
    }
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (const auto it = model_->vocab_.find(std::string_view(name)); it != model_->vocab_.end()) {
        model_->byte_ids_[static_cast<size_t>(b)] = it->second;
      }
    }
    return ParseMerges(fields.Has("merges") ? spec.at("merges") : json::array());
  }

  // Merges are "left right" strings (split at the first space) or ["left", "right"] pairs; the rank is the
  // position. A merge whose parts or result are not in the vocabulary is refused, as by the library.
  Status ParseMerges(const json& merges) {
    if (!merges.is_array()) return Error("model.merges: must be an array");
    model_->merges_.reserve(merges.size());
    std::string left;
    std::string right;
    for (size_t rank = 0; rank < merges.size(); ++rank) {
      const json& merge = merges[rank];
      const std::string where = "model.merges[" + std::to_string(rank) + "]";
      if (merge.is_string()) {
        const std::string& text = merge.get_ref<const std::string&>();
        const size_t space = text.find(' ');
        if (space == std::string::npos)
          return Error(where + " \"" + text + "\" is not two tokens separated by a space");
        left = text.substr(0, space);
        right = text.substr(space + 1);
      } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
        left = merge[0].get<std::string>();
        right = merge[1].get<std::string>();
      } else {
        return Error(where + ": must be \"left right\" or [\"left\", \"right\"]");
      }
      const auto find = [&](const std::string& token) {
        const auto it = model_->vocab_.find(token);
        return it == model_->vocab_.end() ? -1 : it->second;
      };
      const std::string merged = left + right;
      const int left_id = find(left);
      const int right_id = find(right);
      const int merged_id = find(merged);
      const std::string* missing = left_id < 0     ? &left
                                   : right_id < 0  ? &right
                                   : merged_id < 0 ? &merged
                                                   : nullptr;
      if (missing != nullptr) {
        return Error(where + " (\"" + left + "\", \"" + right + "\"): \"" + *missing +
                     "\" is not in the vocabulary");
      }
      // A repeated pair takes its last rank, as the library's map does.
      model_->merges_[PairKey(left_id, right_id)] = Merge{static_cast<int>(rank), merged_id};
    }
    return Status::Ok();
  }

  Status ParseAddedTokens(const json& list) {
    if (!list.is_array()) return Error("added_tokens: must be an array");
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = "added_tokens[" + std::to_string(i) + "]";
      if (!list[i].is_object()) return Error(where + ": must be an object");
      const JsonFields fields(list[i], where);
      AddedTokenSpec token;
      auto id = fields.Has("id") ? CheckId(list[i].at("id"), where + ".id")
                                 : Result<int>(Error(where + ".id: is missing"));
      if (!id.ok()) return id.status();
      token.id = *id;
      auto content = fields.String("content");
      auto single_word = fields.BoolOr("single_word", false);
      auto lstrip = fields.BoolOr("lstrip", false);
      auto rstrip = fields.BoolOr("rstrip", false);
      auto special = fields.BoolOr("special", false);
      if (!content.ok()) return content.status();
      for (const auto* flag : {&single_word, &lstrip, &rstrip, &special}) {
        if (!flag->ok()) return flag->status();
      }
      // The library's default: special tokens match the raw text, others the normalized text.
      auto normalized = fields.BoolOr("normalized", !*special);
      if (!normalized.ok()) return normalized.status();
      if (*single_word) return Error(where + " (\"" + *content + "\"): single_word true is not supported");
      if (content->empty()) return Error(where + ".content: is empty");
      token.content = std::move(*content);
      token.lstrip = *lstrip;
      token.rstrip = *rstrip;
      TANDEM_RETURN_IF_ERROR(SetPiece(token.id, token.content, "added_tokens", /*added=*/true));
      model_->added_ids_.emplace(token.content, token.id);
      (*normalized ? normalized_tokens_ : raw_tokens_).push_back(std::move(token));
    }
    return Status::Ok();
  }

  Result<int> CheckId(const json& value, const std::string& where) const {
    if (!value.is_number_integer()) return Error(where + ": the id must be an integer");
    const int64_t id = value.is_number_unsigned()
                           ? static_cast<int64_t>(std::min<uint64_t>(value.get<uint64_t>(), INT64_MAX))
                           : value.get<int64_t>();
    if (id < 0) return Error(where + ": id " + std::to_string(id) + " is negative");
    if (id >= vocab_size_) {
      return Error(where + ": id " + std::to_string(id) + " is outside the model's vocabulary of " +
                   std::to_string(vocab_size_) + " tokens");
    }
    return static_cast<int>(id);
  }

  // Records `text` as the piece of `id`; an added token may name a vocabulary id again (Llama 2's <s>).
  Status SetPiece(int id, const std::string& text, const char* where, bool added = false) {
    auto& pieces = model_->pieces_;
    if (static_cast<size_t>(id) >= pieces.size()) {
      pieces.resize(static_cast<size_t>(id) + 1);
      is_set_.resize(static_cast<size_t>(id) + 1, 0);
      is_added_.resize(static_cast<size_t>(id) + 1, 0);
    }
    if (is_set_[id] && !added) {
      return Error(std::string(where) + ": id " + std::to_string(id) + " is given to both \"" + pieces[id] +
                   "\" and \"" + text + "\"");
    }
    if (is_added_[id]) {
      return Error(std::string(where) + ": id " + std::to_string(id) + " is given to two added tokens");
    }
    pieces[id] = text;
    is_set_[id] = 1;
    if (added) is_added_[id] = 1;
    return Status::Ok();
  }

  Status BuildTables(const hf::Decoder& decoder) {
    HfBpeTokenizer& model = *model_;
    // The normalized added tokens are matched as the normalizer writes them.
    for (AddedTokenSpec& token : normalized_tokens_) token.content = model.normalizer_.Apply(token.content);
    model.raw_added_ = AddedTokenMatcher(std::move(raw_tokens_));
    model.normalized_added_ = AddedTokenMatcher(std::move(normalized_tokens_));
    model.decoded_.resize(model.pieces_.size());
    for (size_t id = 0; id < model.pieces_.size(); ++id) {
      if (!is_set_[id]) continue;
      // Added tokens decode to their content.
      if (is_added_[id]) {
        model.decoded_[id] = model.pieces_[id];
        continue;
      }
      model.decoded_[id] = decoder.Decode(model.pieces_[id], /*first=*/false);
      std::string first = decoder.Decode(model.pieces_[id], /*first=*/true);
      if (first != model.decoded_[id]) model.decoded_first_.emplace(static_cast<int>(id), std::move(first));
    }
    return Status::Ok();
  }

  // The post-processor says whether tokenizer(text) puts a BOS first: the special token of a
  // TemplateProcessing "single" template before $A. Tokens after $A (an EOS some templates append) are
  // left to Encode's add_eos.
  Status ParsePostProcessor(const json& spec) {
    SpecialTokens specials;
    TANDEM_RETURN_IF_ERROR(FindTemplateBos(spec, "post_processor", specials));
    model_->set_specials(std::move(specials));
    return Status::Ok();
  }

  Status FindTemplateBos(const json& spec, const std::string& where, SpecialTokens& specials) const {
    if (spec.is_null()) return Status::Ok();
    if (!spec.is_object()) return Error(where + ": must be an object or null");
    const JsonFields fields(spec, where);
    auto type = fields.String("type");
    if (!type.ok()) return type.status();
    if (*type == "ByteLevel") return Status::Ok();  // offsets only
    if (*type == "Sequence") {
      if (!fields.Has("processors") || !spec.at("processors").is_array()) {
        return Error(where + ".processors: must be an array");
      }
      const json& list = spec.at("processors");
      for (size_t i = 0; i < list.size(); ++i) {
        TANDEM_RETURN_IF_ERROR(
            FindTemplateBos(list[i], where + ".processors[" + std::to_string(i) + "]", specials));
      }
      return Status::Ok();
    }
    if (*type != "TemplateProcessing") return Error(where + ": type \"" + *type + "\" is not supported");
    if (!fields.Has("single") || !spec.at("single").is_array())
      return Error(where + ".single: must be an array");
    std::vector<int> before;
    for (const json& item : spec.at("single")) {
      if (!item.is_object()) return Error(where + ".single: items must be objects");
      if (item.contains("Sequence")) break;
      if (!item.contains("SpecialToken") || !item.at("SpecialToken").is_object()) {
        return Error(where + ".single: items must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
      }
      auto name = JsonFields(item.at("SpecialToken"), where + ".single").String("id");
      if (!name.ok()) return name.status();
      TANDEM_ASSIGN_OR_RETURN(const int id, TemplateTokenId(spec, where, *name));
      before.push_back(id);
    }
    if (before.size() > 1) {
      return Error(where + ": a template with " + std::to_string(before.size()) +
                   " special tokens before the text is not supported");
    }
    if (before.size() == 1) {
      specials.bos_token = before[0];
      specials.add_bos = true;
    }
    return Status::Ok();
  }

  // The single id of the template's special token `name`.
  Result<int> TemplateTokenId(const json& spec, const std::string& where, const std::string& name) const {
    const std::string field = where + ".special_tokens[\"" + name + "\"]";
    const auto tokens = spec.find("special_tokens");
    if (tokens == spec.end() || !tokens->is_object() || !tokens->contains(name))
      return Error(field + ": missing");
    const json& entry = tokens->at(name);
    if (!entry.is_object() || !entry.contains("ids") || !entry.at("ids").is_array() ||
        entry.at("ids").size() != 1) {
      return Error(field + ".ids: must hold exactly one id");
    }
    TANDEM_ASSIGN_OR_RETURN(const int id, CheckId(entry.at("ids")[0], field + ".ids[0]"));
    if (static_cast<size_t>(id) >= is_set_.size() || !is_set_[id])
      return Error(field + ": id " + std::to_string(id) + " is not a token");
    return id;
  }

  std::string path_;
  int32_t vocab_size_;
  std::unique_ptr<HfBpeTokenizer> model_;
  std::vector<AddedTokenSpec> raw_tokens_;
  std::vector<AddedTokenSpec> normalized_tokens_;
  std::vector<char> is_set_;    // by id: has a piece
  std::vector<char> is_added_;  // by id: the piece is an added token's content
};

}  // namespace

Result<std::unique_ptr<TokenizerModel>> LoadHfTokenizerJson(const std::string& path, std::string_view bytes,
                                                            int32_t vocab_size) {
  if (vocab_size <= 0) {
    return InvalidArgument(path + ": vocab_size " + std::to_string(vocab_size) + " must be positive");
  }
  return HfTokenizerParser(path, vocab_size).Parse(bytes);
}

}  // namespace tandem
