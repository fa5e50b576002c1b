// Summaries of measured samples (timings, sizes), one definition for every report and profile.
#pragma once

#include <span>
#include <vector>

namespace tandem {

// The middle value (the mean of the two middle ones for an even count); 0 for no values.
double Median(std::vector<double> values);

// The nearest-rank `p`th percentile (0 < p <= 100) of `sorted` (ascending, not empty).
double NearestRank(std::span<const double> sorted, double p);

// The same of `values` in any order (not empty).
double Percentile(std::vector<double> values, double p);

}  // namespace tandem
