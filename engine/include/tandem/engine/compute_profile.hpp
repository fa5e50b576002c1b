// Measures a ComputeProfile (tandem/wire/compute_profile.hpp) with the real weights at start-up.
#pragma once

#include <memory>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/wire/compute_profile.hpp"

namespace tandem {

class Transformer;

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
