// The LLaMA transformer on LibTorch, callable piece by piece so that a model can be cut at any block.
//
// A forward pass is a composition of three calls: Embed (token ids → hidden [T, dim]), RunBlocks (blocks
// [a, b) of a KV cache's range, in place on the hidden state, for T new positions at once: prefill when
// T > 1, decode when T = 1) and Logits (final RMSNorm + classifier). An edge/cloud cut at k is
// RunBlocks over [0, k) on one side and [k, L) on the other; nothing else changes.
//
// Numerics follow llama2.c: RMSNorm, rotary embedding (on interleaved pairs for llama2.c checkpoints, on
// the two halves of each head for Hugging Face ones; Llama 3's frequency scaling when configured),
// grouped-query attention with optional q/k/v/o biases, SwiGLU. Blocks in the int8 range hold int8
// weights (per-output-row scales), those in the int4 range int4 weights (a scale per group of 32).
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <span>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/engine/linear.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/model/model_config.hpp"

namespace tandem {

struct TransformerOptions {
  BlockRange int8_blocks;        // blocks whose weights are quantized to int8
  bool int8_classifier = false;  // the LM head too: with a large vocabulary, the biggest matrix
  BlockRange int4_blocks;        // blocks quantized to int4 (groups of 32); must not overlap int8_blocks
  bool int4_classifier = false;
  // Evaluations only: every block run and classifier call takes this many times its real duration (the
  // rest asleep), emulating a slower device on this machine. 1: off.
  float emulated_slowdown = 1;
};

// Keys and values of one session for the blocks of `range`, positions [0, length()).
// Owned by one session; not thread-safe.
class KvCache {
 public:
  KvCache(const ModelConfig& config, BlockRange range, int capacity);

  BlockRange range() const { return range_; }
  int length() const { return length_; }      // positions already processed
  int capacity() const { return capacity_; }  // positions it can hold
  int64_t bytes() const;
  void Clear() { length_ = 0; }
  // Forgets positions [length, length()): the next RunBlocks writes from `length` on (e.g. to try several
  // tokens at one position). Requires 0 <= length <= length().
  void Truncate(int length) { length_ = std::clamp(length, 0, length_); }

 private:
  friend class Transformer;
  BlockRange range_;
  int capacity_;
  int length_ = 0;
  std::vector<at::Tensor> keys_;    // per block: [n_kv_heads, capacity, head_dim]
  std::vector<at::Tensor> values_;  // per block: [n_kv_heads, capacity, head_dim]
};

// Immutable after Create; every method is const and may be called from several sessions at once.
class Transformer {
 public:
  static Result<std::shared_ptr<const Transformer>> Create(std::shared_ptr<const Checkpoint> checkpoint,
                                                           const TransformerOptions& options = {});

  const ModelConfig& config() const { return config_; }
  const TransformerOptions& options() const { return options_; }
  const std::shared_ptr<const Checkpoint>& checkpoint() const { return checkpoint_; }
  int n_layers() const { return config_.n_layers; }
  // What a block-range checkpoint left out cannot run: blocks outside held_blocks() (RunBlocks refuses
  // them), Embed without the embedding, Logits without the head.
  BlockRange held_blocks() const { return held_; }
  bool holds_embedding() const { return token_embedding_.defined(); }
  bool holds_head() const { return classifier_ != nullptr; }

  // Token ids → hidden states [T, dim] (float32). Fails on an id outside the vocabulary.
  Result<at::Tensor> Embed(std::span<const int> tokens) const;

  // Runs the blocks of cache.range() on `hidden` [T, dim] in place, for positions
  // [cache.length(), cache.length() + T), and advances the cache. Fails, leaving the cache unchanged, when
  // the positions would exceed its capacity or the shape is wrong.
  Status RunBlocks(at::Tensor& hidden, KvCache& cache) const;

  // One decode position of several sessions at once: step i runs the blocks of caches[i]->range() on
  // hidden[i] [1, dim] in place and advances that cache, as RunBlocks would. Steps whose ranges share a
  // block go through its linear layers together (Linear::ForwardDecodeBatch; attention stays per session),
  // so each hidden state is bit for bit what RunBlocks gives it alone, whatever the cuts. Fails, changing
  // nothing, when a step is not one float32 row or a cache is full.
  Status RunDecodeBatch(std::span<at::Tensor> hidden, std::span<KvCache* const> caches) const;

  // Final RMSNorm and classifier: hidden [T, dim] → logits [T, vocab]. Fails without the head.
  Result<at::Tensor> Logits(const at::Tensor& hidden) const;
  // The same for rows of different sessions (RunDecodeBatch's outputs, stacked): one pass over the
  // classifier for all, each row's logits bit for bit what Logits gives that row alone.
  Result<at::Tensor> LogitsDecodeBatch(const at::Tensor& hidden) const;

  // Weight bytes read per token by blocks in `range` (int8 blocks count their int8 bytes).
  int64_t BlockWeightBytes(BlockRange range) const;
  // Weight bytes read per token by the classifier.
  int64_t ClassifierWeightBytes() const { return classifier_->WeightBytes(); }

 private:
  struct Block {
    at::Tensor rms_att, rms_ffn;  // [dim]
    Linear wq, wk, wv, wo, w1, w2, w3;
    at::Tensor bq, bk, bv, bo;  // biases, undefined when the model has none
  };
  // cos and sin of each rotary angle for positions [position, position + rows): [rows, head_dim / 2].
  struct RotaryAngles {
    at::Tensor cos, sin;
  };

  Transformer(std::shared_ptr<const Checkpoint> checkpoint, const TransformerOptions& options);
  at::Tensor RmsNorm(const at::Tensor& x, const at::Tensor& weight) const;
  RotaryAngles Angles(int64_t position, int64_t rows) const;
  // Rotates x [rows, n_heads * head_dim] in place, row r by angles' row r.
  void Rotate(float* x, int64_t rows, int64_t n_heads, const RotaryAngles& angles) const;
  static void GateInPlace(at::Tensor& gate, const at::Tensor& up);
  at::Tensor Attention(const at::Tensor& q, const KvCache& cache, size_t slot, int64_t position) const;
  // Attention of the one query q [q_dim] at `position` (the cache holding 0..position) for heads
  // [head_begin, head_end), into those heads' columns of out [q_dim].
  void AttendHeads(const float* q, const KvCache& cache, size_t slot, int64_t position, int64_t head_begin,
                   int64_t head_end, float* out) const;
  // How a block's linear layers that read one input run: ApplyShared (the rows of one session) or
  // ApplyDecodeBatch (one row each of several sessions), both in transformer.cpp.
  using ApplyLayers = std::vector<at::Tensor> (*)(std::initializer_list<const Linear*>, const at::Tensor&);
  // RMSNorm, then q, k and v of x with their biases.
  std::vector<at::Tensor> ProjectQkv(const Block& block, const at::Tensor& x, ApplyLayers apply) const;
  // Rotates q and k of one session's rows (contiguous [rows, ·]) in place and appends k and v to its cache
  // at `position`.
  void RotateAndStore(float* q, float* k, const float* v, int64_t rows, KvCache& cache, size_t slot,
                      int64_t position, const RotaryAngles& angles) const;
  // The rest of a block after attention: output projection and residual, then the SwiGLU feed-forward.
  void FinishBlock(const Block& block, const at::Tensor& attended, at::Tensor& x, ApplyLayers apply) const;
  void RunBlock(const Block& block, at::Tensor& x, KvCache& cache, size_t slot, int64_t position,
                const RotaryAngles& angles) const;
  // The errors RunBlocks refuses `hidden` for `cache` with (wrong shape, range outside the model, full).
  Status CheckRun(const at::Tensor& hidden, const KvCache& cache) const;
  // RunBlock on rows of different sessions at one position each: row r of x belongs to caches[r], whose
  // rotary angles at that position are angles[r].
  void RunBlockBatch(const Block& block, int block_index, at::Tensor& x, std::span<KvCache* const> caches,
                     std::span<const RotaryAngles* const> angles) const;

  std::shared_ptr<const Checkpoint> checkpoint_;  // owns the mapped float32 weights
  ModelConfig config_;
  TransformerOptions options_;
  at::Tensor token_embedding_;  // [vocab, dim], a view of the mapping
  at::Tensor rms_final_;        // [dim]
  Status RequireHead() const;   // an error without one
  const Block& block(int index) const { return blocks_[static_cast<size_t>(index - held_.first)]; }

  BlockRange held_;
  std::vector<Block> blocks_;  // the held ones, from held_.first
  std::unique_ptr<Linear> classifier_;
  std::vector<float> rope_frequencies_;  // [head_dim / 2], radians per position
};

}  // namespace tandem
