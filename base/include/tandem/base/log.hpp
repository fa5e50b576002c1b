// One-line structured logs on stderr: "2026-11-28T14:03:05.123Z level=warn component=cloud msg="..." k=v".
// Services log events (start, refusals, expiry), never per-token traffic.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace tandem {

enum class LogLevel { kInfo, kWarn, kError };

using LogField = std::pair<std::string_view, std::string>;

// Thread-safe; each call writes one whole line.
void Log(LogLevel level, std::string_view component, std::string_view message,
         std::initializer_list<LogField> fields = {});

}  // namespace tandem
