#include "tandem/engine/compute_profile.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "tandem/base/stats.hpp"
#include "tandem/engine/sampler.hpp"
#include "tandem/engine/transformer.hpp"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;

template <typename Fn>
Result<double> TimeMs(Fn&& fn) {
  const auto start = Clock::now();
  TANDEM_RETURN_IF_ERROR(fn());
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// One cache per block, so that each block can be timed on its own while the hidden state flows through
// all of them as in a real forward pass.
std::vector<KvCache> BlockCaches(const Transformer& model, int capacity) {
  std::vector<KvCache> caches;
  caches.reserve(static_cast<size_t>(model.n_layers()));
  for (int b = 0; b < model.n_layers(); ++b)
    caches.emplace_back(model.config(), BlockRange{b, b + 1}, capacity);
  return caches;
}

// Runs `tokens` through every block; adds each block's time to `block_ms[b]`'s samples.
Status TimeBlocks(const Transformer& model, std::vector<KvCache>& caches, std::span<const int> tokens,
                  std::vector<std::vector<double>>& samples, at::Tensor* out = nullptr) {
  at::Tensor hidden;
  if (model.holds_embedding()) {
    TANDEM_ASSIGN_OR_RETURN(hidden, model.Embed(tokens));
  } else {
    // A block-range model without the embedding: rows of a plausible scale stand in for it.
    hidden = at::full({static_cast<int64_t>(tokens.size()), model.config().dim}, 0.02f, at::kFloat);
  }
  for (size_t b = 0; b < caches.size(); ++b) {
    if (!model.held_blocks().contains(static_cast<int>(b))) {
      samples[b].push_back(0);  // not held: never run here
      continue;
    }
    TANDEM_ASSIGN_OR_RETURN(const double ms, TimeMs([&] { return model.RunBlocks(hidden, caches[b]); }));
    samples[b].push_back(ms);
  }
  if (out != nullptr) *out = hidden;
  return Status::Ok();
}

std::vector<double> Medians(const std::vector<std::vector<double>>& samples) {
  std::vector<double> medians;
  for (const auto& block : samples) medians.push_back(Median(block));
  return medians;
}

std::vector<int> SomeTokens(int count, int vocab_size) {
  std::vector<int> tokens(static_cast<size_t>(count));
  for (int i = 0; i < count; ++i) tokens[static_cast<size_t>(i)] = 1 + (i * 7919) % (vocab_size - 1);
  return tokens;
}

}  // namespace

Result<ComputeProfile> ProfileCompute(const Transformer& model, const ProfileOptions& options) {
  const ModelConfig& config = model.config();
  if (options.repeats < 1 || options.decode_position < 1) {
    return InvalidArgument("profile repeats and decode position must be >= 1");
  }
  const auto layers = static_cast<size_t>(model.n_layers());
  ComputeProfile profile;
  const at::NoGradGuard no_grad;

  for (int bucket : options.prefill_buckets) {
    const int tokens = std::min(bucket, config.seq_len);
    if (tokens < 1 || (!profile.prefill.empty() && tokens <= profile.prefill.back().tokens)) continue;
    std::vector<std::vector<double>> samples(layers);
    auto caches = BlockCaches(model, tokens);
    const std::vector<int> ids = SomeTokens(tokens, config.vocab_size);
    for (int r = 0; r < options.repeats; ++r) {
      for (KvCache& cache : caches) cache.Clear();
      TANDEM_RETURN_IF_ERROR(TimeBlocks(model, caches, ids, samples));
    }
    profile.prefill.push_back({tokens, Medians(samples)});
  }

  // Decode after a prefill of decode_position positions: attention reads that much KV.
  const int position = std::min(options.decode_position, config.seq_len - options.repeats - 1);
  if (position < 1) return InvalidArgument("the context is too short to profile decode");
  auto caches = BlockCaches(model, position + options.repeats);
  std::vector<std::vector<double>> unused(layers), samples(layers);
  TANDEM_RETURN_IF_ERROR(TimeBlocks(model, caches, SomeTokens(position, config.vocab_size), unused));
  std::vector<double> head_samples;
  for (int r = 0; r < options.repeats; ++r) {
    const int token = 1 + r;
    at::Tensor hidden;
    TANDEM_RETURN_IF_ERROR(TimeBlocks(model, caches, std::span<const int>(&token, 1), samples, &hidden));
    if (!model.holds_head()) continue;
    TANDEM_ASSIGN_OR_RETURN(
        const double head_ms, TimeMs([&] {
          TANDEM_ASSIGN_OR_RETURN(at::Tensor logits, model.Logits(hidden));
          logits = logits.contiguous();
          const int next = Argmax({logits.data_ptr<float>(), static_cast<size_t>(logits.numel())});
          return next >= 0 ? Status::Ok() : Internal("no finite logits");
        }));
    head_samples.push_back(head_ms);
  }
  profile.decode_block_ms = Medians(samples);
  profile.head_ms = head_samples.empty() ? 0 : Median(head_samples);
  return profile;
}

}  // namespace tandem
