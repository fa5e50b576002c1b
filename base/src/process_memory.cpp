#include "tandem/base/process_memory.hpp"

#include <fstream>
#include <string>

namespace tandem {

double ProcessMemoryMegabytes(std::string_view field) {
  std::ifstream status("/proc/self/status");
  const std::string prefix = std::string(field) + ":";
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with(prefix)) return std::stod(line.substr(prefix.size())) / 1024.0;  // the value is KiB
  }
  return 0;
}

bool ResetPeakResidentMemory() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

}  // namespace tandem
