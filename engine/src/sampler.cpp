#include "tandem/engine/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace tandem {
namespace {

uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

Sampler::Sampler(SamplingParams params) : params_(params), rng_state_(SplitMix64(params.seed)) {
  // xorshift64* is stuck at 0; splitmix64 maps exactly one seed there.
  if (rng_state_ == 0) rng_state_ = 0x9E3779B97F4A7C15ull;
}

double Sampler::NextUniform() {
  // xorshift64* (as llama2.c's random_u32, but keeping 53 bits for a full-precision double).
  rng_state_ ^= rng_state_ >> 12;
  rng_state_ ^= rng_state_ << 25;
  rng_state_ ^= rng_state_ >> 27;
  const uint64_t bits = rng_state_ * 0x2545F4914F6CDD1Dull;
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

int Sampler::Sample(std::span<const float> logits) {
  const int n = static_cast<int>(logits.size());
  const int top = Argmax(logits);
  if (top < 0) return n == 0 ? -1 : 0;  // all NaN: no winner, but still an index into `logits`
  // Written as !(t > 0) so an unvalidated NaN temperature also falls back to greedy.
  if (!(params_.temperature > 0.0f) || n == 1) return top;

  // Stable softmax of logits / temperature: the max (even +inf) maps to weight 1, NaN to 0.
  const double max_logit = logits[static_cast<size_t>(top)];
  const double temperature = params_.temperature;
  probs_.resize(static_cast<size_t>(n));
  double sum = 0.0;
  for (int i = 0; i < n; ++i) {
    const float logit = logits[static_cast<size_t>(i)];
    double weight = 0.0;
    if (logit == max_logit) {
      weight = 1.0;
    } else if (!std::isnan(logit)) {
      weight = std::exp((static_cast<double>(logit) - max_logit) / temperature);
    }
    probs_[static_cast<size_t>(i)] = static_cast<float>(weight);
    sum += weight;
  }
  // sum >= 1 (the max contributes 1), so this never divides by zero.
  const double inverse_sum = 1.0 / sum;
  for (float& p : probs_) p = static_cast<float>(p * inverse_sum);

  const double coin = NextUniform();
  const float top_p = params_.top_p;
  if (top_p > 0.0f && top_p < 1.0f) {
    // Nucleus sampling as llama2.c's sample_topp. Tokens below (1 - top_p) / (n - 1) cannot be in the
    // nucleus, so sort only the rest.
    const float cutoff = (1.0f - top_p) / static_cast<float>(n - 1);
    order_.clear();
    for (int i = 0; i < n; ++i) {
      const float p = probs_[static_cast<size_t>(i)];
      if (p >= cutoff && p > 0.0f) order_.push_back(i);
    }
    // With top_p < 1/n the cutoff can exceed every probability (llama2.c then reads out of bounds):
    // fall back to every token that has any probability.
    if (order_.empty()) {
      for (int i = 0; i < n; ++i) {
        if (probs_[static_cast<size_t>(i)] > 0.0f) order_.push_back(i);
      }
    }
    // Ties broken by index so the order (and thus the token) does not depend on the sort algorithm.
    std::sort(order_.begin(), order_.end(), [this](int a, int b) {
      const float pa = probs_[static_cast<size_t>(a)];
      const float pb = probs_[static_cast<size_t>(b)];
      return pa > pb || (pa == pb && a < b);
    });
    double cumulative = 0.0;
    size_t last = order_.size() - 1;
    for (size_t i = 0; i < order_.size(); ++i) {
      cumulative += probs_[static_cast<size_t>(order_[i])];
      if (cumulative > top_p) {
        last = i;
        break;
      }
    }
    const double r = coin * cumulative;
    double cdf = 0.0;
    for (size_t i = 0; i <= last; ++i) {
      cdf += probs_[static_cast<size_t>(order_[i])];
      if (r < cdf) return order_[i];
    }
    return order_[last];
  }

  // Inverse CDF over the full distribution; rounding can leave coin past the end, so fall back to the
  // last token with any probability (never a NaN one).
  double cdf = 0.0;
  int last_possible = top;
  for (int i = 0; i < n; ++i) {
    const float p = probs_[static_cast<size_t>(i)];
    if (p <= 0.0f) continue;
    cdf += p;
    last_possible = i;
    if (coin < cdf) return i;
  }
  return last_possible;
}

int Argmax(std::span<const float> values) {
  int best = -1;
  for (size_t i = 0; i < values.size(); ++i) {
    const float v = values[i];
    if (std::isnan(v)) continue;
    if (best < 0 || v > values[static_cast<size_t>(best)]) best = static_cast<int>(i);
  }
  return best;
}

}  // namespace tandem
