// A cloud tail's side of the scheduler: a background thread that POSTs the tail's report to the
// scheduler's /v1/tails/heartbeat every interval.
//
// Failures (scheduler unreachable, slow, or refusing the report) are logged once per change, not on every
// beat: one warning when beats start failing or fail differently, one info line when they are accepted
// again; beats go on at the same interval throughout. Stop(draining = true) sends one last report flagged
// "draining", which makes the scheduler drop the tail at once instead of after its dead_after.
//
// Threads: `report` runs on the sender's thread before every beat and must be thread-safe (it reads the
// tail's live counters). Stop() is idempotent and waits for a beat in flight (at most the request timeout).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "tandem/base/status.hpp"
#include "tandem/scheduler/tail_registry.hpp"
#include "tandem/services/http_client.hpp"
#include "tandem/services/request_signing.hpp"

namespace tandem::scheduler {

struct HeartbeatOptions {
  std::string scheduler;                               // [http[s]://]HOST:PORT of tandem-scheduler's HTTP API
  std::chrono::milliseconds interval{1000};            // between the starts of two beats
  std::chrono::milliseconds timeout{2000};             // one beat's HTTP exchange at most
  std::optional<services::RequestSigner> signer;       // signs every beat (the scheduler's control secret)
  std::shared_ptr<const services::HttpClientTls> tls;  // checks an https:// scheduler; null: system CAs
};

class HeartbeatSender {
 public:
  // Sends the first beat at once, then every interval. InvalidArgument for an empty scheduler address or
  // a non-positive interval or timeout.
  static Result<std::unique_ptr<HeartbeatSender>> Start(HeartbeatOptions options,
                                                        std::function<TailReport()> report);
  ~HeartbeatSender();  // Stop(false)
  HeartbeatSender(const HeartbeatSender&) = delete;
  HeartbeatSender& operator=(const HeartbeatSender&) = delete;

  // Stops the beats; with `draining`, first sends one report flagged draining (best effort, within the
  // timeout).
  void Stop(bool draining = false);

  int64_t accepted() const { return accepted_.load(); }  // beats the scheduler answered with 200
  int64_t failed() const { return failed_.load(); }

 private:
  HeartbeatSender(HeartbeatOptions options, std::function<TailReport()> report);
  void Run();
  // One POST; logs a change of outcome. Returns whether the scheduler accepted it.
  bool Beat(bool draining);

  const HeartbeatOptions options_;
  const std::function<TailReport()> report_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool stopped_ = false;
  std::string last_error_;  // "" while beats are accepted; only the sender thread (or Stop after it) uses it
  bool ever_accepted_ = false;
  std::atomic<int64_t> accepted_{0};
  std::atomic<int64_t> failed_{0};
  std::thread thread_;
};

}  // namespace tandem::scheduler
