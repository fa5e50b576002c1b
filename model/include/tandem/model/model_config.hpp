// The shape and arithmetic of a decoder-only LLaMA-architecture model: llama2.c checkpoints, and the Hugging
// Face Llama, Mistral and Qwen2 families (config.json, read by hf_config.hpp).
#pragma once

#include <cstdint>
#include <string>

#include "tandem/base/status.hpp"

namespace tandem {

// How the rotary embedding pairs a head's dimensions. llama2.c and Meta's checkpoints rotate interleaved
// pairs (2i, 2i+1); Hugging Face's rotate_half pairs (i, i + head_dim/2). The two are the same model with
// the rows of wq and wk permuted (tandem convert does that permutation).
enum class RopeLayout : uint8_t { kInterleaved, kHalves };

// Llama 3.1's "llama3" rope_scaling: low frequencies divided by `factor`, high ones kept, a smooth blend
// between the two wavelengths. factor == 0: none.
struct RopeScaling {
  float factor = 0;
  float low_freq_factor = 1;
  float high_freq_factor = 4;
  int32_t original_max_positions = 8192;
  bool enabled() const { return factor != 0; }
};

struct ModelConfig {
  int32_t dim = 0;         // hidden size d
  int32_t hidden_dim = 0;  // SwiGLU inner size
  int32_t n_layers = 0;    // L, the number of transformer blocks
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;  // < n_heads: grouped-query attention
  int32_t vocab_size = 0;
  int32_t seq_len = 0;            // longest context the model was trained for
  bool shared_classifier = true;  // the LM head reuses the token embedding
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  RopeLayout rope_layout = RopeLayout::kInterleaved;
  RopeScaling rope_scaling;
  int32_t explicit_head_dim = 0;  // config.json head_dim; 0: dim / n_heads
  bool qkv_bias = false;          // q, k and v projections have biases (Qwen2, Llama's attention_bias)
  bool output_bias = false;       // the attention output projection too (Llama's attention_bias)

  int32_t head_dim() const { return explicit_head_dim > 0 ? explicit_head_dim : dim / n_heads; }
  int32_t q_dim() const { return head_dim() * n_heads; }  // width of the queries and attention output
  int32_t kv_dim() const { return head_dim() * n_kv_heads; }

  // Number of float32 weights of one transformer block.
  int64_t BlockParameterCount() const;
  // Every weight of the model, classifier included (counted once when shared).
  int64_t ParameterCount() const;

  // Checks that the shape is usable: positive sizes within sane bounds, heads dividing dim (unless the head
  // size is explicit), an even head size (rotary pairs), kv heads dividing heads, a usable rope scaling.
  // Bounds keep every derived size far from overflow.
  Status Validate() const;

  // "dim=64 hidden=172 layers=5 heads=8 kv_heads=4 vocab=512 seq_len=512 classifier=shared", then what
  // differs from llama2.c's arithmetic (" head_dim=… rope=halves theta=… llama3_scaling=… qkv_bias").
  std::string ToString() const;
};

// Blocks [first, last) of a model.
struct BlockRange {
  int first = 0;  // inclusive
  int last = 0;   // exclusive
  bool empty() const { return last <= first; }
  bool contains(int block) const { return block >= first && block < last; }
  int size() const { return last - first; }
};

// Parses "A:B" (0 <= A <= B <= n_layers); "" is the empty range.
Result<BlockRange> ParseBlockRange(const std::string& text, int n_layers);

}  // namespace tandem
