// tandem-scheduler: balances many edges over many cloud tails (tail registry from heartbeats, plan API).
#include <string>
#include <vector>

#include "tandem/scheduler/scheduler_service.hpp"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  return tandem::scheduler::RunSchedulerService(args);
}
