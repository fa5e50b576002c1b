#include "tandem/model/safetensors.hpp"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <tuple>

namespace tandem {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

// The reference implementation's limit: a larger header is refused before it is parsed.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
// A valid header nests three deep (root, tensor, shape); the index file about as much. The limit is
// checked before parsing so that a header of 100 MB of '[' cannot make nlohmann build ~7 GB of nested
// arrays; it leaves room for specific errors about misplaced arrays and objects.
constexpr int kMaxJsonDepth = 16;
constexpr const char* kMetadataKey = "__metadata__";
constexpr const char* kIndexFile = "model.safetensors.index.json";
constexpr const char* kSingleFile = "model.safetensors";

struct DtypeEntry {
  TensorDtype dtype;
  std::string_view name;
  size_t size;
};
constexpr std::array<DtypeEntry, 10> kDtypes = {{{TensorDtype::kF64, "F64", 8},
                                                 {TensorDtype::kF32, "F32", 4},
                                                 {TensorDtype::kF16, "F16", 2},
                                                 {TensorDtype::kBF16, "BF16", 2},
                                                 {TensorDtype::kI64, "I64", 8},
                                                 {TensorDtype::kI32, "I32", 4},
                                                 {TensorDtype::kI16, "I16", 2},
                                                 {TensorDtype::kI8, "I8", 1},
                                                 {TensorDtype::kU8, "U8", 1},
                                                 {TensorDtype::kBool, "BOOL", 1}}};

const DtypeEntry* FindDtype(TensorDtype dtype) {
  const auto index = static_cast<size_t>(dtype);
  return index < kDtypes.size() && kDtypes[index].dtype == dtype ? &kDtypes[index] : nullptr;
}

std::optional<TensorDtype> ParseDtype(std::string_view name) {
  for (const DtypeEntry& entry : kDtypes) {
    if (entry.name == name) return entry.dtype;
  }
  return std::nullopt;
}

// Names and keys come from untrusted files and end up in error messages and logs: quoted, control
// characters replaced, and cut short (at a UTF-8 character boundary).
std::string Quote(std::string_view text) {
  constexpr size_t kMaxShown = 120;
  const bool cut = text.size() > kMaxShown;
  if (cut) {
    size_t end = kMaxShown;
    while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
    text = text.substr(0, end);
  }
  std::string quoted = "'";
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    quoted += byte < 0x20 || byte == 0x7F ? '?' : c;
  }
  quoted += cut ? "...'" : "'";
  return quoted;
}

std::string FormatShape(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) text += ", ";
    text += std::to_string(shape[i]);
  }
  return text + "]";
}

std::string FormatRange(uint64_t begin, uint64_t end) {
  std::string text = "[";
  text += std::to_string(begin);
  text += ", ";
  text += std::to_string(end);
  return text + "]";
}

// The product of `shape`, or nullopt when a dimension is negative or the product overflows int64. A
// zero dimension makes the product 0 however large the others are.
std::optional<int64_t> CheckedElements(const std::vector<int64_t>& shape) {
  if (std::any_of(shape.begin(), shape.end(), [](int64_t dim) { return dim < 0; })) return std::nullopt;
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t elements = 1;
  for (const int64_t dim : shape) {
    if (__builtin_mul_overflow(elements, dim, &elements)) return std::nullopt;
  }
  return elements;
}

// elements × dtype size in bytes, or nullopt on overflow.
std::optional<uint64_t> CheckedBytes(int64_t elements, size_t dtype_size) {
  uint64_t bytes = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(elements), dtype_size, &bytes)) return std::nullopt;
  return bytes;
}

// How deeply `text` nests arrays and objects (brackets inside strings do not count). Unbalanced text is
// left for the parser to reject.
bool NestsDeeperThan(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return false;
}

// Parses `text` without exceptions; `what` prefixes the errors.
Result<Json> ParseJson(std::string_view text, const std::string& what) {
  if (NestsDeeperThan(text, kMaxJsonDepth)) {
    return InvalidArgument(what + " nests arrays and objects deeper than " + std::to_string(kMaxJsonDepth) +
                           " levels");
  }
  Json json = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return InvalidArgument(what + " is not valid JSON");
  return json;
}

std::string_view JsonTypeName(const Json& value) {
  if (value.is_number_float()) return "a fraction";
  if (value.is_number_unsigned()) return "an unsigned integer";
  if (value.is_number_integer()) return "a negative integer";
  switch (value.type()) {
    case Json::value_t::null:
      return "null";
    case Json::value_t::boolean:
      return "a boolean";
    case Json::value_t::string:
      return "a string";
    case Json::value_t::array:
      return "an array";
    case Json::value_t::object:
      return "an object";
    default:
      return "a number";
  }
}

// One header entry other than __metadata__; `prefix` is "file: tensor 'name'".
Result<TensorInfo> ParseTensorEntry(const std::string& name, const Json& entry, uint64_t data_size,
                                    const std::string& prefix) {
  if (!entry.is_object()) {
    return InvalidArgument(prefix + " is " + std::string(JsonTypeName(entry)) +
                           ", not an object with dtype, shape and data_offsets");
  }
  for (const auto& [key, value] : entry.items()) {
    if (key != "dtype" && key != "shape" && key != "data_offsets") {
      return InvalidArgument(prefix + " has unknown key " + Quote(key) +
                             " (expected exactly dtype, shape and data_offsets)");
    }
  }
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!entry.contains(key)) return InvalidArgument(prefix + " is missing '" + key + "'");
  }
  TensorInfo info;
  info.name = name;

  const Json& dtype = entry["dtype"];
  if (!dtype.is_string()) {
    return InvalidArgument(prefix + " dtype is " + std::string(JsonTypeName(dtype)) + ", not a string");
  }
  const std::optional<TensorDtype> parsed_dtype = ParseDtype(dtype.get_ref<const std::string&>());
  if (!parsed_dtype) {
    return InvalidArgument(prefix + " has unknown dtype " + Quote(dtype.get_ref<const std::string&>()) +
                           " (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)");
  }
  info.dtype = *parsed_dtype;

  const Json& shape = entry["shape"];
  if (!shape.is_array()) {
    return InvalidArgument(prefix + " shape is " + std::string(JsonTypeName(shape)) + ", not an array");
  }
  for (size_t i = 0; i < shape.size(); ++i) {
    const Json& dim = shape[i];
    auto where = [&] { return prefix + " shape dimension " + std::to_string(i); };
    if (dim.is_number_integer() && !dim.is_number_unsigned()) {
      return InvalidArgument(where() + " is negative (" + std::to_string(dim.get<int64_t>()) + ")");
    }
    if (!dim.is_number_unsigned()) {
      return InvalidArgument(where() + " is " + std::string(JsonTypeName(dim)) +
                             ", not a non-negative integer");
    }
    const uint64_t value = dim.get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(where() + " (" + std::to_string(value) + ") does not fit int64");
    }
    info.shape.push_back(static_cast<int64_t>(value));
  }
  const std::optional<int64_t> elements = CheckedElements(info.shape);
  if (!elements) {
    return InvalidArgument(prefix + " shape " + FormatShape(info.shape) + " overflows int64 elements");
  }

  const Json& offsets = entry["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned()) {
    return InvalidArgument(prefix + " data_offsets is not an array of two unsigned integers");
  }
  info.begin = offsets[0].get<uint64_t>();
  info.end = offsets[1].get<uint64_t>();
  const std::string range = FormatRange(info.begin, info.end);
  if (info.end < info.begin) {
    return InvalidArgument(prefix + " data_offsets " + range + " end before begin");
  }
  if (info.end > data_size) {
    return InvalidArgument(prefix + " data_offsets " + range + " past the end of the " +
                           std::to_string(data_size) + "-byte data section");
  }
  const size_t dtype_size = TensorDtypeSize(info.dtype);
  const std::optional<uint64_t> needed = CheckedBytes(*elements, dtype_size);
  if (!needed || *needed != info.end - info.begin) {
    return InvalidArgument(prefix + " data_offsets " + range + " hold " +
                           std::to_string(info.end - info.begin) + " bytes, " +
                           std::string(TensorDtypeName(info.dtype)) + " " + FormatShape(info.shape) +
                           " needs " + (needed ? std::to_string(*needed) : std::string("more than 2^64")));
  }
  return info;
}

// __metadata__: an object of strings.
Status ParseMetadata(const Json& value, const std::string& name, std::map<std::string, std::string>& out) {
  if (!value.is_object()) {
    return InvalidArgument(name + ": __metadata__ is " + std::string(JsonTypeName(value)) +
                           ", not an object of strings");
  }
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string()) {
      return InvalidArgument(name + ": __metadata__ value of " + Quote(key) + " is " +
                             std::string(JsonTypeName(item)) + ", not a string");
    }
    out.emplace(key, item.get<std::string>());
  }
  return Status::Ok();
}

// The JSON part of ParseSafetensorsHeader: everything after the length checks.
Result<SafetensorsHeader> ParseHeaderJson(std::string_view text, uint64_t data_size,
                                          const std::string& name) {
  TANDEM_ASSIGN_OR_RETURN(const Json json, ParseJson(text, name + ": header"));
  if (!json.is_object()) return InvalidArgument(name + ": header is not a JSON object");
  SafetensorsHeader header;
  // nlohmann keeps the last of duplicate keys, so a name given twice in the file is one tensor here (the
  // earlier entry's bytes then usually belong to no tensor, and the coverage check below refuses the file).
  for (const auto& [key, value] : json.items()) {
    if (key == kMetadataKey) {
      TANDEM_RETURN_IF_ERROR(ParseMetadata(value, name, header.metadata));
      continue;
    }
    TANDEM_ASSIGN_OR_RETURN(TensorInfo info,
                            ParseTensorEntry(key, value, data_size, name + ": tensor " + Quote(key)));
    header.tensors.push_back(std::move(info));
  }
  std::sort(header.tensors.begin(), header.tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  // The format allows no holes: sorted by begin, each tensor starts where the previous one ended, and the
  // last ends at the end of the file (an empty tensor inside another one counts as an overlap, as in the
  // reference implementation).
  uint64_t covered = 0;
  const TensorInfo* previous = nullptr;
  for (const TensorInfo& tensor : header.tensors) {
    if (tensor.begin < covered) {
      return InvalidArgument(name + ": tensors " + Quote(previous->name) + " " +
                             FormatRange(previous->begin, previous->end) + " and " + Quote(tensor.name) +
                             " " + FormatRange(tensor.begin, tensor.end) + " overlap");
    }
    if (tensor.begin > covered) {
      return InvalidArgument(name + ": gap in the data section: bytes [" + std::to_string(covered) + ", " +
                             std::to_string(tensor.begin) + ") belong to no tensor (next is " +
                             Quote(tensor.name) + ")");
    }
    covered = tensor.end;
    previous = &tensor;
  }
  if (covered != data_size) {
    return InvalidArgument(name + ": gap at the end of the data section: bytes [" + std::to_string(covered) +
                           ", " + std::to_string(data_size) + ") belong to no tensor");
  }
  return header;
}

// The shards model.safetensors.index.json names (sorted, each a plain file name), filling `weight_map`.
Result<std::vector<std::string>> ParseIndex(const std::string& index_path,
                                            std::map<std::string, std::string>& weight_map) {
  TANDEM_ASSIGN_OR_RETURN(const MappedFile file, MappedFile::Open(index_path));
  if (file.size() > kMaxHeaderBytes) {
    return InvalidArgument(index_path + ": " + std::to_string(file.size()) +
                           " bytes, more than the limit of " + std::to_string(kMaxHeaderBytes));
  }
  const std::string_view text(reinterpret_cast<const char*>(file.bytes().data()), file.size());
  TANDEM_ASSIGN_OR_RETURN(const Json json, ParseJson(text, index_path));
  if (!json.is_object()) return InvalidArgument(index_path + ": not a JSON object");
  if (json.contains("metadata") && !json["metadata"].is_object()) {
    return InvalidArgument(index_path + ": metadata is " + std::string(JsonTypeName(json["metadata"])) +
                           ", not an object");
  }
  if (!json.contains("weight_map")) return InvalidArgument(index_path + ": no weight_map");
  const Json& map = json["weight_map"];
  if (!map.is_object()) {
    return InvalidArgument(index_path + ": weight_map is " + std::string(JsonTypeName(map)) +
                           ", not an object of file names");
  }
  if (map.empty()) return InvalidArgument(index_path + ": weight_map is empty");
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : map.items()) {
    if (!shard.is_string()) {
      return InvalidArgument(index_path + ": weight_map entry of tensor " + Quote(tensor) + " is " +
                             std::string(JsonTypeName(shard)) + ", not a file name");
    }
    const auto& file_name = shard.get_ref<const std::string&>();
    // Shards live beside the index: a path would let a downloaded index read any file.
    if (file_name.empty() || file_name.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos ||
        file_name.find("..") != std::string::npos) {
      return InvalidArgument(index_path + ": weight_map puts tensor " + Quote(tensor) + " in " +
                             Quote(file_name) + ", which is not a plain file name in the directory");
    }
    weight_map.emplace(tensor, file_name);
    shards.insert(file_name);
  }
  return std::vector<std::string>(shards.begin(), shards.end());
}

bool IsRegularFile(const fs::path& path) {
  std::error_code error;
  return fs::is_regular_file(path, error);
}

}  // namespace

std::string_view TensorDtypeName(TensorDtype dtype) {
  const DtypeEntry* entry = FindDtype(dtype);
  return entry != nullptr ? entry->name : "UNKNOWN";
}

size_t TensorDtypeSize(TensorDtype dtype) {
  const DtypeEntry* entry = FindDtype(dtype);
  return entry != nullptr ? entry->size : 0;
}

int64_t TensorInfo::elements() const {
  return CheckedElements(shape).value_or(0);
}

Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const std::byte> file, const std::string& name) {
  if (file.size() < 8) {
    return InvalidArgument(name + ": truncated: " + std::to_string(file.size()) +
                           " bytes, shorter than the 8-byte header length");
  }
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(file[i]);  // little-endian
  if (length > kMaxHeaderBytes) {
    return InvalidArgument(name + ": header length " + std::to_string(length) + " exceeds the limit of " +
                           std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (length > file.size() - 8) {
    return InvalidArgument(name + ": truncated: header length " + std::to_string(length) + " needs " +
                           std::to_string(8 + length) + " bytes, the file has " +
                           std::to_string(file.size()));
  }
  const std::string_view text(reinterpret_cast<const char*>(file.data() + 8), length);
  if (text.empty() || text.front() != '{') {
    return InvalidArgument(name + ": header does not start with '{' (a safetensors header is a JSON object)");
  }
  // nlohmann is asked not to throw, but a stray exception must still not leave the loader.
  try {
    TANDEM_ASSIGN_OR_RETURN(SafetensorsHeader header, ParseHeaderJson(text, file.size() - 8 - length, name));
    header.data_start = 8 + length;
    return header;
  } catch (const std::exception& error) {
    return InvalidArgument(name + ": header: " + error.what());
  }
}

SafetensorsFile::SafetensorsFile(MappedFile file, SafetensorsHeader header)
    : file_(std::move(file)), header_(std::move(header)) {
  for (size_t i = 0; i < header_.tensors.size(); ++i) index_.emplace(header_.tensors[i].name, i);
}

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  TANDEM_ASSIGN_OR_RETURN(SafetensorsHeader header, ParseSafetensorsHeader(file.bytes(), path));
  return SafetensorsFile(std::move(file), std::move(header));
}

const TensorInfo* SafetensorsFile::Find(const std::string& name) const {
  const auto it = index_.find(name);
  return it == index_.end() ? nullptr : &header_.tensors[it->second];
}

std::span<const std::byte> SafetensorsFile::Data(const TensorInfo& tensor) const {
  // Validated tensors always fit; a TensorInfo from elsewhere gets an empty span, never a wild read.
  const uint64_t data_size = file_.size() - header_.data_start;
  if (tensor.begin > tensor.end || tensor.end > data_size) return {};
  return file_.bytes().subspan(header_.data_start + tensor.begin, tensor.end - tensor.begin);
}

Result<SafetensorsModel> SafetensorsModel::Open(const std::string& directory) {
  SafetensorsModel model;
  model.directory_ = directory;
  std::map<std::string, std::string> weight_map;  // tensor -> shard, when there is an index
  const fs::path root(directory);
  if (IsRegularFile(root)) {
    TANDEM_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(directory));
    model.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
  } else if (const std::string index_path = (root / kIndexFile).string(); IsRegularFile(index_path)) {
    TANDEM_ASSIGN_OR_RETURN(const std::vector<std::string> shards, ParseIndex(index_path, weight_map));
    for (const std::string& shard : shards) {
      auto file = SafetensorsFile::Open((root / shard).string());
      if (!file.ok()) {
        return InvalidArgument(index_path + ": shard " + Quote(shard) + ": " + file.status().message());
      }
      model.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file).value()));
    }
  } else if (const std::string single_path = (root / kSingleFile).string(); IsRegularFile(single_path)) {
    TANDEM_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::Open(single_path));
    model.files_.push_back(std::make_unique<SafetensorsFile>(std::move(file)));
  } else {
    std::error_code error;
    if (!fs::is_directory(root, error)) return NotFound(directory + ": no such directory or file");
    return NotFound(directory + ": neither " + kIndexFile + " nor " + kSingleFile + " exists");
  }

  for (const auto& file : model.files_) {
    for (const TensorInfo& info : file->tensors()) {
      const auto [it, inserted] =
          model.tensors_.emplace(info.name, Tensor{&info, file->Data(info), file.get()});
      if (!inserted) {
        return InvalidArgument(directory + ": tensor " + Quote(info.name) + " is in two shards, " +
                               it->second.file->path() + " and " + file->path());
      }
    }
  }
  // Tensors a shard holds beyond the index are kept (the shard is the truth about its contents); a tensor
  // the index names must be in the shard it names.
  for (const auto& [tensor, shard] : weight_map) {
    const auto it = model.tensors_.find(tensor);
    const std::string where =
        directory + ": " + kIndexFile + " puts tensor " + Quote(tensor) + " in " + Quote(shard);
    if (it == model.tensors_.end()) return InvalidArgument(where + ", but no shard holds it");
    if (fs::path(it->second.file->path()).filename() != shard) {
      return InvalidArgument(where + ", but it is in " + it->second.file->path());
    }
  }
  return model;
}

Result<SafetensorsModel::Tensor> SafetensorsModel::Get(const std::string& name) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) return NotFound(directory_ + ": no tensor " + Quote(name));
  return it->second;
}

bool SafetensorsModel::Contains(const std::string& name) const {
  return tensors_.count(name) > 0;
}

std::vector<std::string> SafetensorsModel::names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& [name, tensor] : tensors_) names.push_back(name);
  return names;
}

Status ConvertToFloat32(TensorDtype dtype, std::span<const std::byte> bytes, float* out, size_t count) {
  if (dtype != TensorDtype::kF32 && dtype != TensorDtype::kF16 && dtype != TensorDtype::kBF16) {
    return InvalidArgument("cannot convert " + std::string(TensorDtypeName(dtype)) +
                           " to float32 (only F32, F16 and BF16)");
  }
  const size_t size = TensorDtypeSize(dtype);
  size_t needed = 0;
  if (__builtin_mul_overflow(count, size, &needed) || bytes.size() != needed) {
    return InvalidArgument(std::to_string(bytes.size()) + " bytes are not " + std::to_string(count) + " " +
                           std::string(TensorDtypeName(dtype)) + " values");
  }
  if (count == 0) return Status::Ok();
  if (out == nullptr) return InvalidArgument("no output buffer for " + std::to_string(count) + " floats");
  // Mapped tensor data need not be aligned: every read goes through memcpy.
  if (dtype == TensorDtype::kF32) {
    std::memcpy(out, bytes.data(), needed);
    return Status::Ok();
  }
  for (size_t i = 0; i < count; ++i) {
    uint16_t bits = 0;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    out[i] = dtype == TensorDtype::kF16 ? static_cast<float>(c10::Half(bits, c10::Half::from_bits()))
                                        : static_cast<float>(c10::BFloat16(bits, c10::BFloat16::from_bits()));
  }
  return Status::Ok();
}

Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps the tensors in the order given (nlohmann::json would sort the keys).
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header[kMetadataKey] = metadata;
  std::set<std::string> names;
  uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    const std::string prefix = path + ": tensor " + Quote(tensor.name);
    if (tensor.name == kMetadataKey) return InvalidArgument(prefix + ": the name is reserved for metadata");
    if (!names.insert(tensor.name).second) return InvalidArgument(prefix + " is given twice");
    if (FindDtype(tensor.dtype) == nullptr) return InvalidArgument(prefix + " has an unknown dtype");
    const std::optional<int64_t> elements = CheckedElements(tensor.shape);
    if (!elements) {
      return InvalidArgument(prefix + " shape " + FormatShape(tensor.shape) +
                             " has a negative dimension or overflows int64 elements");
    }
    const std::optional<uint64_t> needed = CheckedBytes(*elements, TensorDtypeSize(tensor.dtype));
    if (!needed || *needed != tensor.bytes.size()) {
      return InvalidArgument(prefix + " has " + std::to_string(tensor.bytes.size()) + " bytes, " +
                             std::string(TensorDtypeName(tensor.dtype)) + " " + FormatShape(tensor.shape) +
                             " needs " + (needed ? std::to_string(*needed) : std::string("more than 2^64")));
    }
    header[tensor.name] = {{"dtype", std::string(TensorDtypeName(tensor.dtype))},
                           {"shape", tensor.shape},
                           {"data_offsets", {offset, offset + *needed}}};
    offset += *needed;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::json::exception&) {  // dump refuses strings that are not UTF-8
    return InvalidArgument(path + ": a tensor name or metadata string is not valid UTF-8");
  }
  // The reference writer pads with spaces so that the data section starts 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kMaxHeaderBytes) {
    return InvalidArgument(path + ": the header would be " + std::to_string(text.size()) +
                           " bytes, more than the limit of " + std::to_string(kMaxHeaderBytes));
  }

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgument(path + ": cannot open for writing");
  std::array<char, 8> length{};
  for (size_t i = 0; i < 8; ++i) length[i] = static_cast<char>((uint64_t{text.size()} >> (8 * i)) & 0xFF);
  out.write(length.data(), length.size());
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const TensorToWrite& tensor : tensors) {
    out.write(reinterpret_cast<const char*>(tensor.bytes.data()),
              static_cast<std::streamsize>(tensor.bytes.size()));
  }
  out.close();
  if (!out) return Internal(path + ": write failed");
  return Status::Ok();
}

}  // namespace tandem
