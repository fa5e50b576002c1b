#include "cli_support.hpp"

#include <cstdio>

#include "tandem/common/threading.hpp"

namespace tandem::cli {

std::optional<int> ParseFlags(FlagSet& flags, std::span<const std::string> args, const char* command) {
  const Status parsed = flags.Parse(args);
  if (!parsed.ok()) return Fail(command, parsed, kExitUsage);
  if (flags.help_requested()) {
    std::printf("%s", flags.Usage().c_str());
    return 0;
  }
  return std::nullopt;
}

int Fail(const char* command, const Status& status, int exit_code) {
  std::string message = status.message();
  for (char& c : message) {
    if (c == '\n') c = ' ';  // one line, whatever the error text holds
  }
  std::fprintf(stderr, "tandem %s: error: %s\n", command, message.c_str());
  return exit_code;
}

Status Require(const FlagSet& flags, const std::string& name) {
  if (!flags.WasSet(name)) return InvalidArgument("--" + name + " is required (see --help)");
  return Status::Ok();
}

void ModelFlags::Declare(FlagSet& flags, const std::string& model_help) {
  flags.String("model", &model, model_help);
  flags.String("int8-blocks", &int8_blocks, "blocks A:B with int8 weights, e.g. 0:2");
  flags.Bool("int8-head", &int8_head, "int8 weights for the classifier too");
  flags.Int("threads", &threads, "compute threads (0 = OMP_NUM_THREADS or one per core)");
}

Result<LoadedModel> LoadModel(const ModelFlags& flags) {
  ConfigureComputeThreads(flags.threads);
  LoadedModel loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.checkpoint, Checkpoint::Load(flags.model));
  TransformerOptions options;
  options.int8_classifier = flags.int8_head;
  TANDEM_ASSIGN_OR_RETURN(options.int8_blocks,
                          ParseBlockRange(flags.int8_blocks, loaded.checkpoint->config().n_layers));
  TANDEM_ASSIGN_OR_RETURN(loaded.transformer, Transformer::Create(loaded.checkpoint, options));
  return loaded;
}

}  // namespace tandem::cli
