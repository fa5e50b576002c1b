// safetensors (https://github.com/huggingface/safetensors): Hugging Face's weight format, read through a
// memory map, and written by `tandem convert`.
//
// A file is an 8-byte little-endian header length N, N bytes of JSON
//   {"__metadata__": {"k": "v"}, "name": {"dtype": "F32", "shape": [4, 2], "data_offsets": [0, 32]}, ...}
// and the data section; offsets are relative to the data section's start. A model directory holds
// model.safetensors, or shards listed by model.safetensors.index.json ({"weight_map": {name: file}}).
// No Debian package reads the format from C++, and its header is a small JSON object: parsed here with
// nlohmann-json.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "tandem/base/mapped_file.hpp"
#include "tandem/base/status.hpp"

namespace tandem {

enum class TensorDtype { kF64, kF32, kF16, kBF16, kI64, kI32, kI16, kI8, kU8, kBool };

// "F32", "BF16", ... as in the header.
std::string_view TensorDtypeName(TensorDtype dtype);
size_t TensorDtypeSize(TensorDtype dtype);

struct TensorInfo {
  std::string name;
  TensorDtype dtype = TensorDtype::kF32;
  std::vector<int64_t> shape;  // [] is a scalar
  uint64_t begin = 0;          // byte offsets into the data section, [begin, end)
  uint64_t end = 0;

  // Product of shape (1 for a scalar); 0 for a shape with a negative dimension or an int64 overflow,
  // which a parsed tensor never has.
  int64_t elements() const;
};

// Parses and validates the header of a whole safetensors file held in `file` (`name` is for errors):
// the length fits the file and 100 MB, the JSON is an object of tensors (and an optional __metadata__ of
// strings), each dtype known, each shape a list of non-negative integers, data_offsets inside the data
// section with end - begin == elements * dtype size, no two tensors overlapping and no byte of the data
// section left unaccounted for (as the format requires). Tensors come back sorted by begin. Every error
// is InvalidArgument and starts with `name`. A name the JSON gives twice is read once (the last entry).
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // file offset of the data section: 8 + N
};
Result<SafetensorsHeader> ParseSafetensorsHeader(std::span<const std::byte> file, const std::string& name);

// One mapped, validated file. Immutable; thread-safe.
class SafetensorsFile {
 public:
  // NotFound when `path` does not exist; InvalidArgument when it is not a valid safetensors file.
  static Result<SafetensorsFile> Open(const std::string& path);

  const std::string& path() const { return file_.path(); }
  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* Find(const std::string& name) const;  // nullptr when absent
  // The tensor's bytes inside the mapping (not aligned); empty for a TensorInfo that does not fit this file.
  std::span<const std::byte> Data(const TensorInfo& tensor) const;
  const MappedFile& file() const { return file_; }

 private:
  SafetensorsFile(MappedFile file, SafetensorsHeader header);
  MappedFile file_;
  SafetensorsHeader header_;
  std::map<std::string, size_t> index_;  // name -> position in header_.tensors
};

// The weights of a model directory: model.safetensors, or every shard model.safetensors.index.json names
// (each tensor must be in the shard the index says, and no tensor in two shards; shard names are plain file
// names in the directory, never paths). Tensors a shard holds beyond the index are kept. Immutable;
// thread-safe; the Tensor pointers live as long as the model (moving it keeps them valid).
class SafetensorsModel {
 public:
  // `directory` holding model.safetensors.index.json or model.safetensors, or a .safetensors file itself.
  // NotFound when there is neither; InvalidArgument for a malformed index or shard.
  static Result<SafetensorsModel> Open(const std::string& directory);

  struct Tensor {
    const TensorInfo* info = nullptr;
    std::span<const std::byte> bytes;
    const SafetensorsFile* file = nullptr;
  };
  // The tensor `name`, or NotFound naming the directory and the tensor when it is absent.
  Result<Tensor> Get(const std::string& name) const;
  bool Contains(const std::string& name) const;
  std::vector<std::string> names() const;  // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }

 private:
  std::string directory_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, Tensor> tensors_;
};

// `count` elements of an F32, F16 or BF16 tensor as float32 (F32 copied; F16 and BF16 widened exactly).
// `bytes` must hold exactly count × dtype size bytes and may be unaligned. InvalidArgument for any other
// dtype or size.
Status ConvertToFloat32(TensorDtype dtype, std::span<const std::byte> bytes, float* out, size_t count);

// A tensor to write: its bytes are dtype-encoded, row-major.
struct TensorToWrite {
  std::string name;
  TensorDtype dtype = TensorDtype::kF32;
  std::vector<int64_t> shape;
  std::span<const std::byte> bytes;
};
// Writes a safetensors file (tensors in the order given, header padded with spaces to a multiple of 8 as
// the reference writer does; "__metadata__" only when `metadata` is not empty). InvalidArgument naming
// `path` for a size that does not match the shape, a negative dimension, a duplicate or reserved name.
Status WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                        const std::map<std::string, std::string>& metadata = {});

}  // namespace tandem
