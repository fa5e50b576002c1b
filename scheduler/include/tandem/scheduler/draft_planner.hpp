// TEMPORARY stub until the draft planner lands (wt-plan).
#pragma once
namespace tandem::scheduler {
struct DraftCosts {
  double round_trip_ms = 0;
  double step_ms = 0;
  double row_ms = 0;
  double draft_token_ms = 0;
};
class DraftLengthPolicy {
 public:
  explicit DraftLengthPolicy(int fixed) : fixed_(fixed) {}
  int Next(const DraftCosts&) { return fixed_ > 0 ? fixed_ : 4; }
  void Observe(int, int) {}
 private:
  int fixed_;
};
}  // namespace tandem::scheduler
