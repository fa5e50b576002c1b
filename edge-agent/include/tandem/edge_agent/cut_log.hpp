// What a session sent across the cut, as much as rebuilding its tail needs: how many positions it keeps, in
// which chunks (rows per ACTIVATIONS or VERIFY: the prefill's chunks, then one per step). Drafted rows the
// model did not keep are dropped from the positions (the next step starts where they did). The rows
// themselves are not kept: a move or a failover recomputes them from the generation's token steps
// (MovableSplit), so a long generation's memory does not grow by a float copy of every row sent.
#pragma once

#include <cstdint>
#include <vector>

namespace tandem::edge_agent {

class CutLog {
 public:
  void Append(int64_t rows) {
    chunks_.push_back(rows);
    positions_ += rows;
  }
  // The last `count` positions were drafts not kept.
  void Drop(int64_t count) { positions_ -= count; }
  int64_t positions() const { return positions_; }
  const std::vector<int64_t>& chunks() const { return chunks_; }
  // Heap memory the log holds.
  int64_t bytes() const { return static_cast<int64_t>(chunks_.capacity() * sizeof(int64_t)); }

 private:
  int64_t positions_ = 0;
  std::vector<int64_t> chunks_;
};

}  // namespace tandem::edge_agent
