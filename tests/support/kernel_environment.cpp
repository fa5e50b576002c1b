// Linked into every test program as an object (so that nothing needs to reference it): under
// TANDEM_KERNELS naming a table this CPU cannot run (a test registered once per table), every test of the
// program skips, and ctest shows it skipped; the programs it starts would refuse to run.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "tandem/engine/linear.hpp"

namespace tandem::testing {
namespace {

class KernelTableEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    const char* requested = std::getenv("TANDEM_KERNELS");
    if (requested == nullptr) return;
    std::string error;
    if (kernels::ChooseTable(requested, &error) == nullptr) {
      // GoogleTest 1.12 reports tests skipped here as passed: this line is what ctest's skip pattern sees.
      std::printf("[  SKIPPED ] every test: %s\n", error.c_str());
      GTEST_SKIP() << error;
    }
    std::printf("kernels: %s\n", ActiveKernels().name);
  }
};

[[maybe_unused]] const auto* const kKernelTableEnvironment =
    ::testing::AddGlobalTestEnvironment(new KernelTableEnvironment);

}  // namespace
}  // namespace tandem::testing
