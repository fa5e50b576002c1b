// What the benchmark commands (bench, bench-suite) share: summaries of repeated runs, the machine's memory
// read bandwidth, peak memory, and one measured generation through a TailFactory.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "split_setup.hpp"
#include "tandem/engine/model_loader.hpp"

namespace tandem::cli {

struct Summary {
  double median = 0, min = 0, max = 0;
};
Summary Summarize(const std::vector<double>& values);
nlohmann::json ToJson(const Summary& summary);

// Read bandwidth of main memory with the compute threads (LibTorch's vectorized sum over 1 GiB, larger
// than any last-level cache), median of 5 runs.
double MemoryReadGigabytesPerSecond();

// The highest resident set size of this process so far (VmHWM), in MB.
double PeakRssMegabytes();
// Starts a new peak at the current resident size, so that PeakRssMegabytes() covers what comes after;
// false when the kernel does not allow it (the peak then stays the process's).
bool ResetPeakRss();

// Prefill and decode speed of each measured run of one configuration.
struct Runs {
  std::vector<double> prefill_tok_s, decode_tok_s, decode_ms_per_token;
  nlohmann::json cut_report;  // what crossed the cut in the last run (TailFactory::Report)
};

// One greedy generation of `positions` positions through a fresh tail from `tails`, recorded unless
// `record` is null (a warm-up).
Status MeasureRun(const LoadedModel& model, TailFactory& tails, const std::vector<int>& prompt, int positions,
                  Runs* record);

// A prompt of `length` token ids: BOS, then uniform ids in [3, vocab) from `seed`.
std::vector<int> RandomPrompt(int length, int vocab_size, uint64_t seed);

}  // namespace tandem::cli
