#include "tandem/engine/linear.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

namespace tandem {
namespace {

std::vector<float> RandomVector(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(n);
  for (auto& v : values) v = normal(rng);
  return values;
}

// y = x Wᵀ in double, the reference.
std::vector<double> Reference(const std::vector<float>& x, const std::vector<float>& w, int64_t rows,
                              int64_t out, int64_t in) {
  std::vector<double> y(static_cast<size_t>(rows * out));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double sum = 0;
      for (int64_t i = 0; i < in; ++i) sum += double{x[r * in + i]} * w[o * in + i];
      y[r * out + o] = sum;
    }
  return y;
}

double Nmse(const std::vector<float>& got, const std::vector<double>& want) {
  double error = 0, energy = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    error += (got[i] - want[i]) * (got[i] - want[i]);
    energy += want[i] * want[i];
  }
  return error / energy;
}

// Shapes include stories260K's 172, not a multiple of any SIMD width, and batch sizes 1 (decode) and 7.
class LinearTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};

TEST_P(LinearTest, Float32MatchesReference) {
  const auto [rows, out, in] = GetParam();
  const auto w = RandomVector(static_cast<size_t>(out * in), 1),
             x = RandomVector(static_cast<size_t>(rows * in), 2);
  auto linear = Linear::Float32(w.data(), out, in);
  ASSERT_TRUE(linear.ok());
  std::vector<float> y(static_cast<size_t>(rows * out));
  linear->Forward(x.data(), rows, y.data());
  EXPECT_LT(Nmse(y, Reference(x, w, rows, out, in)), 1e-10);
  EXPECT_EQ(linear->WeightBytes(), out * in * 4);
}

TEST_P(LinearTest, Int8StaysWithinErrorBound) {
  const auto [rows, out, in] = GetParam();
  const auto w = RandomVector(static_cast<size_t>(out * in), 3),
             x = RandomVector(static_cast<size_t>(rows * in), 4);
  auto linear = Linear::Int8(w.data(), out, in);
  ASSERT_TRUE(linear.ok());
  std::vector<float> y(static_cast<size_t>(rows * out));
  linear->Forward(x.data(), rows, y.data());
  // Two 8-bit roundings (weights per row, activations per row) of Gaussian data: NMSE ~1e-4.
  const double nmse = Nmse(y, Reference(x, w, rows, out, in));
  EXPECT_LT(nmse, 1e-3);
  EXPECT_GT(nmse, 0.0) << "int8 that is exact is not int8";
  EXPECT_EQ(linear->format(), WeightFormat::kInt8);
  EXPECT_EQ(linear->WeightBytes(), out * kernels::PaddedLength(in) + out * 4);  // rows padded to 64
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearTest,
                         ::testing::Values(std::make_tuple(1, 64, 64), std::make_tuple(1, 172, 64),
                                           std::make_tuple(7, 64, 172), std::make_tuple(3, 5, 3),
                                           std::make_tuple(128, 96, 64)));

// The decode rows of many sessions through one call give, bit for bit, what each gives alone: batching
// must not change a session's output. Odd sizes reach the kernels' tails; 11 rows span two groups.
TEST(LinearTest, DecodeBatchIsBitForBitTheRowsAlone) {
  for (const auto& [out, in] : std::vector<std::pair<int64_t, int64_t>>{{67, 45}, {256, 768}, {130, 129}}) {
    const std::vector<float> w = RandomVector(static_cast<size_t>(out * in), 5);
    for (const bool int8 : {false, true}) {
      auto linear = int8 ? Linear::Int8(w.data(), out, in) : Linear::Float32(w.data(), out, in);
      ASSERT_TRUE(linear.ok());
      for (const int64_t rows : {1, 3, 8, 11}) {
        const std::vector<float> x =
            RandomVector(static_cast<size_t>(rows * in), 9 + static_cast<uint32_t>(rows));
        std::vector<float> batched(static_cast<size_t>(rows * out)), alone(static_cast<size_t>(out));
        linear->ForwardDecodeBatch(x.data(), rows, batched.data());
        for (int64_t r = 0; r < rows; ++r) {
          linear->Forward(x.data() + r * in, 1, alone.data());
          for (int64_t o = 0; o < out; ++o) {
            ASSERT_EQ(batched[r * out + o], alone[o])
                << (int8 ? "int8" : "float32") << " " << out << "x" << in << ", row " << r << " of " << rows
                << ", output " << o;
          }
        }
      }
    }
  }
}

TEST(LinearTest, ZeroRowsAndZeroInputsAreExact) {
  std::vector<float> w(12, 0.0f), x(4, 1.0f), y(3, -1.0f);
  auto linear = Linear::Int8(w.data(), 3, 4);
  ASSERT_TRUE(linear.ok());
  linear->Forward(x.data(), 1, y.data());
  for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(LinearTest, NonFiniteWeightsAreRefused) {
  std::vector<float> w(12, 0.5f);
  w[7] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_FALSE(Linear::Float32(w.data(), 3, 4).ok());
  w[7] = std::numeric_limits<float>::infinity();
  const auto int8 = Linear::Int8(w.data(), 3, 4);
  ASSERT_FALSE(int8.ok());
  EXPECT_NE(int8.status().message().find("element 7"), std::string::npos);
}

}  // namespace
}  // namespace tandem
