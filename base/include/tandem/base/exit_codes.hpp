// The exit codes of every Tandem program (the services, the link emulator, the CLI), in one place so a
// small tool can use them without linking the services.
#pragma once

namespace tandem {

inline constexpr int kExitFailure = 1;  // a failure at run time (bad file, bind failure, model error)
inline constexpr int kExitUsage = 2;    // bad flags or arguments

}  // namespace tandem
