#include "tandem/base/strings.hpp"

#include <charconv>
#include <cstdio>

namespace tandem {

std::string AsciiLower(std::string_view text) {
  std::string lower(text);
  for (char& c : lower) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return lower;
}

std::string ShortNumber(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%g", value);
  return text;
}

std::string_view TrimWhitespace(std::string_view text) {
  constexpr std::string_view kBlank = " \t\r\n\v\f";
  const size_t begin = text.find_first_not_of(kBlank);
  if (begin == std::string_view::npos) return {};
  return text.substr(begin, text.find_last_not_of(kBlank) - begin + 1);
}

std::optional<int> ParseInt(std::string_view text) {
  int value = 0;
  const char* end = text.data() + text.size();
  const auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end) return std::nullopt;
  return value;
}

Result<HostPort> ParseHostPort(std::string_view text, std::string_view default_host) {
  const size_t colon = text.rfind(':');
  const std::string_view port_text = colon == std::string_view::npos ? text : text.substr(colon + 1);
  std::string_view host = colon == std::string_view::npos ? std::string_view() : text.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = default_host;
  if (host.empty()) return InvalidArgument("'" + std::string(text) + "' is not host:port");
  HostPort parsed{.host = std::string(host)};
  const char* end = port_text.data() + port_text.size();
  const auto [ptr, error] = std::from_chars(port_text.data(), end, parsed.port);
  if (port_text.empty() || error != std::errc() || ptr != end) {
    return InvalidArgument("'" + std::string(text) + "': '" + std::string(port_text) +
                           "' is not a port number");
  }
  return parsed;
}

}  // namespace tandem
