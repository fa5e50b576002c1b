// A read-only memory map of a whole file: how checkpoints are loaded without copying their weights.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "tandem/base/status.hpp"

namespace tandem {

// Move-only owner of a PROT_READ mapping. Thread-safe to read; unmapped on destruction.
class MappedFile {
 public:
  static Result<MappedFile> Open(const std::string& path);

  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  std::span<const std::byte> bytes() const { return {data_, size_}; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Tells the kernel this process no longer needs the pages of [begin, begin+length) (e.g. float32
  // weights that were quantized): they leave the resident set and are read again from the file on access.
  void Release(const void* begin, size_t length) const;

 private:
  MappedFile(std::string path, const std::byte* data, size_t size)
      : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace tandem
