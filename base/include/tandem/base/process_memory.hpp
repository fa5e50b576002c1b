// This process's memory as Linux reports it in /proc/self/status.
#pragma once

#include <string_view>

namespace tandem {

// A /proc/self/status size field ("VmRSS": resident now, "VmHWM": the peak resident size) in MiB; 0 when
// it cannot be read.
double ProcessMemoryMegabytes(std::string_view field);
// Starts a new peak at the current resident size (proc(5) clear_refs "5"); false when refused.
bool ResetPeakResidentMemory();

}  // namespace tandem
