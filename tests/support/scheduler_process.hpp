// A real tandem-scheduler for integration tests, listening on a free port of 127.0.0.1.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "test_env.hpp"

namespace tandem::testing {

class SchedulerProcess {
 public:
  // `extra_args` follow --listen (--dead-after-ms, --per-plan-load, ...).
  explicit SchedulerProcess(const std::vector<std::string>& extra_args = {});
  bool started() const { return !address_.empty(); }       // false: see log()
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT", for --scheduler and HTTP
  std::string log() const { return process_->Stderr(); }
  BackgroundProcess& process() { return *process_; }

 private:
  std::unique_ptr<BackgroundProcess> process_;
  std::string address_;
};

}  // namespace tandem::testing
