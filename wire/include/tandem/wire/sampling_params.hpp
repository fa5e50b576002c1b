// How a session asks for its tokens to be chosen. A data type of its own, below the engine's Sampler, because
// OPEN carries it to the tail: the wire can describe a session without linking the engine.
#pragma once

#include <cstdint>

#include "tandem/base/status.hpp"

namespace tandem {

struct SamplingParams {
  float temperature = 1.0f;  // 0 = greedy (argmax, lowest index on ties)
  float top_p = 0.9f;        // in (0, 1): nucleus sampling; >= 1: sample the full distribution
  uint64_t seed = 0;

  // temperature >= 0 and finite, top_p in (0, 1].
  Status Validate() const;
};

}  // namespace tandem
