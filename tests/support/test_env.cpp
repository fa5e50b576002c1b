#include "test_env.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <random>
#include <stdexcept>
#include <thread>

namespace tandem::testing {
namespace fs = std::filesystem;

fs::path SharedDir() {
  // Named but unusable is a failure, not a skip: the data the tests need is missing.
  if (const char* env = std::getenv("TANDEM_SHARED"); env && *env) {
    if (!fs::is_directory(fs::path(env) / "models")) {
      ADD_FAILURE() << "TANDEM_SHARED=" << env << " has no models/ folder";
    }
    return env;
  }
  for (fs::path candidate : {fs::path("../shared"), fs::path("../../shared"), fs::path("../../../shared")}) {
    if (fs::is_directory(candidate / "models")) return fs::absolute(candidate);
  }
  return {};
}

fs::path Stories260KModel() {
  return SharedDir() / "models/stories260K/stories260K.bin";
}
fs::path Stories260KTokenizer() {
  return SharedDir() / "models/stories260K/tok512.bin";
}
fs::path GoldenFile() {
  return SharedDir() / "golden/stories260K-greedy.jsonl";
}

std::vector<nlohmann::json> GoldenRecords() {
  std::vector<nlohmann::json> records;
  std::ifstream in(GoldenFile());
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  }
  return records;
}

fs::path BinDir() {
  if (const char* env = std::getenv("TANDEM_BIN_DIR"); env && *env) return env;
  return fs::current_path() / "bin";
}

fs::path SourceDir() {
  if (const char* env = std::getenv("TANDEM_SOURCE_DIR"); env && *env) return env;
  if (fs::exists("../cmake/TandemTesting.cmake")) return fs::absolute("..").lexically_normal();
  return {};
}

std::vector<std::string> GenerateArgs(const std::string& prompt, int steps,
                                      const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"generate",
                                   "--model",
                                   Stories260KModel().string(),
                                   "--tokenizer",
                                   Stories260KTokenizer().string(),
                                   "--prompt",
                                   prompt,
                                   "--steps",
                                   std::to_string(steps),
                                   "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

TempDir::TempDir() {
  std::random_device device;
  path_ = fs::temp_directory_path() /
          ("tandem-test-" + std::to_string(::getpid()) + "-" + std::to_string(device()));
  fs::create_directories(path_);
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

namespace {

// build/bin/<program>, or `program` itself when it is a path.
std::string ProgramPath(const std::string& program) {
  return program.find('/') != std::string::npos ? program : (BinDir() / program).string();
}

// In a forked child: becomes `binary` with `args`, or exits 127.
[[noreturn]] void ExecProgram(const std::string& binary, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  ::execv(binary.c_str(), argv.data());
  ::_exit(127);
}

}  // namespace

CommandResult RunProgram(const std::string& program, const std::vector<std::string>& args,
                         int timeout_seconds) {
  const std::string binary = ProgramPath(program);
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0) throw std::runtime_error("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    ExecProgram(binary, args);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);

  CommandResult result;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_streams = 2;
  bool timed_out = false;
  while (open_streams > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buffer[65536];
      const ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_streams;
      }
    }
  }
  if (timed_out) ::kill(pid, SIGKILL);
  for (auto& fd : fds) {
    if (fd.fd >= 0) ::close(fd.fd);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (WIFEXITED(status)) {
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.exit_code = 128 + WTERMSIG(status);
  }
  if (timed_out) result.err += "\n[test harness: killed after timeout]";
  return result;
}

BackgroundProcess::BackgroundProcess(const std::string& program, const std::vector<std::string>& args)
    : log_path_(log_dir_ / "stderr.log") {
  const std::string binary = ProgramPath(program);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    const int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(log, STDERR_FILENO);
    ::dup2(null, STDOUT_FILENO);
    ExecProgram(binary, args);
  }
}

BackgroundProcess::~BackgroundProcess() {
  Stop();
}

std::string BackgroundProcess::Stderr() const {
  const std::vector<char> bytes = ReadBytes(log_path_);
  return {bytes.begin(), bytes.end()};
}

std::string BackgroundProcess::WaitForLine(const std::string& text, int timeout_ms) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string log = Stderr();
    if (const size_t at = log.find(text); at != std::string::npos) {
      const size_t begin = log.rfind('\n', at) == std::string::npos ? 0 : log.rfind('\n', at) + 1;
      return log.substr(begin, log.find('\n', at) - begin);
    }
    siginfo_t info{};  // WNOWAIT: look without reaping, so that Stop() still gets the exit status
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid != 0) {
      return {};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return {};
}

namespace {
int ExitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
}  // namespace

bool BackgroundProcess::Running() {
  if (pid_ <= 0 || exit_code_ >= 0) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) != pid_) return true;
  exit_code_ = ExitCode(status);
  return false;
}

void BackgroundProcess::Signal(int signal_number) {
  if (Running()) ::kill(pid_, signal_number);
}

int BackgroundProcess::Stop() {
  if (!Running()) return exit_code_;
  ::kill(pid_, SIGTERM);
  int status = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  exit_code_ = ExitCode(status);
  return exit_code_;
}

std::string LogField(const std::string& line, const std::string& key) {
  const std::string needle = " " + key + "=";
  const size_t at = line.find(needle);
  if (at == std::string::npos) return {};
  const size_t begin = at + needle.size();
  return line.substr(begin, line.find(' ', begin) - begin);
}

std::vector<char> ReadBytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void WriteBytes(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  EXPECT_TRUE(out) << "cannot write " << path;
}

void WriteBytes(const fs::path& path, const std::vector<char>& bytes) {
  WriteBytes(path, std::string_view(bytes.data(), bytes.size()));
}

bool WaitUntil(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

}  // namespace tandem::testing
