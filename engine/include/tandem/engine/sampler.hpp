// Picks the next token from logits: greedy, temperature, or nucleus (top-p) sampling with a seeded RNG.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/wire/sampling_params.hpp"

namespace tandem {

// One per session: owns the RNG state, so equal seeds give equal tokens for equal logits.
// Not thread-safe.
class Sampler {
 public:
  explicit Sampler(SamplingParams params);

  // Returns a token index into `logits` (which must not be empty). NaN logits never win.
  int Sample(std::span<const float> logits);

  const SamplingParams& params() const { return params_; }

 private:
  double NextUniform();  // in [0, 1), a fixed function of the seed (portable across standard libraries)

  SamplingParams params_;
  uint64_t rng_state_;
  std::vector<float> probs_;
  std::vector<int> order_;
};

// Index of the largest value (lowest index on ties, NaN ignored); -1 when empty.
int Argmax(std::span<const float> values);

}  // namespace tandem
