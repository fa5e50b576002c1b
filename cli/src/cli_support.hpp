// What the subcommands share: flag parsing with uniform exit codes, one-line errors, model loading.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>

#include "tandem/common/flags.hpp"
#include "tandem/common/status.hpp"
#include "tandem/common/tokenizer.hpp"
#include "tandem/common/transformer.hpp"

namespace tandem::cli {

// Exit codes: 0 success, 1 failure at run time (bad file, model error), 2 bad usage.
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;

// Parses `args`; on --help prints usage and returns 0, on error prints one line and returns kExitUsage;
// returns nullopt when the command should go on.
std::optional<int> ParseFlags(FlagSet& flags, std::span<const std::string> args, const char* command);

// Prints "tandem <command>: <message>" on one line to stderr and returns `exit_code`.
int Fail(const char* command, const Status& status, int exit_code = kExitFailure);

// Checks that a required flag was given.
Status Require(const FlagSet& flags, const std::string& name);

struct LoadedModel {
  std::shared_ptr<const Checkpoint> checkpoint;
  std::shared_ptr<const Transformer> transformer;
};

// The flags of every command that runs a model: --model, --int8-blocks, --int8-head, --threads.
struct ModelFlags {
  std::string model;
  std::string int8_blocks;  // "A:B" or "" (none)
  bool int8_head = false;
  int threads = 0;  // 0: OMP_NUM_THREADS, else one per core

  void Declare(FlagSet& flags, const std::string& model_help);
};

// Sizes the compute threads, loads the checkpoint and builds the runtime with the flags' int8 settings.
Result<LoadedModel> LoadModel(const ModelFlags& flags);

}  // namespace tandem::cli
