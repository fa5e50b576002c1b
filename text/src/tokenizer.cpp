// The Tokenizer handle: which file a model's tokenizer is, which kind that file is, and the BOS/EOS/stop
// ids from the model directory's config files. The kinds themselves live in llama2c_tokenizer.cpp,
// sentencepiece_tokenizer.cpp and hf_tokenizer.cpp.
#include "tandem/text/tokenizer.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <utility>

#include "tandem/base/json_file.hpp"
#include "tandem/base/mapped_file.hpp"
#include "tokenizer_model.hpp"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool HasExtension(const std::string& path, std::string_view extension) {
  return fs::path(path).extension() == extension;
}

bool LooksLikeJson(std::string_view bytes) {
  const size_t first = bytes.find_first_not_of(" \t\r\n");
  return first != std::string_view::npos && bytes[first] == '{';
}

// A SentencePiece ModelProto starts with its first `pieces` entry: field 1, length-delimited (0x0A), a
// varint length, then the SentencePiece message's first field: piece (0x0A), score (0x15) or type (0x18).
// A llama2.c file starts with a little int32 max_token_length, whose second and third bytes are small.
bool LooksLikeSentencePiece(std::string_view bytes) {
  if (bytes.size() < 3 || static_cast<unsigned char>(bytes[0]) != 0x0A) return false;
  uint64_t length = 0;
  size_t i = 1;
  for (int shift = 0; i < bytes.size() && shift < 35; shift += 7) {
    const auto byte = static_cast<unsigned char>(bytes[i++]);
    length |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (length == 0 || i >= bytes.size() || length > bytes.size() - i) return false;
  const auto tag = static_cast<unsigned char>(bytes[i]);
  return tag == 0x0A || tag == 0x15 || tag == 0x18;
}

Result<std::unique_ptr<TokenizerModel>> LoadModelFile(const std::string& path, int32_t vocab_size) {
  TANDEM_ASSIGN_OR_RETURN(const MappedFile file, MappedFile::Open(path));
  const std::string_view bytes(reinterpret_cast<const char*>(file.bytes().data()), file.size());
  if (HasExtension(path, ".json") ||
      (!HasExtension(path, ".bin") && !HasExtension(path, ".model") && LooksLikeJson(bytes))) {
    return LoadHfTokenizerJson(path, bytes, vocab_size);
  }
  if (HasExtension(path, ".model") || (!HasExtension(path, ".bin") && LooksLikeSentencePiece(bytes))) {
    return LoadSentencePieceTokenizer(path, bytes, vocab_size);
  }
  return LoadLlama2cTokenizer(path, bytes, vocab_size);
}

// --- BOS/EOS/stops from the model directory ---

// Reads the special-token fields of the three config files and checks every id against the vocabulary.
class SpecialTokenFiles {
 public:
  SpecialTokenFiles(const fs::path& dir, const TokenizerModel& model) : dir_(dir), model_(model) {}

  Status Load() {
    TANDEM_ASSIGN_OR_RETURN(tokenizer_config_, ReadJsonObjectIfExists(dir_ / "tokenizer_config.json"));
    TANDEM_ASSIGN_OR_RETURN(config_, ReadJsonObjectIfExists(dir_ / "config.json"));
    TANDEM_ASSIGN_OR_RETURN(generation_config_, ReadJsonObjectIfExists(dir_ / "generation_config.json"));
    return Status::Ok();
  }

  Result<SpecialTokens> Resolve(SpecialTokens specials) const {
    // BOS: tokenizer_config.json's bos_token, else config.json's, else generation_config.json's id.
    if (Has(tokenizer_config_, "bos_token")) {
      TANDEM_ASSIGN_OR_RETURN(specials.bos_token, TokenByName("bos_token"));
    } else if (Has(config_, "bos_token_id")) {
      TANDEM_ASSIGN_OR_RETURN(specials.bos_token, FirstId(config_, "config.json", "bos_token_id"));
    } else if (Has(generation_config_, "bos_token_id")) {
      TANDEM_ASSIGN_OR_RETURN(specials.bos_token,
                              FirstId(generation_config_, "generation_config.json", "bos_token_id"));
    }
    if (Has(tokenizer_config_, "add_bos_token") && !tokenizer_config_->at("add_bos_token").is_null()) {
      const json& value = tokenizer_config_->at("add_bos_token");
      if (!value.is_boolean())
        return FieldError("tokenizer_config.json", "add_bos_token", "must be true or false");
      specials.add_bos = value.get<bool>();
    }

    // EOS: the same order; every eos_token_id of config.json and generation_config.json is a stop.
    const bool eos_from_files = Has(tokenizer_config_, "eos_token") || Has(config_, "eos_token_id") ||
                                Has(generation_config_, "eos_token_id");
    if (Has(tokenizer_config_, "eos_token")) {
      TANDEM_ASSIGN_OR_RETURN(specials.eos, TokenByName("eos_token"));
    } else if (Has(config_, "eos_token_id")) {
      TANDEM_ASSIGN_OR_RETURN(specials.eos, FirstId(config_, "config.json", "eos_token_id"));
    } else if (Has(generation_config_, "eos_token_id")) {
      TANDEM_ASSIGN_OR_RETURN(specials.eos,
                              FirstId(generation_config_, "generation_config.json", "eos_token_id"));
    }
    if (eos_from_files) {
      specials.stops.clear();
      if (specials.eos >= 0) specials.stops.push_back(specials.eos);
      TANDEM_ASSIGN_OR_RETURN(const std::vector<int> config_stops,
                              Ids(config_, "config.json", "eos_token_id"));
      TANDEM_ASSIGN_OR_RETURN(const std::vector<int> generation_stops,
                              Ids(generation_config_, "generation_config.json", "eos_token_id"));
      specials.stops.insert(specials.stops.end(), config_stops.begin(), config_stops.end());
      specials.stops.insert(specials.stops.end(), generation_stops.begin(), generation_stops.end());
    }
    std::sort(specials.stops.begin(), specials.stops.end());
    specials.stops.erase(std::unique(specials.stops.begin(), specials.stops.end()), specials.stops.end());
    return specials;
  }

 private:
  static bool Has(const std::optional<json>& doc, const char* key) { return doc && doc->contains(key); }

  Status FieldError(const std::string& file, const std::string& field, const std::string& problem) const {
    return InvalidArgument((dir_ / file).string() + ": " + field + " " + problem);
  }

  Result<int> CheckId(const json& value, const std::string& file, const std::string& field) const {
    if (!value.is_number_integer())
      return FieldError(file, field, "must be an integer, a list of them, or null");
    const int64_t id = value.is_number_unsigned()
                           ? static_cast<int64_t>(std::min<uint64_t>(value.get<uint64_t>(), INT64_MAX))
                           : value.get<int64_t>();
    if (id < 0 || id >= model_.vocab_size()) {
      return FieldError(file, field,
                        std::to_string(id) + " is outside the tokenizer's vocabulary of " +
                            std::to_string(model_.vocab_size()) + " tokens");
    }
    return static_cast<int>(id);
  }

  // An id field that may be an int, a list of ints, or null: all its ids.
  Result<std::vector<int>> Ids(const std::optional<json>& doc, const std::string& file,
                               const char* field) const {
    std::vector<int> ids;
    if (!Has(doc, field)) return ids;
    const json& value = doc->at(field);
    if (value.is_null()) return ids;
    if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i) {
        TANDEM_ASSIGN_OR_RETURN(const int id,
                                CheckId(value[i], file, std::string(field) + "[" + std::to_string(i) + "]"));
        ids.push_back(id);
      }
      return ids;
    }
    TANDEM_ASSIGN_OR_RETURN(const int id, CheckId(value, file, field));
    ids.push_back(id);
    return ids;
  }

  // The first of Ids(), -1 for null or [].
  Result<int> FirstId(const std::optional<json>& doc, const std::string& file, const char* field) const {
    TANDEM_ASSIGN_OR_RETURN(const std::vector<int> ids, Ids(doc, file, field));
    return ids.empty() ? -1 : ids.front();
  }

  // tokenizer_config.json's bos_token / eos_token: "<s>", {"content": "<s>", ...} or null (-1).
  Result<int> TokenByName(const char* field) const {
    const json& value = tokenizer_config_->at(field);
    if (value.is_null()) return -1;
    std::string name;
    if (value.is_string()) {
      name = value.get<std::string>();
    } else if (value.is_object() && value.contains("content") && value.at("content").is_string()) {
      name = value.at("content").get<std::string>();
    } else {
      return FieldError("tokenizer_config.json", field, "must be a string, {\"content\": ...} or null");
    }
    const int id = model_.TokenId(name);
    if (id < 0)
      return FieldError("tokenizer_config.json", field, "\"" + name + "\" is not in the vocabulary");
    return id;
  }

  fs::path dir_;
  const TokenizerModel& model_;
  std::optional<json> tokenizer_config_;
  std::optional<json> config_;
  std::optional<json> generation_config_;
};

Status ApplyModelDirectory(const fs::path& dir, TokenizerModel& model) {
  SpecialTokenFiles files(dir, model);
  TANDEM_RETURN_IF_ERROR(files.Load());
  TANDEM_ASSIGN_OR_RETURN(SpecialTokens specials, files.Resolve(model.specials()));
  model.set_specials(std::move(specials));
  return Status::Ok();
}

}  // namespace

std::string TokenizerModel::DecodeAll(const std::vector<int>& ids) const {
  std::string text;
  for (size_t i = 1; i < ids.size(); ++i) text.append(Decode(ids[i - 1], ids[i]));
  return text;
}

std::string_view TokenizerKindName(TokenizerKind kind) {
  switch (kind) {
    case TokenizerKind::kLlama2c:
      return "llama2.c";
    case TokenizerKind::kSentencePiece:
      return "sentencepiece";
    case TokenizerKind::kHfBpe:
      return "tokenizer.json BPE";
    case TokenizerKind::kHfByteLevelBpe:
      return "tokenizer.json byte-level BPE";
  }
  return "unknown";
}

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerModel> model) : model_(std::move(model)) {}

Result<Tokenizer> Tokenizer::Load(const std::string& path, int32_t vocab_size) {
  TANDEM_ASSIGN_OR_RETURN(const MappedFile file, MappedFile::Open(path));
  const std::string_view bytes(reinterpret_cast<const char*>(file.bytes().data()), file.size());
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<TokenizerModel> model,
                          LoadLlama2cTokenizer(path, bytes, vocab_size));
  return Tokenizer(std::move(model));
}

Result<Tokenizer> Tokenizer::LoadFile(const std::string& path, int32_t vocab_size) {
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<TokenizerModel> model, LoadModelFile(path, vocab_size));
  return Tokenizer(std::move(model));
}

Result<Tokenizer> Tokenizer::LoadForModel(const std::string& model_path, const std::string& tokenizer_path,
                                          int32_t vocab_size) {
  std::error_code error;
  const bool model_is_directory = !model_path.empty() && fs::is_directory(model_path, error);
  std::string path = tokenizer_path;
  if (path.empty()) {
    if (!model_is_directory) {
      if (model_path.empty()) return InvalidArgument("no tokenizer: give --tokenizer or a model directory");
      return InvalidArgument(model_path +
                             " is a checkpoint file, not a model directory: --tokenizer is required");
    }
    const fs::path json_path = fs::path(model_path) / "tokenizer.json";
    const fs::path model_file = fs::path(model_path) / "tokenizer.model";
    if (fs::exists(json_path, error)) {
      path = json_path.string();
    } else if (fs::exists(model_file, error)) {
      path = model_file.string();
    } else {
      return NotFound("no tokenizer in " + model_path + ": neither " + json_path.string() + " nor " +
                      model_file.string() + " exists (give --tokenizer)");
    }
  }
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<TokenizerModel> model, LoadModelFile(path, vocab_size));
  // The llama2.c format fixes its special ids; a directory's config files name the tokens of the
  // directory's own tokenizer, so they apply to the other kinds only.
  if (model->kind() != TokenizerKind::kLlama2c) {
    fs::path config_dir = model_is_directory ? fs::path(model_path) : fs::path(path).parent_path();
    if (config_dir.empty()) config_dir = ".";
    TANDEM_RETURN_IF_ERROR(ApplyModelDirectory(config_dir, *model));
  }
  return Tokenizer(std::move(model));
}

std::vector<int> Tokenizer::Encode(std::string_view text, bool add_bos, bool add_eos) const {
  return model_->Encode(text, add_bos, add_eos);
}

std::string_view Tokenizer::Decode(int previous, int token) const {
  return model_->Decode(previous, token);
}

std::string Tokenizer::DecodeAll(const std::vector<int>& ids) const {
  return model_->DecodeAll(ids);
}

std::string Tokenizer::DecodeText(const std::vector<int>& ids) const {
  std::string text;
  size_t i = 0;
  int previous = -1;
  if (!ids.empty() && bos() >= 0 && ids[0] == bos()) {
    previous = ids[0];
    i = 1;
  }
  for (; i < ids.size(); ++i) {
    text.append(Decode(previous, ids[i]));
    previous = ids[i];
  }
  return text;
}

int32_t Tokenizer::vocab_size() const {
  return model_->vocab_size();
}

const std::string& Tokenizer::piece(int token) const {
  return model_->piece(token);
}

int Tokenizer::bos() const {
  return model_->specials().bos();
}

int Tokenizer::eos() const {
  return model_->specials().eos;
}

bool Tokenizer::IsEndOfText(int token) const {
  const std::vector<int>& stops = model_->specials().stops;
  return std::binary_search(stops.begin(), stops.end(), token);
}

const std::vector<int>& Tokenizer::EndOfTextIds() const {
  return model_->specials().stops;
}

TokenizerKind Tokenizer::kind() const {
  return model_->kind();
}

std::optional<float> Tokenizer::score(int token) const {
  return model_->score(token);
}

}  // namespace tandem
