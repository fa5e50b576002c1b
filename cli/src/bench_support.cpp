#include "bench_support.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>

#include "cli_support.hpp"
#include "tandem/base/process_memory.hpp"
#include "tandem/engine/pipeline.hpp"

namespace tandem::cli {

Summary Summarize(const std::vector<double>& values) {
  if (values.empty()) return {};
  const auto [min, max] = std::minmax_element(values.begin(), values.end());
  return {Median(values), *min, *max};
}

nlohmann::json ToJson(const Summary& summary) {
  return {{"median", summary.median}, {"min", summary.min}, {"max", summary.max}};
}

// Decode reads every weight once a token, so bytes/token × tok/s against this is the kernels' efficiency.
double MemoryReadGigabytesPerSecond() {
  const at::Tensor buffer = at::ones({int64_t{1} << 28}, at::kFloat);
  std::vector<double> rates;
  for (int run = 0; run < 5; ++run) {
    const auto start = std::chrono::steady_clock::now();
    const float total = buffer.sum().item<float>();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (total > 0) rates.push_back(static_cast<double>(buffer.nbytes()) / seconds / 1e9);
  }
  return Summarize(rates).median;
}

double PeakRssMegabytes() {
  return ProcessMemoryMegabytes("VmHWM");
}

bool ResetPeakRss() {
  return ResetPeakResidentMemory();
}

Status MeasureRun(const LoadedModel& model, TailFactory& tails, const std::vector<int>& prompt, int positions,
                  Runs* record) {
  EdgeRunner edge(model.transformer, tails.cut(), positions);
  TANDEM_ASSIGN_OR_RETURN(const auto tail, tails.NewTail(positions, SamplingParams{0.0f, 1.0f, 0}));
  TANDEM_ASSIGN_OR_RETURN(
      const Generation generation,
      Generate(edge, *tail, prompt, GenerateOptions{.steps = positions, .stop_tokens = {}}));
  if (record != nullptr) {
    const GenerationTimings& timings = generation.timings;
    record->prefill_tok_s.push_back(timings.prefill_tokens_per_second());
    record->decode_tok_s.push_back(timings.decode_tokens_per_second());
    record->decode_ms_per_token.push_back(1000.0 / timings.decode_tokens_per_second());
    record->cut_report = tails.Report(*tail);
  }
  return Status::Ok();
}

std::vector<int> RandomPrompt(int length, int vocab_size, uint64_t seed) {
  std::mt19937 rng(static_cast<uint32_t>(seed));
  std::uniform_int_distribution<int> token(3, vocab_size - 1);
  std::vector<int> prompt = {1};
  while (static_cast<int>(prompt.size()) < length) prompt.push_back(token(rng));
  return prompt;
}

}  // namespace tandem::cli
