// Fuzz target: Tokenizer::Load on an arbitrary file, then Encode/Decode with whatever loaded.
// Input: vocab_size u16 (1 + value % 1024), text length u8, the text, then the tokenizer file.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "tandem/text/tokenizer.hpp"

namespace {

using tandem::Tokenizer;

void CheckEncodeDecode(const Tokenizer& tokenizer, std::string_view text) {
  const std::vector<int> ids = tokenizer.Encode(text, /*add_bos=*/true, /*add_eos=*/true);
  // BOS takes part in the merges as in llama2.c, so it may be merged away when the vocabulary holds
  // BOS's piece followed by another (never in a real tokenizer); EOS is appended after the merges.
  FUZZ_CHECK(ids.size() >= 2 && ids.back() == Tokenizer::kEos);
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    FUZZ_CHECK((ids[i] >= 0 && ids[i] < tokenizer.vocab_size()) || (i == 0 && ids[i] == Tokenizer::kBos));
  }
  int previous = ids.front();
  for (size_t i = 1; i < ids.size(); ++i) {
    (void)tokenizer.Decode(previous, ids[i]);
    previous = ids[i];
  }
  (void)tokenizer.DecodeAll(ids);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tandem::fuzz::MemoryFile file;
  tandem::fuzz::ByteCursor cursor(data, size);
  const int32_t vocab_size = 1 + cursor.Take<uint16_t>() % 1024;
  const std::string text(cursor.TakeString(cursor.Take<uint8_t>()));
  auto tokenizer = Tokenizer::Load(file.Write(cursor.Rest()), vocab_size);
  if (!tokenizer.ok()) return 0;
  FUZZ_CHECK(tokenizer->vocab_size() == vocab_size);
  CheckEncodeDecode(*tokenizer, text);
  CheckEncodeDecode(*tokenizer, "Once upon a time, a caf\xc3\xa9 \xf0\x9f\x99\x82\n");
  // Every id decodes after any other, including ids whose pieces are not valid UTF-8.
  for (int id = 0; id < tokenizer->vocab_size(); ++id) (void)tokenizer->Decode(Tokenizer::kBos, id);
  return 0;
}
