// Command-line flags declared once each, with help text: `--name value` or `--name=value`.
//
// With an environment prefix (e.g. "TANDEM"), every flag can also come from the environment
// (--max-kv-mb ← TANDEM_MAX_KV_MB); a flag on the command line wins. Unknown flags and stray
// positional arguments are errors.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

// The pieces of a list-valued flag between `separator`s, empty ones included: "a,,b" → {"a", "", "b"},
// "" → {""}. The views point into `text`.
std::vector<std::string_view> SplitList(std::string_view text, char separator = ',');

class FlagSet {
 public:
  explicit FlagSet(std::string usage, std::string env_prefix = "");

  // Each target keeps its default until a value is parsed into it; targets must outlive Parse.
  void String(const std::string& name, std::string* target, const std::string& help);
  // Repeatable: every occurrence appends its value (`--watch a=1 --watch b=2`).
  void Strings(const std::string& name, std::vector<std::string>* target, const std::string& help);
  // A comma-separated list that may also be given several times: `--cloud A --cloud B` reads as "A,B"
  // (a repeated String flag would keep only the last).
  void List(const std::string& name, std::string* target, const std::string& help);
  void Int(const std::string& name, int* target, const std::string& help);
  void UInt64(const std::string& name, uint64_t* target, const std::string& help);
  void Float(const std::string& name, float* target, const std::string& help);
  // A switch: `--name` (or `--name=true|false`) sets it.
  void Bool(const std::string& name, bool* target, const std::string& help);

  Status Parse(std::span<const std::string> args);

  bool help_requested() const { return help_requested_; }
  bool WasSet(const std::string& name) const;
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string help;
    std::string default_text;
    bool is_switch = false;
    bool set = false;
    std::function<Status(const std::string&)> assign;
  };
  void Add(Flag flag);
  Flag* Find(const std::string& name);
  std::string EnvName(const std::string& flag_name) const;

  std::string usage_;
  std::string env_prefix_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace tandem
