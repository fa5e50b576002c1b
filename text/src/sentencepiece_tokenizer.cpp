// tokenizer.model (a SentencePiece ModelProto) through libsentencepiece, with transformers'
// LlamaTokenizer conventions around it: control and unknown pieces written in the text become their ids,
// and decoding turns ▁ back into spaces and byte pieces into raw bytes.
//
// libsentencepiece is loaded at run time, not linked. Debian's libsentencepiece.so.0 carries its own copy
// of protobuf-lite 3.14 and exports its symbols; LibTorch brings libprotobuf.so.32 (3.21) into every
// Tandem process, and with both in the global scope one binds to the other's functions: the process dies
// in protobuf's static initializers before main (or aborts on protobuf's version check when libprotobuf
// comes first). dlopen with RTLD_LOCAL | RTLD_DEEPBIND keeps libsentencepiece bound to its own protobuf
// and its symbols out of everyone else's way. Its C++ API is then called through dlsym'ed member
// functions, with the ABI of the header this file is compiled against (checked below). AddressSanitizer
// refuses RTLD_DEEPBIND, so ASan builds load it without, which works only in processes without libprotobuf
// (the fuzz targets); elsewhere they refuse tokenizer.model with an error instead of dying.
#include <dlfcn.h>
#include <link.h>
#include <sentencepiece_processor.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "added_tokens.hpp"
#include "tokenizer_model.hpp"
#include "unicode.hpp"

#if defined(__SANITIZE_ADDRESS__)
#define TANDEM_SENTENCEPIECE_DEEPBIND 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TANDEM_SENTENCEPIECE_DEEPBIND 0
#endif
#endif
#ifndef TANDEM_SENTENCEPIECE_DEEPBIND
#define TANDEM_SENTENCEPIECE_DEEPBIND 1
#endif

namespace tandem {
namespace {

constexpr std::string_view kSpaceMarker = "\xE2\x96\x81";  // ▁, SentencePiece's whitespace
constexpr const char* kLibrary = "libsentencepiece.so.0";

// The mangled names below spell absl::string_view as std::string_view and util::Status as one pointer.
static_assert(std::is_same_v<absl::string_view, std::string_view>);
static_assert(sizeof(sentencepiece::util::Status) == sizeof(void*));

// sentencepiece::util::Status as the functions return it: one owning pointer, null when OK. The
// user-provided destructor makes it non-trivial, so it is returned through memory exactly like the real
// one (Itanium C++ ABI).
class SpStatus {
 public:
  SpStatus() = default;
  SpStatus(const SpStatus&) = delete;
  SpStatus& operator=(const SpStatus&) = delete;
  ~SpStatus();
  bool ok() const { return rep_ == nullptr; }

 private:
  void* rep_ = nullptr;
};

// libsentencepiece's functions used here; `self` is the SentencePieceProcessor.
struct SentencePieceApi {
  void (*construct)(void* self);
  void (*destroy)(void* self);
  SpStatus (*load_from_serialized_proto)(void* self, std::string_view serialized);
  SpStatus (*encode)(const void* self, std::string_view input, std::vector<int>* ids);
  int (*get_piece_size)(const void* self);
  const std::string& (*id_to_piece)(const void* self, int id);
  int (*piece_to_id)(const void* self, std::string_view piece);
  bool (*is_control)(const void* self, int id);
  bool (*is_unknown)(const void* self, int id);
  bool (*is_byte)(const void* self, int id);
  int (*bos_id)(const void* self);
  int (*eos_id)(const void* self);
  void (*status_destroy)(void* status);
  std::string (*status_to_string)(const void* status);
};

// Whether some libprotobuf is among the loaded objects.
bool ProtobufIsLoaded() {
  return ::dl_iterate_phdr(
             [](dl_phdr_info* info, size_t, void*) -> int {
               return info->dlpi_name != nullptr && std::strstr(info->dlpi_name, "libprotobuf") != nullptr;
             },
             nullptr) != 0;
}

// Loads the library once per process (it stays loaded); the error says why it could not be.
const SentencePieceApi* LoadApi(std::string& error) {
  static std::string load_error;
  static const SentencePieceApi* const api = []() -> const SentencePieceApi* {
    int flags = RTLD_NOW | RTLD_LOCAL;
    if (TANDEM_SENTENCEPIECE_DEEPBIND) {
      flags |= RTLD_DEEPBIND;
    } else if (ProtobufIsLoaded()) {
      load_error = std::string("cannot load ") + kLibrary +
                   " in an AddressSanitizer build of a process that has libprotobuf (LibTorch's): it needs "
                   "RTLD_DEEPBIND, which AddressSanitizer does not support";
      return nullptr;
    }
    void* handle = ::dlopen(kLibrary, flags);
    if (handle == nullptr) {
      const char* message = ::dlerror();
      load_error = std::string("cannot load ") + kLibrary +
                   " (Debian package libsentencepiece0): " + (message != nullptr ? message : "unknown error");
      return nullptr;
    }
    auto* table = new SentencePieceApi();
    bool complete = true;
    const auto bind = [&](auto& function, const char* symbol) {
      void* address = ::dlsym(handle, symbol);
      if (address == nullptr) {
        if (complete) load_error = std::string(kLibrary) + " has no " + symbol + " (another version?)";
        complete = false;
        return;
      }
      function = reinterpret_cast<std::remove_reference_t<decltype(function)>>(address);
    };
    bind(table->construct, "_ZN13sentencepiece22SentencePieceProcessorC1Ev");
    bind(table->destroy, "_ZN13sentencepiece22SentencePieceProcessorD1Ev");
    bind(
        table->load_from_serialized_proto,
        "_ZN13sentencepiece22SentencePieceProcessor23LoadFromSerializedProtoESt17basic_string_viewIcSt11char_"
        "traitsIcEE");
    bind(table->encode,
         "_ZNK13sentencepiece22SentencePieceProcessor6EncodeESt17basic_string_viewIcSt11char_"
         "traitsIcEEPSt6vector"
         "IiSaIiEE");
    bind(table->get_piece_size, "_ZNK13sentencepiece22SentencePieceProcessor12GetPieceSizeEv");
    bind(table->id_to_piece, "_ZNK13sentencepiece22SentencePieceProcessor9IdToPieceB5cxx11Ei");
    bind(table->piece_to_id,
         "_ZNK13sentencepiece22SentencePieceProcessor9PieceToIdESt17basic_string_viewIcSt11char_traitsIcEE");
    bind(table->is_control, "_ZNK13sentencepiece22SentencePieceProcessor9IsControlEi");
    bind(table->is_unknown, "_ZNK13sentencepiece22SentencePieceProcessor9IsUnknownEi");
    bind(table->is_byte, "_ZNK13sentencepiece22SentencePieceProcessor6IsByteEi");
    bind(table->bos_id, "_ZNK13sentencepiece22SentencePieceProcessor6bos_idEv");
    bind(table->eos_id, "_ZNK13sentencepiece22SentencePieceProcessor6eos_idEv");
    bind(table->status_destroy, "_ZN13sentencepiece4util6StatusD1Ev");
    bind(table->status_to_string, "_ZNK13sentencepiece4util6Status8ToStringB5cxx11Ev");
    if (!complete) {
      delete table;
      return nullptr;
    }
    return table;
  }();
  if (api == nullptr) error = load_error;
  return api;
}

const SentencePieceApi& Api() {
  std::string unused;
  return *LoadApi(unused);  // only called once LoadApi has succeeded
}

SpStatus::~SpStatus() {
  if (rep_ != nullptr) Api().status_destroy(this);
}

// Immutable after LoadSentencePieceTokenizer; SentencePieceProcessor's const methods are thread-safe.
class SentencePieceTokenizer final : public TokenizerModel {
 public:
  explicit SentencePieceTokenizer(const SentencePieceApi& api) : api_(api) { api_.construct(processor_); }
  ~SentencePieceTokenizer() override { api_.destroy(processor_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  TokenizerKind kind() const override { return TokenizerKind::kSentencePiece; }

  std::vector<int> Encode(std::string_view text, bool add_bos, bool add_eos) const override {
    std::vector<int> tokens;
    if (add_bos && specials().bos() >= 0) tokens.push_back(specials().bos());
    std::vector<int> ids;
    for (const AddedTokenMatcher::Segment& segment : specials_in_text_.Split(text)) {
      if (segment.id >= 0) {
        tokens.push_back(segment.id);
        continue;
      }
      ids.clear();
      // Fails only on an unloaded processor; a segment that cannot be encoded adds nothing.
      if (api_.encode(processor_, segment.text, &ids).ok()) {
        for (int id : ids) {
          if (id >= 0 && id < vocab_size()) tokens.push_back(id);
        }
      }
    }
    if (add_eos && specials().eos >= 0) tokens.push_back(specials().eos);
    return tokens;
  }

  std::string_view Decode(int previous, int token) const override {
    if (token < 0 || token >= vocab_size()) return {};
    std::string_view text = decoded_[token];
    // LlamaTokenizer drops the space that the dummy prefix put before the first piece.
    if ((previous < 0 || previous == specials().bos_token) && text.starts_with(' ')) text.remove_prefix(1);
    return text;
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(pieces_.size()); }
  const std::string& piece(int token) const override { return pieces_.at(token); }

  int TokenId(std::string_view content) const override {
    const int id = api_.piece_to_id(processor_, content);
    // PieceToId answers unk_id for a piece it does not know.
    return id >= 0 && id < vocab_size() && pieces_[id] == content ? id : -1;
  }

 private:
  friend Result<std::unique_ptr<TokenizerModel>> tandem::LoadSentencePieceTokenizer(const std::string& path,
                                                                                    std::string_view bytes,
                                                                                    int32_t vocab_size);

  const SentencePieceApi& api_;
  alignas(sentencepiece::SentencePieceProcessor) unsigned char processor_[sizeof(
      sentencepiece::SentencePieceProcessor)];
  AddedTokenMatcher specials_in_text_;
  std::vector<std::string> pieces_;
  std::vector<std::string> decoded_;
};

std::string ReplaceAll(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    if (text.substr(i).starts_with(from)) {
      out.append(to);
      i += from.size();
    } else {
      out.push_back(text[i++]);
    }
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<TokenizerModel>> LoadSentencePieceTokenizer(const std::string& path,
                                                                   std::string_view bytes,
                                                                   int32_t vocab_size) {
  std::string error;
  const SentencePieceApi* api = LoadApi(error);
  if (api == nullptr) return Internal(path + ": " + error);
  auto model = std::make_unique<SentencePieceTokenizer>(*api);
  void* processor = model->processor_;
  if (const SpStatus status = api->load_from_serialized_proto(processor, bytes); !status.ok()) {
    return InvalidArgument(path + ": not a SentencePiece model: " + api->status_to_string(&status));
  }
  const int size = api->get_piece_size(processor);
  if (size > vocab_size) {
    return InvalidArgument(path + ": the SentencePiece model has " + std::to_string(size) +
                           " pieces, more than the model's vocab_size " + std::to_string(vocab_size));
  }
  std::vector<AddedTokenSpec> specials;
  model->pieces_.reserve(static_cast<size_t>(size));
  model->decoded_.reserve(static_cast<size_t>(size));
  for (int id = 0; id < size; ++id) {
    const std::string& piece = api->id_to_piece(processor, id);
    model->pieces_.push_back(piece);
    if (api->is_control(processor, id) || api->is_unknown(processor, id)) {
      specials.push_back({.content = piece, .id = id});
      model->decoded_.push_back(piece);
    } else if (const int byte = unicode::ParseBytePiece(piece); byte >= 0 && api->is_byte(processor, id)) {
      model->decoded_.emplace_back(1, static_cast<char>(byte));
    } else {
      model->decoded_.push_back(ReplaceAll(piece, kSpaceMarker, " "));
    }
  }
  model->specials_in_text_ = AddedTokenMatcher(std::move(specials));

  SpecialTokens file_specials;
  file_specials.bos_token = api->bos_id(processor);
  if (file_specials.bos_token >= size) file_specials.bos_token = -1;
  file_specials.add_bos = file_specials.bos_token >= 0;
  file_specials.eos = api->eos_id(processor);
  if (file_specials.eos >= size) file_specials.eos = -1;
  if (file_specials.eos >= 0) file_specials.stops.push_back(file_specials.eos);
  model->set_specials(std::move(file_specials));
  return std::unique_ptr<TokenizerModel>(std::move(model));
}

}  // namespace tandem
