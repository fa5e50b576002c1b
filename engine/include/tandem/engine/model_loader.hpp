// The flags every program that runs a model shares (--model, --int8-blocks, --int8-head, --int4-blocks,
// --int4-head, --threads), and loading the model they describe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "tandem/base/flags.hpp"
#include "tandem/base/status.hpp"
#include "tandem/engine/transformer.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem {

// What --model and --tokenizer take, for every program's --help.
inline constexpr const char* kModelFlagHelp =
    "llama2.c checkpoint (.bin) or Hugging Face model directory (config.json + safetensors)";
inline constexpr const char* kTokenizerFlagHelp =
    "tokenizer: llama2.c tokenizer.bin, tokenizer.json or tokenizer.model (default: the Hugging Face "
    "model directory's; required with a llama2.c checkpoint)";

struct ModelFlags {
  std::string model;
  std::string int8_blocks;  // "A:B" or "" (none)
  bool int8_head = false;
  std::string int4_blocks;  // "A:B" or "" (none)
  bool int4_head = false;
  int threads = 0;             // 0: OMP_NUM_THREADS, else one per core
  float emulate_slowdown = 1;  // TransformerOptions::emulated_slowdown

  void Declare(FlagSet& flags, const std::string& model_help);
};

struct LoadedModel {
  std::shared_ptr<const Checkpoint> checkpoint;
  std::shared_ptr<const Transformer> transformer;
  uint64_t fingerprint = 0;    // of the float32 file; 0 unless asked for
  WeightFingerprints weights;  // per block and head; empty unless asked for

  // The identity HELLO carries: shape, fingerprint and per-block hashes.
  wire::Hello Describe() const;
};

// Sizes the compute threads, loads the checkpoint and builds the runtime with the flags' int8 settings.
// `fingerprint` hashes the whole file and each block first (what HELLO compares), before int8 blocks release
// their pages.
Result<LoadedModel> LoadModel(const ModelFlags& flags, bool fingerprint = false);

}  // namespace tandem
