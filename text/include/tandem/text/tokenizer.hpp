// Tokenizers: text <-> token ids for the models Tandem runs, in four kinds.
//
// - llama2.c tokenizer.bin / tok512.bin: int32 max_token_length, then for each of the model's vocab_size
//   tokens: float32 score, int32 length, `length` bytes. The file does not store the vocabulary size: it
//   is the model's, and the file must hold exactly that many tokens. Encode is llama2.c's encode().
// - SentencePiece tokenizer.model (a ModelProto), run by libsentencepiece (loaded at run time; see
//   sentencepiece_tokenizer.cpp for why it is not linked).
// - Hugging Face tokenizer.json with a "BPE" model in the SentencePiece style (Llama 2, Mistral): the
//   normalizer Prepend("▁") + Replace(" ", "▁") or the Metaspace pre-tokenizer, merges by rank, byte
//   fallback to "<0xAB>" tokens; decoded by turning ▁ back into spaces.
// - Hugging Face tokenizer.json byte-level BPE (GPT-2, Llama 3, Qwen2): the pre-tokenizer's Split regex
//   (PCRE2), the ByteLevel byte-to-unicode map, merges by rank; decoded by the inverse map. Qwen2's NFC
//   normalizer is implemented (Unicode 14 tables).
// A tokenizer.json whose model, normalizer, pre-tokenizer, post-processor or decoder is of a type (or has a
// setting) not implemented here is refused with an error naming the file and the component; nothing is
// ever tokenized differently from Hugging Face without saying so. Refused settings include "single_word"
// added tokens, BPE dropout, continuing_subword_prefix / end_of_word_suffix, and a null decoder. Ignored, as
// transformers ignores them: the file's truncation and padding, and special tokens a post-processor
// template appends after the text (Encode's add_eos decides). Decoding differs from transformers' decode()
// on purpose in two ways: its clean_up_tokenization_spaces (" ." -> ".") is not applied, and the leading
// space is dropped after a BOS wherever it stands (as with skip_special_tokens at the start).
//
// Added tokens in text: as Hugging Face's tokenizer(text), Encode splits the text on the contents of the
// tokenizer.json "added_tokens" (special or not; the longest match at the leftmost position wins, honouring
// lstrip/rstrip) and encodes the pieces between them, so "<|begin_of_text|>Hi" gives the special id followed
// by the ids of "Hi". As there, tokens marked "normalized" are matched in the normalized text, as the
// normalizer writes their content. For tokenizer.model the control and unknown pieces ("<s>", "</s>",
// "<unk>") are matched the same way, as transformers' LlamaTokenizer does. The llama2.c kind matches
// nothing (llama2.c does not).
//
// Invalid UTF-8 given to Encode never fails: byte-level BPE encodes the raw bytes like any others (they fall
// between regex matches); SentencePiece-style BPE with byte fallback encodes each invalid byte as its
// "<0xAB>" token (without byte fallback, as the unknown token); the llama2.c kind groups bytes as llama2.c
// does; libsentencepiece replaces them as it does (U+FFFD, then its byte fallback or <unk>).
//
// BOS, EOS and stops: bos() is the id Encode(..., add_bos=true, ...) prepends, -1 when the tokenizer adds
// none (Qwen2); eos() the id add_eos appends (-1: none); IsEndOfText() is true for eos() and every other
// stop id of the model (generation_config.json's eos_token_id list, Llama 3's <|eot_id|>). For llama2.c:
// bos 1, eos 2, and both 1 and 2 end the text (llama2.c ends a story at BOS). LoadForModel reads them from
// the model directory (LoadFile from the file alone): tokenizer_config.json bos_token / eos_token (a string
// or {"content": ...}, looked up in the vocabulary; null: none) and add_bos_token; else config.json
// bos_token_id / eos_token_id (an int, a list, or null); else generation_config.json; else the tokenizer
// file's own (tokenizer.json's post-processor template, tokenizer.model's bos/eos pieces). Every
// eos_token_id of config.json and generation_config.json is a stop.
//
// Tokenizer is a cheap-to-copy handle on an immutable implementation: copies share it, every method is
// const and thread-safe, and the string_views Decode returns stay valid as long as any copy is alive.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

class TokenizerModel;  // text/src/tokenizer_model.hpp

enum class TokenizerKind {
  kLlama2c,        // tokenizer.bin
  kSentencePiece,  // tokenizer.model through libsentencepiece
  kHfBpe,          // tokenizer.json BPE, SentencePiece style (▁ for spaces, byte fallback)
  kHfByteLevelBpe  // tokenizer.json BPE with the ByteLevel pre-tokenizer
};

// "llama2.c", "sentencepiece", "tokenizer.json BPE", "tokenizer.json byte-level BPE".
std::string_view TokenizerKindName(TokenizerKind kind);

class Tokenizer {
 public:
  // The llama2.c format's fixed ids. New code asks bos()/eos()/IsEndOfText(), which hold for every kind.
  static constexpr int kUnknown = 0;
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Reads the llama2.c tokenizer `path`, expecting exactly `vocab_size` tokens. A truncated file, a negative
  // or oversized length, a token longer than max_token_length, or trailing bytes are refused with an error
  // naming the file.
  static Result<Tokenizer> Load(const std::string& path, int32_t vocab_size);

  // Reads a tokenizer file of any kind, told apart by content: a JSON object (or a .json name) is a
  // tokenizer.json, a SentencePiece ModelProto (or a .model name) a tokenizer.model, anything else a
  // llama2.c tokenizer (which must then hold exactly `vocab_size` tokens). BOS/EOS come from the file alone.
  // A Hugging Face vocabulary larger than `vocab_size` (the model's) is an error; a smaller one is allowed
  // (models pad their embedding matrix).
  static Result<Tokenizer> LoadFile(const std::string& path, int32_t vocab_size);

  // The tokenizer of a model, as the --model and --tokenizer flags give them:
  // - tokenizer_path empty, model_path a directory: <dir>/tokenizer.json, else <dir>/tokenizer.model, else
  //   NOT_FOUND naming both;
  // - tokenizer_path empty, model_path a file (a llama2.c checkpoint): INVALID_ARGUMENT, --tokenizer is
  //   required;
  // - tokenizer_path given: LoadFile(tokenizer_path).
  // BOS/EOS/stops of a tokenizer.json or tokenizer.model then come from the files of model_path when it is
  // a directory, else of the tokenizer's own directory, as described above (a llama2.c tokenizer keeps its
  // fixed ids); a malformed config file, or a token id or name there that is not in the vocabulary, is an
  // error naming the file and the field.
  static Result<Tokenizer> LoadForModel(const std::string& model_path, const std::string& tokenizer_path,
                                        int32_t vocab_size);

  // Token ids of `text`: bos() first when add_bos and there is one, eos() last when add_eos and there is
  // one. Every id is < vocab_size(). For llama2.c, exactly llama2.c's encode(): a leading " " piece when
  // `text` is not empty, one piece per UTF-8 code point (byte fallback to ids 3..258), then greedy merges
  // of the adjacent pair with the best score (BOS takes part).
  std::vector<int> Encode(std::string_view text, bool add_bos, bool add_eos) const;

  // The text of `token` following `previous` (-1 for "nothing before it"), as a stream prints it: the
  // concatenation of Decode(ids[i-1], ids[i]) is the decoded text. Byte-level BPE tokens may be partial
  // UTF-8 sequences and byte-fallback tokens single raw bytes: the bytes are returned as they are, callers
  // concatenate. The first token of a text (after the BOS token, or after -1) decodes as the decoder
  // treats the first token: Hugging Face's Strip and Metaspace decoders drop its leading space, and so
  // does tokenizer.model; llama2.c drops it after BOS only (its decode()); byte-level BPE keeps it. Added
  // and special tokens decode to their content ("<|eot_id|>"). An id outside [0, vocab_size()) decodes to
  // "". The view stays valid as long as the Tokenizer (any copy).
  std::string_view Decode(int previous, int token) const;

  // The text of ids[1..] following ids[0] (ids usually start with BOS): Decode's pieces concatenated. For
  // llama2.c as llama2.c prints them (raw single bytes that are neither printable nor whitespace skipped).
  std::string DecodeAll(const std::vector<int>& ids) const;

  // The text of all of `ids` (a leading bos() is context only): Decode's pieces from -1 on, nothing
  // skipped, so DecodeText(Encode(text, true, false)) gives back the text for every kind (for llama2.c up
  // to its " " prefix; for normalizing tokenizers the normalized text). Unlike DecodeAll it does not drop
  // ids[0] when there is no BOS (Qwen2, GPT-2).
  std::string DecodeText(const std::vector<int>& ids) const;

  // The token ids the tokenizer knows: the largest id + 1 (Hugging Face vocabularies may have gaps).
  int32_t vocab_size() const;
  // The token's string as the file stores it ("▁world", "Ġworld", "<0x0A>", an added token's content);
  // "" for an id in a gap. Throws std::out_of_range outside [0, vocab_size()).
  const std::string& piece(int token) const;

  int bos() const;
  int eos() const;
  bool IsEndOfText(int token) const;
  // Every id IsEndOfText is true for, ascending (for GenerateOptions::stop_tokens).
  const std::vector<int>& EndOfTextIds() const;
  TokenizerKind kind() const;
  // A llama2.c token's merge score (Encode merges the adjacent pair whose union scores highest); nullopt
  // for the other kinds. Throws std::out_of_range outside [0, vocab_size()).
  std::optional<float> score(int token) const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerModel> model);

  std::shared_ptr<const TokenizerModel> model_;
};

// tokenizer.json (a SentencePiece-style BPE with byte fallback, as Llama 2's) and tokenizer_config.json
// for a llama2.c `tokenizer`, for tandem convert. The merges are every pair of tokens whose union is a
// token, ranked by that token's score: Hugging Face's BPE then merges in llama2.c's order. `max_positions`
// is the model's context. Fails for other kinds.
struct HfTokenizerFiles {
  std::string tokenizer_json;
  std::string tokenizer_config_json;
};
Result<HfTokenizerFiles> ExportHfTokenizer(const Tokenizer& tokenizer, int max_positions);

}  // namespace tandem
