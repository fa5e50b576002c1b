#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <cstdio>
#include <optional>
#include <span>

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

struct EvalAgreementFlags {
  ModelFlags model;
  std::string tokenizer_path, golden_path, codec_name;
  int split = -1;
};

// Parses the flags and checks what needs no model; an exit code when the command ends there.
std::optional<int> ParseEvalAgreementFlags(std::span<const std::string> args, EvalAgreementFlags& f) {
  FlagSet flags(
      "usage: tandem eval-agreement --model M [--tokenizer T] --golden FILE [--int8-blocks A:B] "
      "[--int4-blocks A:B] [--split K --codec C]\n\n"
      "Teacher-forced top-1 agreement with float32 of int8 or int4 blocks and/or a lossy activation codec "
      "at\n"
      "the cut, at every position of the golden continuations (the prompt's positions are not counted).");
  f.model.Declare(flags, kModelFlagHelp);
  flags.String("tokenizer", &f.tokenizer_path, kTokenizerFlagHelp);
  flags.String("golden", &f.golden_path, "JSON lines with prompt_ids and ids");
  flags.Int("split", &f.split, "the cut K where the boundary rows go through --codec");
  flags.String("codec", &f.codec_name, "activation codec at the cut, e.g. int8+zstd");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  for (const Status& status : {RequireModelAndTokenizer(flags, f.model.model), Require(flags, "golden")}) {
    if (!status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  if (f.model.int8_blocks.empty() && f.model.int4_blocks.empty() && !f.model.int8_head &&
      !f.model.int4_head && f.codec_name.empty()) {
    return Fail(
        kCommand,
        InvalidArgument("nothing to compare: give --int8-blocks, --int4-blocks and/or --split K --codec C"),
        kExitUsage);
  }
  if (f.codec_name.empty() != (f.split < 0)) {
    return Fail(kCommand, InvalidArgument("--split and --codec go together"), kExitUsage);
  }
  return std::nullopt;
}

// Positions of the golden continuations, and those where both models' top-1 agree.
struct Agreement {
  int64_t agree = 0, total = 0;
};

// Teacher-forced over every record, a line per record.
Result<Agreement> CountAgreement(const Transformer& reference, const Transformer& evaluated,
                                 const std::vector<GoldenRecord>& records, const Cut& cut) {
  const Cut uncut{reference.n_layers(), std::nullopt};
  Agreement agreement;
  for (size_t index = 0; index < records.size(); ++index) {
    const GoldenRecord& record = records[index];
    // Inputs are every id but the last; position p predicts ids[p + 1].
    const std::vector<int> inputs(record.ids.begin(), record.ids.end() - 1);
    TANDEM_ASSIGN_OR_RETURN(const at::Tensor want, SequenceLogits(reference, inputs, uncut));
    TANDEM_ASSIGN_OR_RETURN(const at::Tensor got, SequenceLogits(evaluated, inputs, cut));
    const int64_t first = static_cast<int64_t>(record.prompt_ids.size()) - 1;
    const int64_t count = static_cast<int64_t>(inputs.size()) - first;
    if (count <= 0) continue;
    const at::Tensor matches =
        want.narrow(0, first, count).argmax(-1).eq(got.narrow(0, first, count).argmax(-1));
    const int64_t record_agree = matches.sum().item<int64_t>();
    std::printf("record %zu: %lld/%lld positions agree\n", index + 1, static_cast<long long>(record_agree),
                static_cast<long long>(count));
    agreement.agree += record_agree;
    agreement.total += count;
  }
  return agreement;
}

}  // namespace

int RunEvalAgreement(std::span<const std::string> args) {
  EvalAgreementFlags f;
  if (auto exit = ParseEvalAgreementFlags(args, f)) return *exit;
  auto quantized = LoadModel(f.model);
  if (!quantized.ok()) return Fail(kCommand, quantized.status());
  auto tokenizer =
      Tokenizer::LoadForModel(f.model.model, f.tokenizer_path, quantized->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(kCommand, tokenizer.status());
  // The float32 reference shares the checkpoint's mapping.
  auto reference = Transformer::Create(quantized->checkpoint);
  if (!reference.ok()) return Fail(kCommand, reference.status());
  auto records = ReadGolden(f.golden_path);
  if (!records.ok()) return Fail(kCommand, records.status());
  const int layers = quantized->transformer->n_layers();
  Cut cut{layers, std::nullopt};
  if (f.split >= 0) {
    if (f.split > layers) {
      return Fail(kCommand, InvalidArgument("--split must be within 0.." + std::to_string(layers)),
                  kExitUsage);
    }
    auto codec = ParseActivationCodec(f.codec_name);
    if (!codec.ok()) return Fail(kCommand, codec.status(), kExitUsage);
    cut = {f.split, *codec};
  }
  const auto agreement = CountAgreement(**reference, *quantized->transformer, *records, cut);
  if (!agreement.ok()) return Fail(kCommand, agreement.status().WithContext(f.golden_path));
  if (agreement->total == 0) {
    return Fail(kCommand, InvalidArgument(f.golden_path + ": no continuation positions"));
  }
  const ModelFlags& m = f.model;
  std::printf("int8 blocks [%s]%s, int4 blocks [%s]%s, %s kernels, codec at cut %s: %s, %zu records\n",
              m.int8_blocks.c_str(), m.int8_head ? " + head" : "", m.int4_blocks.c_str(),
              m.int4_head ? " + head" : "", ActiveKernels().name,
              f.split >= 0 ? std::to_string(f.split).c_str() : "-",
              cut.codec ? cut.codec->Name().c_str() : "none", records->size());
  std::printf("top-1 agreement: %.2f%% over %lld positions\n",
              100.0 * static_cast<double>(agreement->agree) / agreement->total,
              static_cast<long long>(agreement->total));
  return 0;
}

}  // namespace tandem::cli
