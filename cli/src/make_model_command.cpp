#include <cstdio>

#include "cli_support.hpp"
#include "commands.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "make-model";

}  // namespace

int RunMakeModel(std::span<const std::string> args) {
  std::string shape = "tiny", out;
  uint64_t seed = 1;
  int vocab = 0;
  FlagSet flags("usage: tandem make-model --shape tiny|stories15M|stories110M --seed S --out FILE");
  flags.String("shape", &shape, "model shape: tiny, stories15M or stories110M");
  flags.Int("vocab", &vocab,
            "vocabulary size instead of the shape's (e.g. 512, to serve the model with tok512.bin)");
  flags.UInt64("seed", &seed, "seed of the random weights (N(0, 0.02); norms are 1)");
  flags.String("out", &out, "output file");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = Require(flags, "out"); !status.ok()) return Fail(kCommand, status, kExitUsage);
  const auto found = ModelShapes().find(shape);
  if (found == ModelShapes().end()) {
    return Fail(kCommand, InvalidArgument("unknown --shape '" + shape + "'"), kExitUsage);
  }
  if (vocab < 0) return Fail(kCommand, InvalidArgument("--vocab must be positive"), kExitUsage);
  ModelConfig config = found->second;
  if (vocab > 0) config.vocab_size = vocab;
  if (Status written = WriteRandomCheckpoint(out, config, seed); !written.ok())
    return Fail(kCommand, written);
  std::printf("wrote %s: %s, %.1fM parameters\n", out.c_str(), config.ToString().c_str(),
              static_cast<double>(config.ParameterCount()) / 1e6);
  return 0;
}

}  // namespace tandem::cli
