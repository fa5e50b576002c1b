#include "tandem/wire/sampling_params.hpp"

#include <cmath>
#include <string>

#include "tandem/base/strings.hpp"

namespace tandem {
Status SamplingParams::Validate() const {
  if (!std::isfinite(temperature) || temperature < 0.0f) {
    return InvalidArgument("temperature must be a finite number >= 0 (0 = greedy), got " +
                           ShortNumber(temperature));
  }
  if (!std::isfinite(top_p) || top_p <= 0.0f || top_p > 1.0f) {
    return InvalidArgument("top_p must be in (0, 1] (1 = no nucleus truncation), got " + ShortNumber(top_p));
  }
  return Status::Ok();
}

}  // namespace tandem
