// The chi-square helper of the tests (tests/support/chi_square.hpp) against known values: if its p-values
// were wrong, every distribution test built on it would pass or fail for nothing.
#include "chi_square.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace tandem::testing {
namespace {

TEST(ChiSquareTest, SurvivalMatchesTables) {
  // Critical values from the chi-square table: P(X >= x) = 0.05 or 0.01.
  EXPECT_NEAR(ChiSquareSurvival(3.841458820694124, 1), 0.05, 1e-12);
  EXPECT_NEAR(ChiSquareSurvival(6.634896601021214, 1), 0.01, 1e-12);
  EXPECT_NEAR(ChiSquareSurvival(15.08627246938899, 5), 0.01, 1e-12);
  EXPECT_NEAR(ChiSquareSurvival(18.307038053275146, 10), 0.05, 1e-12);
  EXPECT_NEAR(ChiSquareSurvival(124.34211340400407, 100), 0.05, 1e-10);
  // Two degrees of freedom: exactly exp(-x / 2).
  for (const double x : {0.5, 2.0, 9.0, 40.0}) EXPECT_NEAR(ChiSquareSurvival(x, 2), std::exp(-x / 2), 1e-14);
  EXPECT_EQ(ChiSquareSurvival(0.0, 3), 1.0);
  EXPECT_LT(ChiSquareSurvival(200.0, 3), 1e-40);
}

TEST(ChiSquareTest, HomogeneityOfATextbookTable) {
  // Expected counts 15, 20, 25 in both samples: (25 / 15 + 0 + 25 / 25) * 2 = 16 / 3 with 2 degrees of
  // freedom, p = exp(-8 / 3).
  const ChiSquareResult result =
      ChiSquareHomogeneity({{7, 10}, {8, 20}, {9, 30}}, {{7, 20}, {8, 20}, {9, 20}});
  EXPECT_NEAR(result.statistic, 16.0 / 3.0, 1e-12);
  EXPECT_EQ(result.degrees_of_freedom, 2);
  EXPECT_NEAR(result.p_value, std::exp(-8.0 / 3.0), 1e-12);
}

TEST(ChiSquareTest, EqualSamplesPassAndDifferentOnesFail) {
  const Counts counts = {{1, 500}, {2, 300}, {3, 200}};
  const ChiSquareResult same = ChiSquareHomogeneity(counts, counts);
  EXPECT_EQ(same.statistic, 0.0);
  EXPECT_EQ(same.p_value, 1.0);
  EXPECT_LT(ChiSquareHomogeneity(counts, {{1, 400}, {2, 350}, {3, 250}}).p_value, 0.01);
}

TEST(ChiSquareTest, PoolsRareCategories) {
  // Tokens 4..7 are expected fewer than 5 times in the smaller sample: they count as one category.
  const ChiSquareResult pooled = ChiSquareHomogeneity({{1, 500}, {2, 480}, {4, 3}, {5, 2}, {6, 4}, {7, 1}},
                                                      {{1, 510}, {2, 470}, {4, 2}, {5, 5}, {6, 3}, {7, 1}});
  EXPECT_EQ(pooled.categories, 3);
  EXPECT_EQ(pooled.degrees_of_freedom, 2);
  EXPECT_GT(pooled.p_value, 0.5);
  // A pool that is still rare joins the least frequent category kept.
  const ChiSquareResult merged = ChiSquareHomogeneity({{1, 500}, {2, 100}, {3, 1}}, {{1, 500}, {2, 100}});
  EXPECT_EQ(merged.categories, 2);
  // One category in all: nothing to tell apart.
  const ChiSquareResult single = ChiSquareHomogeneity({{1, 50}}, {{1, 70}});
  EXPECT_EQ(single.degrees_of_freedom, 0);
  EXPECT_EQ(single.p_value, 1.0);
}

}  // namespace
}  // namespace tandem::testing
