#include "chi_square.hpp"

#include <boost/math/special_functions/gamma.hpp>

#include <algorithm>
#include <array>
#include <sstream>
#include <vector>

namespace tandem::testing {
namespace {

// Two samples' counts of one category (or of several pooled).
using Row = std::array<double, 2>;

double Total(const Row& row) {
  return row[0] + row[1];
}

}  // namespace

double ChiSquareSurvival(double statistic, int degrees_of_freedom) {
  if (statistic <= 0) return 1.0;
  // The chi-square survival function is the regularized upper incomplete gamma function Q(k / 2, x / 2);
  // Boost.Math (header-only, in the Boost the build already requires) has it, the standard library not.
  return boost::math::gamma_q(degrees_of_freedom / 2.0, statistic / 2.0);
}

std::string ToString(const ChiSquareResult& result) {
  std::ostringstream text;
  text << "chi-square " << result.statistic << " with " << result.degrees_of_freedom
       << " degrees of freedom (" << result.categories << " categories): p = " << result.p_value;
  return text.str();
}

std::ostream& operator<<(std::ostream& out, const ChiSquareResult& result) {
  return out << ToString(result);
}

ChiSquareResult ChiSquareHomogeneity(const Counts& first, const Counts& second, double min_expected) {
  std::map<int, Row> table;
  for (const auto& [category, count] : first) table[category][0] += static_cast<double>(count);
  for (const auto& [category, count] : second) table[category][1] += static_cast<double>(count);
  Row sizes{0, 0};
  for (const auto& [category, row] : table) {
    sizes[0] += row[0];
    sizes[1] += row[1];
  }
  const double grand_total = sizes[0] + sizes[1];
  ChiSquareResult result;
  if (sizes[0] <= 0 || sizes[1] <= 0) return result;
  // A category's count expected in the smaller sample, were both samples from one distribution.
  const double smaller_share = std::min(sizes[0], sizes[1]) / grand_total;
  const auto is_rare = [&](const Row& row) { return Total(row) * smaller_share < min_expected; };

  std::vector<Row> rows;
  Row pooled{0, 0};
  for (const auto& [category, row] : table) {
    if (is_rare(row)) {
      pooled[0] += row[0];
      pooled[1] += row[1];
    } else {
      rows.push_back(row);
    }
  }
  if (Total(pooled) > 0) {
    if (is_rare(pooled) && !rows.empty()) {
      Row& least = *std::min_element(rows.begin(), rows.end(),
                                     [](const Row& a, const Row& b) { return Total(a) < Total(b); });
      least[0] += pooled[0];
      least[1] += pooled[1];
    } else {
      rows.push_back(pooled);
    }
  }
  result.categories = static_cast<int>(rows.size());
  if (rows.size() < 2) return result;
  for (const Row& row : rows) {
    for (size_t sample = 0; sample < 2; ++sample) {
      const double expected = Total(row) * sizes[sample] / grand_total;
      const double difference = row[sample] - expected;
      result.statistic += difference * difference / expected;
    }
  }
  result.degrees_of_freedom = result.categories - 1;
  result.p_value = ChiSquareSurvival(result.statistic, result.degrees_of_freedom);
  return result;
}

}  // namespace tandem::testing
