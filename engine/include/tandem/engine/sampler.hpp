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
  // Speculative sampling of a token a drafter proposed with certainty: returns `draft` with the probability
  // Sample would give it, else a token drawn from the rest of Sample's distribution (draft excluded), so
  // the token returned is distributed exactly as Sample's (Leviathan et al., 2023, with a one-hot draft
  // distribution). Greedy: the argmax, which is `draft` exactly when the draft agrees.
  int SampleGivenDraft(std::span<const float> logits, int draft);

  const SamplingParams& params() const { return params_; }

 private:
  double NextUniform();  // in [0, 1), a fixed function of the seed (portable across standard libraries)
  // Fills probs_ (softmax at the temperature) and candidates_ (the tokens Sample draws from, in draw
  // order: the nucleus by falling probability, or every token with any probability by index); returns
  // their total probability. Requires temperature > 0 and a finite argmax `top`.
  bool Nucleus() const;  // top_p in (0, 1)
  double Distribution(std::span<const float> logits, int top);
  // The candidate where the running sum of probabilities first passes `r`, skipping `excluded`; the last
  // one reached when rounding leaves r past the end.
  int Draw(double r, int excluded) const;

  SamplingParams params_;
  uint64_t rng_state_;
  std::vector<float> probs_;
  std::vector<int> candidates_;
};

// Index of the largest value (lowest index on ties, NaN ignored); -1 when empty.
int Argmax(std::span<const float> values);

}  // namespace tandem
