#include "tandem/base/flags.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <sstream>

namespace tandem {
namespace {

template <typename Number>
Status ParseNumber(const std::string& flag, const std::string& text, Number* target) {
  Number value{};
  const char* end = text.data() + text.size();
  auto [ptr, error] = std::from_chars(text.data(), end, value);
  if (text.empty() || error != std::errc() || ptr != end) {
    return InvalidArgument("--" + flag + ": '" + text + "' is not a valid number");
  }
  if constexpr (std::is_floating_point_v<Number>) {
    if (!std::isfinite(value)) return InvalidArgument("--" + flag + ": '" + text + "' is not finite");
  }
  *target = value;
  return Status::Ok();
}

template <typename Value>
std::string ToText(const Value& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

}  // namespace

FlagSet::FlagSet(std::string usage, std::string env_prefix)
    : usage_(std::move(usage)), env_prefix_(std::move(env_prefix)) {}

void FlagSet::Add(Flag flag) {
  flags_.push_back(std::move(flag));
}

void FlagSet::String(const std::string& name, std::string* target, const std::string& help) {
  Add({name, help, *target, false, false, [target](const std::string& text) {
         *target = text;
         return Status::Ok();
       }});
}

void FlagSet::Strings(const std::string& name, std::vector<std::string>* target, const std::string& help) {
  Add({name, help + " (repeatable)", "", false, false, [target](const std::string& text) {
         target->push_back(text);
         return Status::Ok();
       }});
}

void FlagSet::List(const std::string& name, std::string* target, const std::string& help) {
  auto given = std::make_shared<bool>(false);  // replaces the default, then appends
  Add({name, help + " (comma-separated, or repeated)", *target, false, false,
       [target, given](const std::string& text) {
         *target = *given ? *target + "," + text : text;
         *given = true;
         return Status::Ok();
       }});
}

void FlagSet::Int(const std::string& name, int* target, const std::string& help) {
  Add({name, help, ToText(*target), false, false,
       [name, target](const std::string& text) { return ParseNumber(name, text, target); }});
}

void FlagSet::UInt64(const std::string& name, uint64_t* target, const std::string& help) {
  Add({name, help, ToText(*target), false, false,
       [name, target](const std::string& text) { return ParseNumber(name, text, target); }});
}

void FlagSet::Float(const std::string& name, float* target, const std::string& help) {
  Add({name, help, ToText(*target), false, false,
       [name, target](const std::string& text) { return ParseNumber(name, text, target); }});
}

void FlagSet::Bool(const std::string& name, bool* target, const std::string& help) {
  Add({name, help, *target ? "true" : "false", true, false, [name, target](const std::string& text) {
         if (text == "true" || text == "1") {
           *target = true;
         } else if (text == "false" || text == "0") {
           *target = false;
         } else {
           return InvalidArgument("--" + name + ": expected true or false, got '" + text + "'");
         }
         return Status::Ok();
       }});
}

FlagSet::Flag* FlagSet::Find(const std::string& name) {
  for (auto& flag : flags_) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

bool FlagSet::WasSet(const std::string& name) const {
  for (const auto& flag : flags_) {
    if (flag.name == name) return flag.set;
  }
  return false;
}

std::string FlagSet::EnvName(const std::string& flag_name) const {
  std::string env = env_prefix_ + "_";
  for (char c : flag_name)
    env += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return env;
}

Status FlagSet::Parse(std::span<const std::string> args) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return Status::Ok();
    }
    if (arg.rfind("--", 0) != 0 || arg.size() == 2) {
      return InvalidArgument("unexpected argument '" + arg + "' (see --help)");
    }
    const auto equals = arg.find('=');
    const std::string name = arg.substr(2, equals == std::string::npos ? std::string::npos : equals - 2);
    Flag* flag = Find(name);
    if (flag == nullptr) return InvalidArgument("unknown flag --" + name + " (see --help)");
    std::string value;
    if (equals != std::string::npos) {
      value = arg.substr(equals + 1);
    } else if (flag->is_switch) {
      value = "true";
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return InvalidArgument("--" + name + " needs a value");
    }
    TANDEM_RETURN_IF_ERROR(flag->assign(value));
    flag->set = true;
  }
  if (!env_prefix_.empty()) {
    for (auto& flag : flags_) {
      const char* env = std::getenv(EnvName(flag.name).c_str());
      if (flag.set || env == nullptr) continue;
      TANDEM_RETURN_IF_ERROR(flag.assign(env).WithContext(EnvName(flag.name)));
      flag.set = true;
    }
  }
  return Status::Ok();
}

std::string FlagSet::Usage() const {
  std::ostringstream out;
  out << usage_ << "\n\nFlags:\n";
  for (const auto& flag : flags_) {
    out << "  --" << flag.name << (flag.is_switch ? "" : " VALUE") << "\n      " << flag.help;
    if (!flag.default_text.empty()) out << " (default: " << flag.default_text << ")";
    if (!env_prefix_.empty()) out << " [env " << EnvName(flag.name) << "]";
    out << "\n";
  }
  return out.str();
}

std::vector<std::string_view> SplitList(std::string_view text, char separator) {
  std::vector<std::string_view> pieces;
  for (size_t begin = 0;;) {
    const size_t end = std::min(text.find(separator, begin), text.size());
    pieces.push_back(text.substr(begin, end - begin));
    if (end == text.size()) return pieces;
    begin = end + 1;
  }
}

}  // namespace tandem
