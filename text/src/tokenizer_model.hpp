// The implementations behind Tokenizer (internal to tandem_common): one per file format.
//
// A loader builds a TokenizerModel, fills in its special tokens (the file's own, then the model
// directory's), and hands it to a Tokenizer as shared_ptr<const TokenizerModel>: from then on it is
// immutable and every method is thread-safe. Methods never fail: any text encodes, any id decodes.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/text/tokenizer.hpp"

namespace tandem {

struct SpecialTokens {
  int bos_token = -1;      // the BOS token, -1 when there is none
  bool add_bos = false;    // whether Encode(add_bos=true) prepends it
  int eos = -1;            // appended by Encode(add_eos=true); -1: none
  std::vector<int> stops;  // every id that ends a generation (eos among them), sorted, unique

  int bos() const { return add_bos ? bos_token : -1; }
};

class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;

  virtual TokenizerKind kind() const = 0;
  // As Tokenizer::Encode, with specials().
  virtual std::vector<int> Encode(std::string_view text, bool add_bos, bool add_eos) const = 0;
  // As Tokenizer::Decode.
  virtual std::string_view Decode(int previous, int token) const = 0;
  // As Tokenizer::DecodeAll; by default the concatenation of Decode's pieces.
  virtual std::string DecodeAll(const std::vector<int>& ids) const;
  virtual int32_t vocab_size() const = 0;
  // Throws std::out_of_range outside [0, vocab_size()).
  virtual const std::string& piece(int token) const = 0;
  // The id whose added-token content or vocabulary piece is `content` (how tokenizer_config.json names
  // tokens), -1 when none.
  virtual int TokenId(std::string_view content) const = 0;
  // The merge score of a llama2.c vocabulary's token; nullopt for the other kinds.
  virtual std::optional<float> score(int /*token*/) const { return std::nullopt; }

  const SpecialTokens& specials() const { return specials_; }
  // Only while loading, before the model is shared.
  void set_specials(SpecialTokens specials) { specials_ = std::move(specials); }

 private:
  SpecialTokens specials_;
};

// Each loader reads `bytes` (the whole file; `path` names it in errors) and sets the file's own specials.
// `vocab_size` is the model's: llama2.c needs exactly that many tokens, the others at most that many.
Result<std::unique_ptr<TokenizerModel>> LoadLlama2cTokenizer(const std::string& path, std::string_view bytes,
                                                             int32_t vocab_size);
Result<std::unique_ptr<TokenizerModel>> LoadSentencePieceTokenizer(const std::string& path,
                                                                   std::string_view bytes,
                                                                   int32_t vocab_size);
Result<std::unique_ptr<TokenizerModel>> LoadHfTokenizerJson(const std::string& path, std::string_view bytes,
                                                            int32_t vocab_size);

}  // namespace tandem
