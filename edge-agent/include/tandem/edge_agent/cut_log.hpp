// What a session sent across the cut, as much as rebuilding its tail needs: how many positions, in which
// chunks (rows per ACTIVATIONS: the prefill's chunks, then one per token). The rows themselves are not
// kept: a move or a failover recomputes them from the generation's token steps (MovableSplit), so a long
// generation's memory does not grow by a float copy of every row sent.
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
  int64_t positions() const { return positions_; }
  const std::vector<int64_t>& chunks() const { return chunks_; }
  // Heap memory the log holds.
  int64_t bytes() const { return static_cast<int64_t>(chunks_.capacity() * sizeof(int64_t)); }

 private:
  int64_t positions_ = 0;
  std::vector<int64_t> chunks_;
};

}  // namespace tandem::edge_agent
