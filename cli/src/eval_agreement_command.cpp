#include <nlohmann/json.hpp>

#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>

#include "cli_support.hpp"
#include "commands.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "eval-agreement";

// Logits [n, vocab] of a whole sequence in one prefill.
Result<at::Tensor> SequenceLogits(const Transformer& model, const std::vector<int>& ids) {
  KvCache cache(model.config(), BlockRange{0, model.n_layers()}, static_cast<int>(ids.size()));
  TANDEM_ASSIGN_OR_RETURN(at::Tensor hidden, model.Embed(ids));
  TANDEM_RETURN_IF_ERROR(model.RunBlocks(hidden, cache));
  return model.Logits(hidden);
}

struct GoldenRecord {
  std::vector<int> prompt_ids;
  std::vector<int> ids;
};

Result<std::vector<GoldenRecord>> ReadGolden(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFound(path + ": cannot open");
  std::vector<GoldenRecord> records;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const auto json = nlohmann::json::parse(line);
      records.push_back({json.at("prompt_ids").get<std::vector<int>>(), json.at("ids").get<std::vector<int>>()});
    } catch (const nlohmann::json::exception& error) {
      return InvalidArgument(path + ": line " + std::to_string(number) + ": " + error.what());
    }
    const GoldenRecord& record = records.back();
    if (record.prompt_ids.empty() || record.ids.size() < record.prompt_ids.size()) {
      return InvalidArgument(path + ": line " + std::to_string(number) + ": ids shorter than prompt_ids");
    }
  }
  if (records.empty()) return InvalidArgument(path + ": no records");
  return records;
}

}  // namespace

int RunEvalAgreement(std::span<const std::string> args) {
  ModelFlags model_flags;
  std::string tokenizer_path, golden_path;
  FlagSet flags("usage: tandem eval-agreement --model M --tokenizer T --golden FILE --int8-blocks A:B\n\n"
                "Teacher-forced top-1 agreement of the int8 configuration with float32 at every position\n"
                "of the golden continuations (the prompt's positions are not counted).");
  model_flags.Declare(flags, "llama2.c checkpoint");
  flags.String("tokenizer", &tokenizer_path, "llama2.c tokenizer of the model (checked against it)");
  flags.String("golden", &golden_path, "JSON lines with prompt_ids and ids");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  for (const char* name : {"model", "tokenizer", "golden", "int8-blocks"}) {
    if (Status status = Require(flags, name); !status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  auto quantized = LoadModel(model_flags);
  if (!quantized.ok()) return Fail(kCommand, quantized.status());
  auto tokenizer = Tokenizer::Load(tokenizer_path, quantized->checkpoint->config().vocab_size);
  if (!tokenizer.ok()) return Fail(kCommand, tokenizer.status());
  // The float32 reference shares the checkpoint's mapping.
  auto reference = Transformer::Create(quantized->checkpoint);
  if (!reference.ok()) return Fail(kCommand, reference.status());
  auto records = ReadGolden(golden_path);
  if (!records.ok()) return Fail(kCommand, records.status());

  int64_t agree = 0, total = 0;
  for (size_t index = 0; index < records->size(); ++index) {
    const GoldenRecord& record = (*records)[index];
    // Inputs are every id but the last; position p predicts ids[p + 1].
    const std::vector<int> inputs(record.ids.begin(), record.ids.end() - 1);
    auto want = SequenceLogits(**reference, inputs);
    auto got = SequenceLogits(*quantized->transformer, inputs);
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
  std::printf("int8 blocks %s%s, %zu records\n", model_flags.int8_blocks.c_str(),
              model_flags.int8_head ? " + head" : "",
              records->size());
  std::printf("top-1 agreement: %.2f%% over %lld positions\n", 100.0 * static_cast<double>(agree) / total,
              static_cast<long long>(total));
  return 0;
}

}  // namespace tandem::cli
