// Measured compute of one process (an edge or a tail) with its own weights, precision and threads, block by
// block: what the split planner needs to predict each side's share of a cut. Measured at start-up with the
// real weights (ProfileCompute in tandem/engine/compute_profile.hpp), reported by tails in STATS and
// heartbeats, read by the planners.
#pragma once

#include <vector>

namespace tandem {

struct ComputeProfile {
  // One token (decode, T = 1) through block b, for every block b in [0, L).
  std::vector<double> decode_block_ms;
  // All `tokens` positions of a prefill through block b; buckets in ascending `tokens`.
  struct PrefillBucket {
    int tokens = 0;
    std::vector<double> block_ms;
  };
  std::vector<PrefillBucket> prefill;
  // Final norm, classifier and sampling of one row (prefill samples only its last row).
  double head_ms = 0;
};

}  // namespace tandem
