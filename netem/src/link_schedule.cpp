#include "tandem/netem/link_schedule.hpp"

#include <charconv>
#include <cmath>
#include <initializer_list>
#include <string>

#include "tandem/base/flags.hpp"
#include "tandem/base/strings.hpp"

namespace tandem::netem {
namespace {

// "1.5mbit" → {1.5, "mbit"}: a non-negative finite number followed by a unit.
Status SplitNumberAndUnit(std::string_view text, double* number, std::string* unit) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  const auto [ptr, error] = std::from_chars(begin, end, *number, std::chars_format::fixed);
  if (text.empty() || error != std::errc() || !std::isfinite(*number) || *number < 0 || text[0] == '-') {
    return InvalidArgument("'" + std::string(text) + "' does not start with a non-negative number");
  }
  *unit = AsciiLower(TrimWhitespace(std::string_view(ptr, static_cast<size_t>(end - ptr))));
  return Status::Ok();
}

struct Unit {
  std::string_view name;
  double scale;
};

// "1.5mbit" with units {..., {"mbit", 1e6}} → 1'500'000 (rounded); `what` ("rate") names the value in
// errors, which list the units.
Result<double> ParseScaled(std::string_view trimmed, std::string_view what,
                           std::initializer_list<Unit> units) {
  double number = 0;
  std::string unit;
  TANDEM_RETURN_IF_ERROR(SplitNumberAndUnit(trimmed, &number, &unit).WithContext(std::string(what)));
  std::string names;
  for (const Unit& candidate : units) {
    if (unit == candidate.name) return std::round(number * candidate.scale);
    names += names.empty() ? "" : (&candidate == units.end() - 1 ? " or " : ", ");
    names += candidate.name;
  }
  return InvalidArgument(std::string(what) + " '" + std::string(trimmed) + "': unit must be " + names);
}

// One phase's text, "DURATION:RATE:RTT" or "DURATION:down"; `context` names it in errors.
Result<LinkPhase> ParseLinkPhase(std::string_view phase_text, const std::string& context) {
  std::vector<std::string_view> fields = SplitList(phase_text, ':');
  for (std::string_view& field : fields) field = TrimWhitespace(field);
  const bool down = fields.size() == 2 && AsciiLower(fields[1]) == "down";
  if (!down && fields.size() != 3) {
    return InvalidArgument(context + ": expected DURATION:RATE:RTT or DURATION:down");
  }
  LinkPhase phase;
  auto duration = ParseLinkDuration(fields[0]);
  if (!duration.ok()) return duration.status().WithContext(context);
  if (duration->count() <= 0) return InvalidArgument(context + ": the duration must be positive");
  phase.duration = *duration;
  if (down) {
    phase.conditions = LinkConditions{.up = false};
    return phase;
  }
  auto rate = ParseLinkRate(fields[1]);
  if (!rate.ok()) return rate.status().WithContext(context);
  auto rtt = ParseLinkDuration(fields[2]);
  if (!rtt.ok()) return rtt.status().WithContext(context + " rtt");
  phase.conditions = LinkConditions{.rate_bps = *rate, .rtt = *rtt, .up = true};
  return phase;
}

}  // namespace

Result<int64_t> ParseLinkRate(std::string_view text) {
  const std::string_view trimmed = TrimWhitespace(text);
  // tc's "mbps" means megabytes per second; it is refused rather than guessed.
  TANDEM_ASSIGN_OR_RETURN(
      const double bps,
      ParseScaled(trimmed, "rate", {{"bit", 1}, {"kbit", 1e3}, {"mbit", 1e6}, {"gbit", 1e9}}));
  if (bps < 1 || bps > 1e13) {
    return InvalidArgument("rate '" + std::string(trimmed) + "' must be between 1bit and 10000gbit");
  }
  return static_cast<int64_t>(bps);
}

Result<std::chrono::microseconds> ParseLinkDuration(std::string_view text) {
  const std::string_view trimmed = TrimWhitespace(text);
  TANDEM_ASSIGN_OR_RETURN(
      const double us, ParseScaled(trimmed, "duration", {{"us", 1}, {"ms", 1e3}, {"s", 1e6}, {"m", 60e6}}));
  if (us > 1e15) return InvalidArgument("duration '" + std::string(trimmed) + "' is too long");
  return std::chrono::microseconds(static_cast<int64_t>(us));
}

Result<std::vector<LinkPhase>> ParseLinkSchedule(std::string_view text) {
  if (TrimWhitespace(text).empty()) return InvalidArgument("schedule is empty");
  std::vector<LinkPhase> phases;
  for (const std::string_view piece : SplitList(text)) {
    const std::string_view phase_text = TrimWhitespace(piece);
    const std::string context =
        "schedule phase " + std::to_string(phases.size()) + " ('" + std::string(phase_text) + "')";
    TANDEM_ASSIGN_OR_RETURN(LinkPhase phase, ParseLinkPhase(phase_text, context));
    phases.push_back(phase);
  }
  return phases;
}

}  // namespace tandem::netem
