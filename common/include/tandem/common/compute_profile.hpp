// Measured compute of one process (an edge or a tail) with its own weights, precision and threads, block by
// block: what the split planner needs to predict each side's share of a cut. Measured at start-up with the
// real weights, reported by tails in STATS and heartbeats.
#pragma once

#include <memory>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

class Transformer;

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

struct ProfileOptions {
  std::vector<int> prefill_buckets = {16, 64, 256};  // capped at the context length
  int decode_position = 64;  // decode is timed after this many positions (attention grows with them)
  int repeats = 3;           // the median of this many runs per figure
};

// Times every block of `model` (decode and each prefill bucket) and the head, on this thread's LibTorch
// thread count; the blocks (and head) a block-range model does not hold read 0 ms. Takes about
// repeats x (one prefill of every bucket + a few decode steps).
Result<ComputeProfile> ProfileCompute(const Transformer& model, const ProfileOptions& options = {});

}  // namespace tandem
