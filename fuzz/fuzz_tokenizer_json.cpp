// Fuzz target: Tokenizer::LoadFile on an arbitrary tokenizer.json, then Encode/Decode with whatever loaded.
// Input: text length u8, the text, then the tokenizer.json. Inputs whose file part does not start with
// '{' are skipped: they would go to the llama2.c loader (fuzz_tokenizer) or libsentencepiece.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "tandem/text/tokenizer.hpp"

namespace {

using tandem::Tokenizer;

// The model's vocab_size: the tokenizer may have fewer tokens, never more.
constexpr int32_t kModelVocab = 4096;

void CheckEncodeDecode(const Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int> ids = tokenizer.Encode(text, /*add_bos=*/true, /*add_eos=*/true);
  for (int id : ids) FUZZ_CHECK(id >= 0 && id < tokenizer.vocab_size());
  if (tokenizer.bos() >= 0) FUZZ_CHECK(!ids.empty() && ids.front() == tokenizer.bos());
  if (tokenizer.eos() >= 0) FUZZ_CHECK(!ids.empty() && ids.back() == tokenizer.eos());
  if (tokenizer.bos() < 0 && tokenizer.eos() < 0 && text.empty()) FUZZ_CHECK(ids.empty());
  int previous = -1;
  std::string stream;
  for (int id : ids) {
    stream.append(tokenizer.Decode(previous, id));
    previous = id;
  }
  (void)tokenizer.DecodeAll(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tandem::fuzz::MemoryFile file;
  tandem::fuzz::ByteCursor cursor(data, size);
  const std::string text(cursor.TakeString(cursor.Take<uint8_t>()));
  const auto rest = cursor.Rest();
  if (rest.empty() || rest[0] != '{') return 0;
  auto tokenizer = Tokenizer::LoadFile(file.Write(rest), kModelVocab);
  if (!tokenizer.ok()) return 0;
  FUZZ_CHECK(tokenizer->kind() == tandem::TokenizerKind::kHfBpe ||
             tokenizer->kind() == tandem::TokenizerKind::kHfByteLevelBpe);
  FUZZ_CHECK(tokenizer->vocab_size() > 0 && tokenizer->vocab_size() <= kModelVocab);
  CheckEncodeDecode(*tokenizer, text);
  // Added tokens, spaces, digits, non-ASCII, a combining mark, and bytes that are not UTF-8.
  CheckEncodeDecode(*tokenizer,
                    "<s>Hello world's 123!</s> caf\xc3\xa9 e\xcc\x81 \xf0\x9f\x99\x82\n\n \xff\xc3(");
  // Every id decodes after any other, at the start and after BOS.
  for (int id = 0; id < tokenizer->vocab_size(); ++id) {
    (void)tokenizer->Decode(-1, id);
    (void)tokenizer->Decode(tokenizer->bos(), id);
    (void)tokenizer->piece(id);
  }
  return 0;
}
