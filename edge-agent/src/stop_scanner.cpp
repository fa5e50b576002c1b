#include "tandem/edge_agent/stop_scanner.hpp"

#include <algorithm>

namespace tandem::edge_agent {

StopScanner::StopScanner(std::vector<std::string> stops) : stops_(std::move(stops)) {
  for (const auto& stop : stops_) hold_ = std::max(hold_, stop.size() - 1);
}

std::string StopScanner::Add(const std::string& piece, bool& stopped) {
  text_ += piece;
  size_t end = text_.size();
  for (const auto& stop : stops_) {
    // No match can start in text already emitted: the held-back tail is longer than any stop prefix.
    const size_t at = text_.find(stop, emitted_);
    if (at != std::string::npos && at < end) {
      end = at;
      stopped = true;
    }
  }
  if (!stopped) end = text_.size() > hold_ ? std::max(emitted_, text_.size() - hold_) : emitted_;
  std::string out = text_.substr(emitted_, end - emitted_);
  emitted_ = end;
  if (stopped) text_.resize(end);
  return out;
}

std::string StopScanner::Flush() {
  std::string out = text_.substr(emitted_);
  emitted_ = text_.size();
  return out;
}

}  // namespace tandem::edge_agent
