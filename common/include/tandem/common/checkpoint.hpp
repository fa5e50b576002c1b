// llama2.c checkpoints (the "version 0" float32 export), read through a memory map.
//
// Layout: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
// a negative vocab_size means the classifier is stored separately), then float32 tensors in this order:
// token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
// wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim, hidden],
// w3 [L, hidden, dim], rms_final [dim], two legacy RoPE tables [seq_len, head_dim/2] (ignored), and,
// when not shared, wcls [vocab, dim]. Every matrix is row-major [out, in].
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tandem/common/mapped_file.hpp"
#include "tandem/common/model_config.hpp"
#include "tandem/common/status.hpp"

namespace tandem {

// Pointers into the mapping for one transformer block.
struct BlockWeights {
  const float* rms_att = nullptr;  // [dim]
  const float* wq = nullptr;       // [dim, dim]
  const float* wk = nullptr;       // [kv_dim, dim]
  const float* wv = nullptr;       // [kv_dim, dim]
  const float* wo = nullptr;       // [dim, dim]
  const float* rms_ffn = nullptr;  // [dim]
  const float* w1 = nullptr;       // [hidden, dim]
  const float* w2 = nullptr;       // [dim, hidden]
  const float* w3 = nullptr;       // [hidden, dim]
};

// An immutable, validated checkpoint. Thread-safe; share it with std::shared_ptr.
class Checkpoint {
 public:
  // Maps `path`, validates the header and checks that the file size is exactly what the header implies
  // before any tensor is touched. Errors name the file and the problem.
  static Result<std::shared_ptr<const Checkpoint>> Load(const std::string& path);

  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return file_.path(); }
  const MappedFile& file() const { return file_; }

  const float* token_embedding() const { return token_embedding_; }  // [vocab, dim]
  const BlockWeights& block(int index) const { return blocks_.at(index); }
  const float* rms_final() const { return rms_final_; }    // [dim]
  const float* classifier() const { return classifier_; }  // [vocab, dim]; == token_embedding() if shared

  // A stable hash of the config and every weight byte (FNV-1a 64 over the file), for handshakes.
  uint64_t Fingerprint() const;

  // Size in bytes of a checkpoint file with this config (header included), or an error when the config
  // is invalid.
  static Result<uint64_t> ExpectedFileSize(const ModelConfig& config);

 private:
  Checkpoint(MappedFile file, ModelConfig config) : file_(std::move(file)), config_(config) {}

  MappedFile file_;
  ModelConfig config_;
  const float* token_embedding_ = nullptr;
  std::vector<BlockWeights> blocks_;
  const float* rms_final_ = nullptr;
  const float* classifier_ = nullptr;
};

// Writes a llama2.c checkpoint with weights drawn from N(0, std) (norm weights are 1), deterministic for a
// seed. Used by `tandem make-model` and tests: models of any shape without downloads.
Status WriteRandomCheckpoint(const std::string& path, const ModelConfig& config, uint64_t seed,
                             float std = 0.02f);

}  // namespace tandem
