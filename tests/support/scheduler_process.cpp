#include "scheduler_process.hpp"

namespace tandem::testing {

SchedulerProcess::SchedulerProcess(const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"--listen", "127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<BackgroundProcess>("tandem-scheduler", args);
  address_ = LogField(process_->WaitForLine("msg=serving"), "listen");
}

}  // namespace tandem::testing
