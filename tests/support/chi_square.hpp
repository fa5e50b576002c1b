// Chi-square tests for tests that compare sampled distributions (speculative sampling against plain
// sampling): two samples of category counts, one p-value.
#pragma once

#include <cstdint>
#include <map>
#include <ostream>
#include <string>

namespace tandem::testing {

// How many times each category (a token id) came out in one sample.
using Counts = std::map<int, int64_t>;

// P(X >= statistic) for X chi-square distributed with `degrees_of_freedom` (> 0): a chi-square test's
// p-value.
double ChiSquareSurvival(double statistic, int degrees_of_freedom);

struct ChiSquareResult {
  double statistic = 0;
  int degrees_of_freedom = 0;  // 0 when fewer than two categories remain: nothing to tell apart
  double p_value = 1;
  int categories = 0;  // after pooling
};
std::string ToString(const ChiSquareResult& result);
std::ostream& operator<<(std::ostream& out, const ChiSquareResult& result);

// Pearson's chi-square test of homogeneity on the 2 x k table of two samples' counts: whether both come
// from one distribution. The test's approximation needs about `min_expected` counts expected per cell, so
// categories expected fewer times in either sample are pooled into one (itself merged into the least
// frequent other category when still that rare).
ChiSquareResult ChiSquareHomogeneity(const Counts& first, const Counts& second, double min_expected = 5.0);

}  // namespace tandem::testing
