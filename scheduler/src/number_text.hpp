// Numbers in the scheduler's error messages, written once: the planner, the tail registry and the API's
// JSON checks all quote a bad value the same way.
#pragma once

#include <cstdio>
#include <string>

namespace tandem::scheduler {

// `value` as printf's %g writes it ("0.05", "1e+300", "nan").
inline std::string ShortNumber(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

}  // namespace tandem::scheduler
