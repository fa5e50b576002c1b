// Model weights, read through memory maps: llama2.c checkpoints, and Hugging Face model directories
// (config.json + safetensors, hf_config.hpp and safetensors.hpp).
//
// llama2.c layout (the "version 0" float32 export): 7 little-endian int32 (dim, hidden_dim, n_layers,
// n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size means the classifier is stored separately),
// then float32 tensors in this order: token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk
// [L, kv_dim, dim], wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim], w2 [L, dim,
// hidden], w3 [L, hidden, dim], rms_final [dim], two legacy RoPE tables [seq_len, head_dim/2] (ignored), and,
// when not shared, wcls [vocab, dim]. Every matrix is row-major [out, in].
//
// Hugging Face: the Llama tensor names (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight,
// ..., model.norm.weight, lm_head.weight unless tied), also row-major [out, in]. F32 tensors are used in
// place in the mapping; F16 and BF16 ones are widened to float32 copies at load.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/mapped_file.hpp"
#include "tandem/base/status.hpp"
#include "tandem/model/model_config.hpp"

namespace tandem {

// Pointers into the mapping for one transformer block.
struct BlockWeights {
  const float* rms_att = nullptr;  // [dim]
  const float* wq = nullptr;       // [q_dim, dim]
  const float* wk = nullptr;       // [kv_dim, dim]
  const float* wv = nullptr;       // [kv_dim, dim]
  const float* wo = nullptr;       // [dim, q_dim]
  const float* bq = nullptr;       // [q_dim]; biases are null unless the config has them
  const float* bk = nullptr;       // [kv_dim]
  const float* bv = nullptr;       // [kv_dim]
  const float* bo = nullptr;       // [dim]
  const float* rms_ffn = nullptr;  // [dim]
  const float* w1 = nullptr;       // [hidden, dim]
  const float* w2 = nullptr;       // [dim, hidden]
  const float* w3 = nullptr;       // [hidden, dim]
};

// Hashes of a checkpoint's weights piece by piece, so that two processes holding different parts of one
// model can tell that the parts they share are the same (see wire::Hello::block_fingerprints).
struct WeightFingerprints {
  std::vector<uint64_t> blocks;  // per block [0, L): FNV-1a 64 over its float32 weights; 0 when not held
  uint64_t head = 0;             // the final norm and classifier; 0 when not held
  // blocks, then head: the list HELLO carries.
  std::vector<uint64_t> List() const;
};

// An immutable, validated checkpoint. Thread-safe; share it with std::shared_ptr.
//
// A block-range checkpoint (`tandem convert --blocks A:B`) is a Hugging Face directory holding only blocks
// [A, B) (with the final norm and head when B = L, and the embedding when A = 0 or the head is tied to
// it); its safetensors metadata says so ("tandem.blocks": "A:B") and keeps the source's rotary layout
// ("tandem.rope_layout"). A cloud tail loads it to hold no more of the model than it runs.
class Checkpoint {
 public:
  enum class Format { kLlama2c, kHuggingFace };

  // A directory (or a .safetensors file beside its config.json) loads as a Hugging Face model, anything
  // else as a llama2.c file. llama2.c: maps `path`, validates the header and checks that the file size is
  // exactly what the header implies before any tensor is touched. Hugging Face: validates config.json and
  // the safetensors headers, then that every tensor the config implies is there with its shape, and that
  // no other tensor is. Errors name the file and the problem.
  static Result<std::shared_ptr<const Checkpoint>> Load(const std::string& path);
  // Whether `path` names a Hugging Face model (a directory, or a .safetensors file).
  static bool IsHuggingFacePath(const std::string& path);

  const ModelConfig& config() const { return config_; }
  Format format() const { return format_; }
  const std::string& path() const { return path_; }
  // The mapped llama2.c file (Format::kLlama2c only).
  const MappedFile& file() const { return *file_; }

  // The blocks this checkpoint holds: [0, L) unless it is a block-range checkpoint.
  BlockRange held_blocks() const { return held_; }
  bool holds_every_block() const { return held_.first == 0 && held_.last == config_.n_layers; }
  bool holds_embedding() const { return token_embedding_ != nullptr; }
  bool holds_head() const { return classifier_ != nullptr; }

  const float* token_embedding() const { return token_embedding_; }  // [vocab, dim]
  const BlockWeights& block(int index) const { return blocks_.at(index); }
  const float* rms_final() const { return rms_final_; }    // [dim]
  const float* classifier() const { return classifier_; }  // [vocab, dim]; == token_embedding() if shared

  // A stable hash of the config and every weight byte, for handshakes: FNV-1a 64 over the llama2.c file,
  // or over the config's description and each safetensors tensor (name, dtype, bytes) in name order.
  uint64_t Fingerprint() const;
  // The hash of each held block and of the head, over their float32 weights as this process computes with
  // them (so call it before int8 blocks release theirs).
  WeightFingerprints HashWeights() const;

  // The float32 weights at `weights` ([count]) are no longer read (an int8 copy stands in): mapped pages
  // leave the resident set, a widened copy is freed.
  void ReleaseWeights(const float* weights, size_t count) const;

  // Size in bytes of a checkpoint file with this config (header included), or an error when the config
  // is invalid.
  static Result<uint64_t> ExpectedFileSize(const ModelConfig& config);

 private:
  struct HuggingFaceFiles;  // the safetensors files, kept mapped
  Checkpoint(std::string path, Format format, ModelConfig config)
      : path_(std::move(path)), format_(format), config_(config) {}
  static Result<std::shared_ptr<const Checkpoint>> LoadLlama2c(const std::string& path);
  static Result<std::shared_ptr<const Checkpoint>> LoadHuggingFace(const std::string& path);
  // The float32 data of one Hugging Face tensor of `shape`: in the mapping when F32, else widened into
  // widened_.
  Result<const float*> HfTensor(const std::string& name, std::vector<int64_t> shape);
  uint64_t HuggingFaceFingerprint() const;
  void ReleaseMappedHuggingFace(const float* weights, size_t count) const;

  std::string path_;
  Format format_;
  std::optional<MappedFile> file_;        // llama2.c
  std::shared_ptr<HuggingFaceFiles> hf_;  // Hugging Face
  mutable std::mutex widened_mutex_;      // ReleaseWeights may run from several Transformer::Create
  mutable std::map<const float*, std::vector<float>> widened_;
  ModelConfig config_;
  BlockRange held_;
  const float* token_embedding_ = nullptr;
  std::vector<BlockWeights> blocks_;
  const float* rms_final_ = nullptr;
  const float* classifier_ = nullptr;
};

// The safetensors metadata of a block-range checkpoint: the blocks it holds ("A:B") and the rotary layout
// of its q/k rows ("interleaved" or "halves"; they are stored as the source had them).
inline constexpr std::string_view kBlockRangeMetadata = "tandem.blocks";
inline constexpr std::string_view kRopeLayoutMetadata = "tandem.rope_layout";
// Whether a checkpoint holding blocks `held` holds the token embedding: for blocks from 0, or for the head
// when the classifier is the embedding.
bool BlockRangeHoldsEmbedding(const ModelConfig& config, BlockRange held);

// Writes a llama2.c checkpoint with weights drawn from N(0, std) (norm weights are 1), deterministic for a
// seed. Used by `tandem make-model` and tests: models of any shape without downloads.
Status WriteRandomCheckpoint(const std::string& path, const ModelConfig& config, uint64_t seed,
                             float std = 0.02f);

}  // namespace tandem
