// Fuzz target: ParseSafetensorsHeader on an arbitrary file. What parses must be what the format promises:
// tensors sorted and covering the data section exactly, each the size its dtype and shape imply; the same
// file opened through SafetensorsFile gives the same tensors, every Data() span lies inside the mapping,
// float tensors widen exactly (F32 bit for bit, BF16 to its bits << 16, F16 back to the same half), and
// WriteSafetensors of what was read reads back identical.
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "tandem/model/safetensors.hpp"

namespace {

using namespace tandem;

// The header's own promises, checked on the parsed structure.
void CheckHeader(const SafetensorsHeader& header, size_t size) {
  FUZZ_CHECK(header.data_start >= 8 && header.data_start <= size);
  uint64_t covered = 0;
  for (const TensorInfo& tensor : header.tensors) {
    FUZZ_CHECK(tensor.name != "__metadata__");
    FUZZ_CHECK(tensor.begin == covered && tensor.begin <= tensor.end);
    for (const int64_t dim : tensor.shape) FUZZ_CHECK(dim >= 0);
    FUZZ_CHECK(tensor.elements() >= 0);
    FUZZ_CHECK(static_cast<uint64_t>(tensor.elements()) * TensorDtypeSize(tensor.dtype) ==
               tensor.end - tensor.begin);
    covered = tensor.end;
  }
  FUZZ_CHECK(covered == size - header.data_start);
}

// Widens a float tensor and checks every value against its encoding.
void CheckFloats(const TensorInfo& tensor, std::span<const std::byte> bytes) {
  const auto count = static_cast<size_t>(tensor.elements());
  std::vector<float> values(count);
  const Status status = ConvertToFloat32(tensor.dtype, bytes, values.data(), count);
  const bool is_float = tensor.dtype == TensorDtype::kF32 || tensor.dtype == TensorDtype::kF16 ||
                        tensor.dtype == TensorDtype::kBF16;
  FUZZ_CHECK(status.ok() == is_float);
  // One value more than the bytes hold is refused, whatever the dtype.
  std::vector<float> extra(count + 1);
  FUZZ_CHECK(!ConvertToFloat32(tensor.dtype, bytes, extra.data(), count + 1).ok());
  if (!is_float) return;
  for (size_t i = 0; i < count; ++i) {
    uint32_t widened = 0;
    std::memcpy(&widened, &values[i], 4);
    if (tensor.dtype == TensorDtype::kF32) {
      FUZZ_CHECK(std::memcmp(&widened, bytes.data() + 4 * i, 4) == 0);
      continue;
    }
    uint16_t bits = 0;
    std::memcpy(&bits, bytes.data() + 2 * i, 2);
    if (tensor.dtype == TensorDtype::kBF16) {
      FUZZ_CHECK(widened == uint32_t{bits} << 16);
    } else if (std::isnan(values[i])) {
      FUZZ_CHECK((bits & 0x7C00) == 0x7C00 && (bits & 0x03FF) != 0);
    } else {
      FUZZ_CHECK(c10::Half(values[i]).x == bits);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static tandem::fuzz::MemoryFile input;
  static tandem::fuzz::MemoryFile rewritten;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  auto parsed = ParseSafetensorsHeader(bytes, "input");
  if (!parsed.ok()) {
    FUZZ_CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    FUZZ_CHECK(parsed.status().message().rfind("input: ", 0) == 0);
    return 0;
  }
  CheckHeader(*parsed, size);

  // The same bytes as a file: the same tensors, and every Data() span inside the mapping.
  auto file = SafetensorsFile::Open(input.Write({data, size}));
  FUZZ_CHECK(file.ok());
  FUZZ_CHECK(file->tensors().size() == parsed->tensors.size());
  FUZZ_CHECK(file->metadata() == parsed->metadata);
  const std::byte* map_begin = file->file().bytes().data();
  const std::byte* map_end = map_begin + file->file().size();
  std::vector<TensorToWrite> to_write;
  for (size_t i = 0; i < file->tensors().size(); ++i) {
    const TensorInfo& tensor = file->tensors()[i];
    const TensorInfo& expected = parsed->tensors[i];
    FUZZ_CHECK(tensor.name == expected.name && tensor.dtype == expected.dtype &&
               tensor.shape == expected.shape && tensor.begin == expected.begin &&
               tensor.end == expected.end);
    FUZZ_CHECK(file->Find(tensor.name) == &tensor);
    const auto tensor_bytes = file->Data(tensor);
    FUZZ_CHECK(tensor_bytes.size() == tensor.end - tensor.begin);
    if (!tensor_bytes.empty()) {
      FUZZ_CHECK(tensor_bytes.data() >= map_begin && tensor_bytes.data() + tensor_bytes.size() <= map_end);
      FUZZ_CHECK(tensor_bytes.data() == map_begin + parsed->data_start + tensor.begin);
    }
    CheckFloats(tensor, tensor_bytes);
    to_write.push_back(
        {.name = tensor.name, .dtype = tensor.dtype, .shape = tensor.shape, .bytes = tensor_bytes});
  }
  // A TensorInfo that does not fit the file yields no bytes rather than a wild read.
  TensorInfo outside{.name = "outside", .begin = 0, .end = size + 1};
  FUZZ_CHECK(file->Data(outside).empty());

  // Written back in offset order, the file reads back the same.
  const std::string& path = rewritten.Write({});
  FUZZ_CHECK(WriteSafetensors(path, to_write, file->metadata()).ok());
  auto again = SafetensorsFile::Open(path);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(again->metadata() == file->metadata());
  FUZZ_CHECK(again->tensors().size() == to_write.size());
  for (size_t i = 0; i < to_write.size(); ++i) {
    const TensorInfo& tensor = again->tensors()[i];
    FUZZ_CHECK(tensor.name == to_write[i].name && tensor.dtype == to_write[i].dtype &&
               tensor.shape == to_write[i].shape);
    const auto tensor_bytes = again->Data(tensor);
    FUZZ_CHECK(tensor_bytes.size() == to_write[i].bytes.size());
    FUZZ_CHECK(tensor_bytes.empty() ||
               std::memcmp(tensor_bytes.data(), to_write[i].bytes.data(), tensor_bytes.size()) == 0);
  }
  return 0;
}
