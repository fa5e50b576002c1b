// Small text helpers every layer needs, one copy each: ASCII case folding (header names, units, enum
// spellings), trimming, and "host:port" addresses. ASCII only on purpose: what they read are protocol tokens
// and flags, never user text (the tokenizers do Unicode).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tandem/base/status.hpp"

namespace tandem {

std::string AsciiLower(std::string_view text);

// `value` as printf's %g writes it ("0.05", "1e+300", "nan"): how error messages quote a bad number.
std::string ShortNumber(double value);

// `text` without leading and trailing spaces, tabs, CR, LF, VT and FF.
std::string_view TrimWhitespace(std::string_view text);

// `text` as a decimal int (an optional '-', then digits, nothing else); nullopt when it is not one or
// does not fit.
std::optional<int> ParseInt(std::string_view text);

struct HostPort {
  std::string host;  // without the brackets of "[v6]"
  uint16_t port = 0;
};

// "HOST:PORT" or "[V6]:PORT". With a `default_host`, ":PORT" and "PORT" take it as their host; without one,
// they are errors. The port is a decimal number in 0..65535. Errors name `text`.
Result<HostPort> ParseHostPort(std::string_view text, std::string_view default_host = {});

}  // namespace tandem
