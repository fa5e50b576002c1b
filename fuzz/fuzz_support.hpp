// Helpers shared by the fuzz targets: a cursor that splits the fuzzer's bytes into fields, a check that
// aborts (so libFuzzer and the replay driver both report it), and an in-memory file for loaders that
// take a path. Everything here builds with gcc too: the replay driver runs the targets under `make test`.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

// A property that must hold for every input; a failure is a finding, reported like a crash.
#define FUZZ_CHECK(condition)                                                                 \
  do {                                                                                        \
    if (!(condition)) {                                                                       \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
      std::abort();                                                                           \
    }                                                                                         \
  } while (0)

namespace tandem::fuzz {

// Takes fixed-size fields off the front of the input; reads past the end yield zeros, so every input
// maps to some field values and the rest of the bytes.
class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, size_t size) : bytes_(data, size) {}

  template <typename T>
  T Take() {
    T value{};
    const size_t n = std::min(sizeof(T), bytes_.size());
    std::memcpy(&value, bytes_.data(), n);
    bytes_ = bytes_.subspan(n);
    return value;
  }
  std::string_view TakeString(size_t max_length) {
    const size_t n = std::min(max_length, bytes_.size());
    const std::string_view text(reinterpret_cast<const char*>(bytes_.data()), n);
    bytes_ = bytes_.subspan(n);
    return text;
  }
  std::span<const uint8_t> Rest() const { return bytes_; }

 private:
  std::span<const uint8_t> bytes_;
};

// One memfd for the whole run, rewritten per input: loaders that want a path open /proc/self/fd/N and see
// a regular file holding exactly the input, with no disk I/O.
class MemoryFile {
 public:
  MemoryFile() : fd_(::memfd_create("tandem-fuzz-input", MFD_CLOEXEC)) {
    if (fd_ < 0) {
      std::perror("memfd_create");
      std::abort();
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;

  // Replaces the file's contents with `bytes` and returns its path.
  const std::string& Write(std::span<const uint8_t> bytes) {
    FUZZ_CHECK(::ftruncate(fd_, 0) == 0);
    size_t written = 0;
    while (written < bytes.size()) {
      const ssize_t n = ::pwrite(fd_, bytes.data() + written, bytes.size() - written, written);
      FUZZ_CHECK(n > 0);
      written += static_cast<size_t>(n);
    }
    return path_;
  }

 private:
  int fd_;
  std::string path_;
};

}  // namespace tandem::fuzz
