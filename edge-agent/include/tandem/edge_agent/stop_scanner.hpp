// The text of a completion as it becomes final. A stop string can be ruled out only once enough text
// follows, so the last (longest stop - 1) bytes are held back until they cannot start a match; the text
// ends before the first match. Pure; one per generation, not thread-safe.
#pragma once

#include <string>
#include <vector>

namespace tandem::edge_agent {

class StopScanner {
 public:
  explicit StopScanner(std::vector<std::string> stops);
  // Adds a piece; returns the text now final, and sets `stopped` when a stop string matched (the text
  // then ends before it, and later pieces must not be added).
  std::string Add(const std::string& piece, bool& stopped);
  // The rest once generation ended without a stop match.
  std::string Flush();
  // Everything final so far (after Flush, the whole text).
  const std::string& text() const { return text_; }

 private:
  std::vector<std::string> stops_;
  size_t hold_ = 0;
  std::string text_;
  size_t emitted_ = 0;
};

}  // namespace tandem::edge_agent
