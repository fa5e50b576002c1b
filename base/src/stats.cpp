#include "tandem/base/stats.hpp"

#include <algorithm>
#include <cmath>

namespace tandem {

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

double NearestRank(std::span<const double> sorted, double p) {
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::max<size_t>(rank, 1) - 1];
}

double Percentile(std::vector<double> values, double p) {
  std::sort(values.begin(), values.end());
  return NearestRank(values, p);
}

}  // namespace tandem
