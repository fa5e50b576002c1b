#include "tandem/engine/sampler.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <set>
#include <vector>

#include "chi_square.hpp"

namespace tandem {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams Params(float temperature, float top_p, uint64_t seed) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_p = top_p;
  params.seed = seed;
  return params;
}

// Logits in [-4, 4) from mt19937 bits directly (its output is specified; the distributions are not).
std::vector<float> RandomLogits(std::mt19937& rng, int n) {
  std::vector<float> logits(static_cast<size_t>(n));
  for (float& logit : logits) logit = static_cast<float>(rng() % 8000) / 1000.0f - 4.0f;
  return logits;
}

std::vector<int> SampleMany(Sampler& sampler, int count, uint32_t logits_seed) {
  std::mt19937 rng(logits_seed);
  std::vector<int> tokens;
  for (int i = 0; i < count; ++i) tokens.push_back(sampler.Sample(RandomLogits(rng, 64)));
  return tokens;
}

// Fraction of `draws` samples equal to each index.
std::vector<double> Frequencies(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<double> counts(logits.size(), 0.0);
  for (int i = 0; i < draws; ++i) {
    const int token = sampler.Sample(logits);
    EXPECT_GE(token, 0);
    EXPECT_LT(token, static_cast<int>(logits.size()));
    if (token >= 0 && token < static_cast<int>(logits.size())) counts[static_cast<size_t>(token)] += 1.0;
  }
  for (double& count : counts) count /= draws;
  return counts;
}

TEST(ArgmaxTest, PicksLowestIndexOfTheMaximum) {
  EXPECT_EQ(Argmax(std::vector<float>{1.0f, 3.0f, 2.0f}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{5.0f, 1.0f, 5.0f}), 0);
  EXPECT_EQ(Argmax(std::vector<float>{-2.0f, 7.0f, 7.0f, 7.0f}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{-kInf, -kInf}), 0);
  EXPECT_EQ(Argmax(std::vector<float>{0.0f, kInf, kInf}), 1);
}

TEST(ArgmaxTest, IgnoresNaN) {
  EXPECT_EQ(Argmax(std::vector<float>{kNaN, 1.0f, kNaN, 2.0f}), 3);
  EXPECT_EQ(Argmax(std::vector<float>{kNaN, -5.0f}), 1);
  EXPECT_EQ(Argmax(std::vector<float>{2.0f, kNaN, 1.0f}), 0);
  EXPECT_EQ(Argmax(std::vector<float>{kNaN, kNaN}), -1);
  EXPECT_EQ(Argmax(std::vector<float>{}), -1);
}

TEST(SamplingParamsTest, Validate) {
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
  EXPECT_TRUE(Params(0.0f, 1.0f, 0).Validate().ok());
  EXPECT_TRUE(Params(2.5f, 0.01f, 7).Validate().ok());

  for (float temperature : {-0.5f, -kInf, kInf, kNaN}) {
    const Status status = Params(temperature, 0.9f, 0).Validate();
    EXPECT_FALSE(status.ok()) << temperature;
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("temperature"), std::string::npos) << status.message();
  }
  for (float top_p : {0.0f, -0.1f, 1.5f, 1.0000001f, kNaN, kInf}) {
    const Status status = Params(1.0f, top_p, 0).Validate();
    EXPECT_FALSE(status.ok()) << top_p;
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(status.message().find("top_p"), std::string::npos) << status.message();
  }
}

TEST(SamplerTest, GreedyPicksArgmaxLowestOnTies) {
  Sampler sampler(Params(0.0f, 0.9f, 123));
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.1f, 0.7f, 0.2f}), 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{0.5f, 0.9f, 0.9f, 0.1f}), 1);
  EXPECT_EQ(sampler.Sample(std::vector<float>{kNaN, 0.0f, 3.0f, kNaN}), 2);
  std::mt19937 rng(5);
  for (int i = 0; i < 100; ++i) {
    const std::vector<float> logits = RandomLogits(rng, 50);
    EXPECT_EQ(sampler.Sample(logits), Argmax(logits));
  }
}

TEST(SamplerTest, SameSeedSameSequence) {
  for (float top_p : {0.9f, 1.0f}) {
    Sampler first(Params(1.0f, top_p, 42));
    Sampler second(Params(1.0f, top_p, 42));
    EXPECT_EQ(SampleMany(first, 100, 9), SampleMany(second, 100, 9)) << top_p;
  }
}

TEST(SamplerTest, DifferentSeedsDifferentSequences) {
  for (float top_p : {0.9f, 1.0f}) {
    Sampler first(Params(1.0f, top_p, 42));
    Sampler second(Params(1.0f, top_p, 43));
    EXPECT_NE(SampleMany(first, 100, 9), SampleMany(second, 100, 9)) << top_p;
  }
  // Seed 0 is a seed like any other (the RNG state must not get stuck).
  Sampler zero(Params(1.0f, 1.0f, 0));
  const std::vector<int> tokens = SampleMany(zero, 100, 9);
  EXPECT_GT(std::set<int>(tokens.begin(), tokens.end()).size(), 10u);
}

TEST(SamplerTest, SequenceIsAFixedFunctionOfTheSeed) {
  // Pins the RNG (splitmix64-seeded xorshift64*): with 8 equal logits each draw is floor(8 * uniform).
  Sampler sampler(Params(1.0f, 1.0f, 2024));
  const std::vector<float> uniform(8, 0.0f);
  std::vector<int> tokens;
  for (int i = 0; i < 16; ++i) tokens.push_back(sampler.Sample(uniform));
  EXPECT_EQ(tokens, (std::vector<int>{2, 5, 6, 1, 2, 4, 5, 5, 0, 7, 4, 6, 7, 6, 3, 1}));
}

TEST(SamplerTest, TinyTopPIsGreedy) {
  Sampler sampler(Params(1.0f, 1e-6f, 77));
  std::mt19937 rng(11);
  for (int i = 0; i < 200; ++i) {
    const std::vector<float> logits = RandomLogits(rng, 100);
    EXPECT_EQ(sampler.Sample(logits), Argmax(logits));
  }
  // Equal logits: the candidates tie and the lowest index comes first.
  EXPECT_EQ(sampler.Sample(std::vector<float>(10, 1.0f)), 0);
}

TEST(SamplerTest, FullDistributionMatchesProbabilities) {
  Sampler sampler(Params(1.0f, 1.0f, 1));
  const auto frequencies = Frequencies(sampler, {std::log(0.7f), std::log(0.3f)}, 20000);
  EXPECT_NEAR(frequencies[0], 0.7, 0.02);
  EXPECT_NEAR(frequencies[1], 0.3, 0.02);
}

TEST(SamplerTest, TemperatureFlattens) {
  // At temperature 2 the weights are sqrt(0.7) and sqrt(0.3): p0 = 0.6044.
  Sampler sampler(Params(2.0f, 1.0f, 3));
  const auto frequencies = Frequencies(sampler, {std::log(0.7f), std::log(0.3f)}, 20000);
  EXPECT_NEAR(frequencies[0], 0.6044, 0.02);
}

TEST(SamplerTest, NucleusTruncatesAndRenormalises) {
  // Probabilities 0.5, 0.3, 0.2 with top_p 0.7: the nucleus is {0, 1} (0.5 + 0.3 > 0.7), renormalised to
  // 0.625 / 0.375; index 2 never appears.
  Sampler sampler(Params(1.0f, 0.7f, 5));
  const auto frequencies = Frequencies(sampler, {std::log(0.3f), std::log(0.5f), std::log(0.2f)}, 20000);
  EXPECT_NEAR(frequencies[1], 0.625, 0.02);
  EXPECT_NEAR(frequencies[0], 0.375, 0.02);
  EXPECT_EQ(frequencies[2], 0.0);
}

TEST(SamplerTest, NaNLogitsNeverChosen) {
  const std::vector<float> logits = {kNaN, 1.0f, kNaN, 1.5f, kNaN, 0.5f, kNaN};
  for (float top_p : {0.5f, 0.95f, 1.0f}) {
    Sampler sampler(Params(1.5f, top_p, 8));
    for (int i = 0; i < 2000; ++i) {
      const int token = sampler.Sample(logits);
      ASSERT_TRUE(token == 1 || token == 3 || token == 5) << token << " at top_p " << top_p;
    }
  }
  // All NaN: nothing can win, but the result is still an index into the logits.
  Sampler sampler(Params(1.0f, 0.9f, 8));
  EXPECT_EQ(sampler.Sample(std::vector<float>{kNaN, kNaN, kNaN}), 0);
}

TEST(SamplerTest, InfiniteLogits) {
  Sampler sampler(Params(1.0f, 1.0f, 13));
  const std::vector<float> logits = {0.0f, kInf, -kInf, kInf, 5.0f};
  const auto frequencies = Frequencies(sampler, logits, 4000);
  EXPECT_EQ(frequencies[0] + frequencies[2] + frequencies[4], 0.0);
  EXPECT_NEAR(frequencies[1], 0.5, 0.05);

  // Only -inf logits (besides NaN): uniform over them, never the NaN.
  const std::vector<float> negative = {-kInf, kNaN, -kInf};
  for (int i = 0; i < 100; ++i) EXPECT_NE(sampler.Sample(negative), 1);
}

TEST(SamplerTest, ReusesBuffersAcrossSizes) {
  Sampler sampler(Params(0.8f, 0.9f, 21));
  std::mt19937 rng(3);
  for (int n : {1, 5, 300, 2, 17, 1, 64}) {
    const std::vector<float> logits = RandomLogits(rng, n);
    const int token = sampler.Sample(logits);
    EXPECT_GE(token, 0);
    EXPECT_LT(token, n);
  }
  EXPECT_EQ(sampler.Sample(std::vector<float>{}), -1);
}

}  // namespace
}  // namespace tandem
