// Helpers shared by all tests.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace tandem::testing {

// The shared data folder: $TANDEM_SHARED, else ../shared beside the checkout. Empty when neither exists.
std::filesystem::path SharedDir();
// SharedDir()/models/stories260K/{stories260K.bin,tok512.bin}; GTEST_SKIP-worthy when absent.
std::filesystem::path Stories260KModel();
std::filesystem::path Stories260KTokenizer();
std::filesystem::path GoldenFile();

// build/bin, from $TANDEM_BIN_DIR.
std::filesystem::path BinDir();

// A fresh directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;  // the process's exit status; 128 + signal when killed by one
  std::string out;     // standard output
  std::string err;     // standard error
};

// Runs build/bin/<program> with `args` (no shell), capturing both streams; kills it after
// `timeout_seconds`.
CommandResult RunProgram(const std::string& program, const std::vector<std::string>& args,
                         int timeout_seconds = 120);

std::vector<char> ReadBytes(const std::filesystem::path& path);
void WriteBytes(const std::filesystem::path& path, const std::vector<char>& bytes);

}  // namespace tandem::testing
