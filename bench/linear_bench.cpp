// Google Benchmark of the decode (one row) and prefill (128 rows) linear layers on the stories110M
// shapes, next to a plain memory-read baseline of the same bytes measured in the same run: decode is
// bound by weight bytes, so bytes_per_second against the baseline is the kernel's efficiency.
#include <benchmark/benchmark.h>

#include <ATen/Parallel.h>

#include <numeric>
#include <random>

#include "tandem/engine/linear.hpp"
#include "tandem/engine/threading.hpp"

namespace {

std::vector<float> RandomWeights(int64_t n) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<float> values(static_cast<size_t>(n));
  for (auto& v : values) v = normal(rng);
  return values;
}

// The linear layers of one stories110M block plus a share of the classifier: ~28 MB float32.
constexpr int64_t kOut = 4 * 768 + 3 * 2048, kIn = 768;

// Times `forward(linear, x, rows, y)` on one stories110M block's layers in `format`.
template <typename Forward>
void TimeLinear(benchmark::State& state, tandem::WeightFormat format, int64_t rows, const Forward& forward) {
  const auto weights = RandomWeights(kOut * kIn);
  auto linear = tandem::Linear::Create(format, weights.data(), kOut, kIn);
  const auto x = RandomWeights(rows * kIn);
  std::vector<float> y(static_cast<size_t>(rows * kOut));
  for (auto _ : state) {
    forward(*linear, x.data(), rows, y.data());
    benchmark::DoNotOptimize(y.data());
  }
  state.SetBytesProcessed(state.iterations() * linear->WeightBytes());
  state.counters["rows/s"] =
      benchmark::Counter(static_cast<double>(state.iterations() * rows), benchmark::Counter::kIsRate);
}

void BM_Linear(benchmark::State& state, tandem::WeightFormat format, int64_t rows) {
  TimeLinear(state, format, rows, [](const tandem::Linear& linear, const float* x, int64_t n, float* y) {
    linear.Forward(x, n, y);
  });
}

// `rows` sessions' decode rows through one ForwardDecodeBatch call (continuous batching): rows/s against
// decode_float32 / decode_int8 (one row a call) is the batching gain.
void BM_DecodeBatch(benchmark::State& state, tandem::WeightFormat format, int64_t rows) {
  TimeLinear(state, format, rows, [](const tandem::Linear& linear, const float* x, int64_t n, float* y) {
    linear.ForwardDecodeBatch(x, n, y);
  });
}

// Reads `bytes` with the compute threads: the memory bandwidth the decode kernels can hope for.
void BM_MemoryRead(benchmark::State& state, int64_t bytes) {
  std::vector<int64_t> data(static_cast<size_t>(bytes / 8), 1);
  for (auto _ : state) {
    std::atomic<int64_t> total{0};
    at::parallel_for(0, static_cast<int64_t>(data.size()), 1 << 16, [&](int64_t begin, int64_t end) {
      total += std::accumulate(data.begin() + begin, data.begin() + end, int64_t{0});
    });
    benchmark::DoNotOptimize(total.load());
  }
  state.SetBytesProcessed(state.iterations() * bytes);
}

BENCHMARK_CAPTURE(BM_MemoryRead, float32_weights, kOut* kIn * 4)->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, decode_float32, tandem::WeightFormat::kFloat32, 1)->UseRealTime();
BENCHMARK_CAPTURE(BM_MemoryRead, int8_weights, kOut* kIn)->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, decode_int8, tandem::WeightFormat::kInt8, 1)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBatch, decode_batch4_float32, tandem::WeightFormat::kFloat32, 4)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBatch, decode_batch8_float32, tandem::WeightFormat::kFloat32, 8)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBatch, decode_batch16_float32, tandem::WeightFormat::kFloat32, 16)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBatch, decode_batch4_int8, tandem::WeightFormat::kInt8, 4)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBatch, decode_batch8_int8, tandem::WeightFormat::kInt8, 8)->UseRealTime();
BENCHMARK_CAPTURE(BM_DecodeBatch, decode_batch16_int8, tandem::WeightFormat::kInt8, 16)->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, prefill_float32, tandem::WeightFormat::kFloat32, 128)->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, prefill_int8, tandem::WeightFormat::kInt8, 128)->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, decode_int4, tandem::WeightFormat::kInt4, 1)->UseRealTime();
BENCHMARK_CAPTURE(BM_Linear, prefill_int4, tandem::WeightFormat::kInt4, 128)->UseRealTime();

}  // namespace

int main(int argc, char** argv) {
  tandem::ConfigureComputeThreads(0);
  tandem::KeepActivationMemoryInHeap();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  return 0;
}
