// Picks the next token from logits: greedy, temperature, or nucleus (top-p) sampling with a seeded RNG.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (argmax, lowest index on ties)
  float top_p = 0.9f;        // in (0, 1): nucleus sampling; >= 1: sample the full distribution
  uint64_t seed = 0;

  // temperature >= 0 and finite, top_p in (0, 1].
  Status Validate() const;
};

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
