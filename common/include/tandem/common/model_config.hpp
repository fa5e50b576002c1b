// The shape of a decoder-only LLaMA-architecture model.
#pragma once

#include <cstdint>
#include <string>

#include "tandem/common/status.hpp"

namespace tandem {

struct ModelConfig {
  int32_t dim = 0;         // hidden size d
  int32_t hidden_dim = 0;  // SwiGLU inner size
  int32_t n_layers = 0;    // L, the number of transformer blocks
  int32_t n_heads = 0;
  int32_t n_kv_heads = 0;  // < n_heads: grouped-query attention
  int32_t vocab_size = 0;
  int32_t seq_len = 0;     // longest context the model was trained for
  bool shared_classifier = true;  // the LM head reuses the token embedding
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;

  int32_t head_dim() const { return dim / n_heads; }
  int32_t kv_dim() const { return head_dim() * n_kv_heads; }

  // Number of float32 weights of one transformer block.
  int64_t BlockParameterCount() const;
  // Every weight of the model, classifier included (counted once when shared).
  int64_t ParameterCount() const;

  // Checks that the shape is usable: positive sizes within sane bounds, heads dividing dim, an even head
  // size (rotary pairs), kv heads dividing heads. Bounds keep every derived size far from overflow.
  Status Validate() const;

  // "dim=64 hidden=172 layers=5 heads=8 kv_heads=4 vocab=512 seq_len=512"
  std::string ToString() const;
};

}  // namespace tandem
