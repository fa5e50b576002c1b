#include "tandem/engine/model_loader.hpp"

#include "tandem/engine/threading.hpp"

namespace tandem {

void ModelFlags::Declare(FlagSet& flags, const std::string& model_help) {
  flags.String("model", &model, model_help);
  flags.String("int8-blocks", &int8_blocks, "blocks A:B with int8 weights, e.g. 0:2");
  flags.Bool("int8-head", &int8_head, "int8 weights for the classifier too");
  flags.String("int4-blocks", &int4_blocks, "blocks A:B with int4 weights (a scale per 32), e.g. 0:2");
  flags.Bool("int4-head", &int4_head, "int4 weights for the classifier too");
  flags.Int("threads", &threads,
            "compute threads (0 = OMP_NUM_THREADS or one per CPU this process may run on)");
  flags.Float("emulate-slowdown", &emulate_slowdown,
              "evaluations only: make every block and head computation take this many times as long (a "
              "slower device emulated on this machine; 1 = off)");
}

wire::Hello LoadedModel::Describe() const {
  return wire::DescribeModel(checkpoint->config(), fingerprint,
                             weights.blocks.empty() ? std::vector<uint64_t>{} : weights.List());
}

Result<LoadedModel> LoadModel(const ModelFlags& flags, bool fingerprint) {
  ConfigureComputeThreads(flags.threads);
  KeepActivationMemoryInHeap();
  LoadedModel loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.checkpoint, Checkpoint::Load(flags.model));
  if (fingerprint) {
    loaded.fingerprint = loaded.checkpoint->Fingerprint();
    loaded.weights = loaded.checkpoint->HashWeights();
  }
  TransformerOptions options;
  options.int8_classifier = flags.int8_head;
  options.int4_classifier = flags.int4_head;
  if (!(flags.emulate_slowdown >= 1 && flags.emulate_slowdown <= 1000)) {
    return InvalidArgument("--emulate-slowdown must be in [1, 1000]");
  }
  options.emulated_slowdown = flags.emulate_slowdown;
  TANDEM_ASSIGN_OR_RETURN(options.int8_blocks,
                          ParseBlockRange(flags.int8_blocks, loaded.checkpoint->config().n_layers));
  TANDEM_ASSIGN_OR_RETURN(options.int4_blocks,
                          ParseBlockRange(flags.int4_blocks, loaded.checkpoint->config().n_layers));
  TANDEM_ASSIGN_OR_RETURN(loaded.transformer, Transformer::Create(loaded.checkpoint, options));
  return loaded;
}

}  // namespace tandem
