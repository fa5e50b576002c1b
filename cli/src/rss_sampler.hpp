// The resident memory of the processes tandem loadgen watches (--watch NAME=PID): read from /proc, and
// sampled on a thread of its own through a run, so a soak shows whether a service grows and when.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem::cli {

struct WatchedProcess {
  std::string name;
  int pid = 0;
  int64_t before_kb = -1;  // VmRSS at the baseline (after the warm-up); -1: unreadable
  int64_t after_kb = -1;   // at the end
  int64_t peak_kb = -1;    // the highest sample
};

// VmRSS of a process in KiB, -1 when it cannot be read (the process is gone).
int64_t ReadRssKb(int pid);
// KiB in MB (of 1024 KiB); -1 stays -1.
double KibToMb(int64_t kb);

// The processes of NAME=PID specs; InvalidArgument for a malformed spec or a process whose
// /proc/PID/status cannot be read.
Result<std::vector<WatchedProcess>> ParseWatch(const std::vector<std::string>& specs);

// Requests sent and answered so far, for the samples and the progress line.
struct RequestCounts {
  int64_t requests = 0;
  int64_t ok = 0;
};

// Samples the watched processes' RSS every `interval` from construction until Stop(): the soak's time
// series, and with `progress` a line on stdout per sample so a long run shows it is alive. Updates each
// process's peak_kb from its thread: `watched` must not be read elsewhere until Stop() returns. `counts`
// is called on that thread and must be thread-safe.
class RssSampler {
 public:
  RssSampler(std::vector<WatchedProcess>& watched, std::chrono::duration<double> interval, bool progress,
             std::function<RequestCounts()> counts);
  ~RssSampler() { Stop(); }
  // Takes a last sample and joins the thread; idempotent.
  void Stop();
  // [{"t_s": ..., "<name>_mb": ..., "requests": ..., "ok": ...}, ...] (after Stop).
  const nlohmann::json& series() const { return series_; }

 private:
  void Loop();
  void Sample();

  std::vector<WatchedProcess>& watched_;
  const std::chrono::duration<double> interval_;
  const bool progress_;
  const std::function<RequestCounts()> counts_;
  const std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  nlohmann::json series_ = nlohmann::json::array();
  std::thread thread_;
};

}  // namespace tandem::cli
