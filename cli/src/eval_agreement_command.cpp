#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <cstdio>
#include <optional>

#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "eval-agreement";

// Where the evaluated configuration cuts the model and how its boundary rows cross (no cut: cut = L).
struct Cut {
  int block = 0;
  std::optional<ActivationCodec> codec;
};

// Logits [n, vocab] of a whole sequence in one prefill; at a cut, the boundary rows go through the codec
// first. Every codec works row by row (int4 groups stay within a row), so coding all rows at once equals
// coding each decode step's row on its own.
Result<at::Tensor> SequenceLogits(const Transformer& model, const std::vector<int>& ids, const Cut& cut) {
  const int n = static_cast<int>(ids.size());
  KvCache edge_cache(model.config(), BlockRange{0, cut.block}, n);
  KvCache tail_cache(model.config(), BlockRange{cut.block, model.n_layers()}, n);
  TANDEM_ASSIGN_OR_RETURN(at::Tensor hidden, model.Embed(ids));
  TANDEM_RETURN_IF_ERROR(model.RunBlocks(hidden, edge_cache));
  if (cut.codec) {
    TANDEM_ASSIGN_OR_RETURN(hidden, PassThroughCodec(hidden, *cut.codec));
  }
  TANDEM_RETURN_IF_ERROR(model.RunBlocks(hidden, tail_cache));
  return model.Logits(hidden);
}

}  // namespace

int RunEvalAgreement(std::span<const std::string> args) {
  ModelFlags model_flags;
  std::string tokenizer_path, golden_path, codec_name;
  int split = -1;
  FlagSet flags(
      "usage: tandem eval-agreement --model M [--tokenizer T] --golden FILE [--int8-blocks A:B] "
      "[--int4-blocks A:B] [--split K --codec C]\n\n"
      "Teacher-forced top-1 agreement with float32 of int8 or int4 blocks and/or a lossy activation codec at\n"
      "the cut, at every position of the golden continuations (the prompt's positions are not counted).");
  model_flags.Declare(flags, kModelFlagHelp);
  flags.String("tokenizer", &tokenizer_path, kTokenizerFlagHelp);
  flags.String("golden", &golden_path, "JSON lines with prompt_ids and ids");
  flags.Int("split", &split, "the cut K where the boundary rows go through --codec");
  flags.String("codec", &codec_name, "activation codec at the cut, e.g. int8+zstd");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  for (const Status& status :
       {RequireModelAndTokenizer(flags, model_flags.model), Require(flags, "golden")}) {
    if (!status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  if (model_flags.int8_blocks.empty() && model_flags.int4_blocks.empty() && !model_flags.int8_head &&
      !model_flags.int4_head && codec_name.empty()) {
    return Fail(kCommand,
                InvalidArgument("nothing to compare: give --int8-blocks, --int4-blocks and/or --split K --codec C"),
                kExitUsage);
  }
  if (codec_name.empty() != (split < 0)) {
    return Fail(kCommand, InvalidArgument("--split and --codec go together"), kExitUsage);
  }
  auto quantized = LoadModel(model_flags);
  if (!quantized.ok()) return Fail(kCommand, quantized.status());
  auto tokenizer =
      Tokenizer::LoadForModel(model_flags.model, tokenizer_path, quantized->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(kCommand, tokenizer.status());
  // The float32 reference shares the checkpoint's mapping.
  auto reference = Transformer::Create(quantized->checkpoint);
  if (!reference.ok()) return Fail(kCommand, reference.status());
  auto records = ReadGolden(golden_path);
  if (!records.ok()) return Fail(kCommand, records.status());
  const int layers = quantized->transformer->n_layers();
  Cut cut{layers, std::nullopt};
  if (split >= 0) {
    if (split > layers) {
      return Fail(kCommand, InvalidArgument("--split must be within 0.." + std::to_string(layers)),
                  kExitUsage);
    }
    auto codec = ParseActivationCodec(codec_name);
    if (!codec.ok()) return Fail(kCommand, codec.status(), kExitUsage);
    cut = {split, *codec};
  }

  int64_t agree = 0, total = 0;
  for (size_t index = 0; index < records->size(); ++index) {
    const GoldenRecord& record = (*records)[index];
    // Inputs are every id but the last; position p predicts ids[p + 1].
    const std::vector<int> inputs(record.ids.begin(), record.ids.end() - 1);
    auto want = SequenceLogits(**reference, inputs, Cut{layers, std::nullopt});
    auto got = SequenceLogits(*quantized->transformer, inputs, cut);
    if (!want.ok()) return Fail(kCommand, want.status().WithContext(golden_path));
    if (!got.ok()) return Fail(kCommand, got.status().WithContext(golden_path));
    const int64_t first = static_cast<int64_t>(record.prompt_ids.size()) - 1;
    const int64_t count = static_cast<int64_t>(inputs.size()) - first;
    if (count <= 0) continue;
    const at::Tensor matches =
        want->narrow(0, first, count).argmax(-1).eq(got->narrow(0, first, count).argmax(-1));
    const int64_t record_agree = matches.sum().item<int64_t>();
    std::printf("record %zu: %lld/%lld positions agree\n", index + 1, static_cast<long long>(record_agree),
                static_cast<long long>(count));
    agree += record_agree;
    total += count;
  }
  if (total == 0) return Fail(kCommand, InvalidArgument(golden_path + ": no continuation positions"));
  std::printf("int8 blocks [%s]%s, int4 blocks [%s]%s, %s kernels, codec at cut %s: %s, %zu records\n",
              model_flags.int8_blocks.c_str(), model_flags.int8_head ? " + head" : "",
              model_flags.int4_blocks.c_str(), model_flags.int4_head ? " + head" : "", ActiveKernels().name,
              split >= 0 ? std::to_string(split).c_str() : "-",
              cut.codec ? cut.codec->Name().c_str() : "none", records->size());
  std::printf("top-1 agreement: %.2f%% over %lld positions\n", 100.0 * static_cast<double>(agree) / total,
              static_cast<long long>(total));
  return 0;
}

}  // namespace tandem::cli
