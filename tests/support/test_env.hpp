// Helpers shared by all tests.
#pragma once

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::testing {

// The shared data folder: $TANDEM_SHARED (a test failure when it has no models/), else ../shared beside
// the checkout. Empty when neither is there: tests that need it then skip.
std::filesystem::path SharedDir();
// SharedDir()/models/stories260K/{stories260K.bin,tok512.bin}; GTEST_SKIP-worthy when absent.
std::filesystem::path Stories260KModel();
std::filesystem::path Stories260KTokenizer();
std::filesystem::path GoldenFile();
// The golden records (one JSON object per line: prompt, steps, prompt_ids, ids, text).
std::vector<nlohmann::json> GoldenRecords();

// build/bin, from $TANDEM_BIN_DIR.
std::filesystem::path BinDir();
// The checkout (deployment files, scripts), from $TANDEM_SOURCE_DIR; else the current directory's parent
// when it is the checkout (a test run from build/). Empty when neither.
std::filesystem::path SourceDir();

// `tandem generate --json` on stories260K with `prompt` and `steps`, then `extra` flags.
std::vector<std::string> GenerateArgs(const std::string& prompt, int steps,
                                      const std::vector<std::string>& extra = {});

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
// `timeout_seconds`. A `program` with a slash in it is a path, run as given (a system tool, a script).
CommandResult RunProgram(const std::string& program, const std::vector<std::string>& args,
                         int timeout_seconds = 120);

// A program from build/bin (or a path, as for RunProgram) running beside the test, its stderr captured to
// a file. Stop() or the destructor sends SIGTERM, then SIGKILL after a grace period.
class BackgroundProcess {
 public:
  BackgroundProcess(const std::string& program, const std::vector<std::string>& args);
  ~BackgroundProcess();
  BackgroundProcess(const BackgroundProcess&) = delete;
  BackgroundProcess& operator=(const BackgroundProcess&) = delete;

  // The first stderr line containing `text`; empty after `timeout_ms` or when the process has exited.
  std::string WaitForLine(const std::string& text, int timeout_ms = 30000) const;
  std::string Stderr() const;
  bool Running();
  pid_t pid() const { return pid_; }
  void Signal(int signal_number);
  // SIGTERM, then waits (SIGKILL after 10 s); the exit code, 128 + signal when killed by one.
  int Stop();

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  TempDir log_dir_;
  std::filesystem::path log_path_;
};

// Polls `condition` every 20 ms until it holds or `timeout` passes; its last value.
bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

// The value of `key=` in a log line ("... endpoint=tcp://127.0.0.1:4000 ..."), up to the next space.
std::string LogField(const std::string& line, const std::string& key);

std::vector<char> ReadBytes(const std::filesystem::path& path);
// Replaces `path` with `bytes` (a test failure when it cannot be written).
void WriteBytes(const std::filesystem::path& path, std::string_view bytes);
void WriteBytes(const std::filesystem::path& path, const std::vector<char>& bytes);

}  // namespace tandem::testing
