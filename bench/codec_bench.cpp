// Google Benchmark of the activation codec on boundary rows of the stories110M shape (dim 768): one decode
// row and a 128-row prefill chunk, encode and decode for every codec. bytes_per_second counts float32
// bytes; the fp32+none pair is the copy baseline of the same run.
#include <benchmark/benchmark.h>

#include <random>

#include "tandem/wire/activation_codec.hpp"

namespace {

constexpr int64_t kDim = 768;

std::vector<float> HiddenRows(int64_t rows) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> values(static_cast<size_t>(rows * kDim));
  for (auto& v : values) v = normal(rng);
  return values;
}

void BM_Encode(benchmark::State& state, const char* codec_name) {
  const int64_t rows = state.range(0);
  const auto codec = *tandem::ParseActivationCodec(codec_name);
  const auto values = HiddenRows(rows);
  int64_t payload = 0;
  for (auto _ : state) {
    auto encoded = tandem::EncodeActivations(values, rows, kDim, codec);
    payload = static_cast<int64_t>(encoded->payload.size());
    benchmark::DoNotOptimize(encoded->payload.data());
  }
  state.SetBytesProcessed(state.iterations() * rows * kDim * 4);
  state.counters["payload_bytes"] = static_cast<double>(payload);
}

void BM_Decode(benchmark::State& state, const char* codec_name) {
  const int64_t rows = state.range(0);
  const auto codec = *tandem::ParseActivationCodec(codec_name);
  const auto encoded = *tandem::EncodeActivations(HiddenRows(rows), rows, kDim, codec);
  const tandem::ActivationCodec applied{codec.precision, encoded.compression};
  for (auto _ : state) {
    auto decoded = tandem::DecodeActivations(encoded.payload, rows, kDim, applied, rows * kDim);
    benchmark::DoNotOptimize(decoded->data());
  }
  state.SetBytesProcessed(state.iterations() * rows * kDim * 4);
}

}  // namespace

#define TANDEM_CODEC_BENCH(name)                               \
  BENCHMARK_CAPTURE(BM_Encode, name, #name)->Arg(1)->Arg(128); \
  BENCHMARK_CAPTURE(BM_Decode, name, #name)->Arg(1)->Arg(128)

TANDEM_CODEC_BENCH(fp32);
TANDEM_CODEC_BENCH(fp32 + zstd);
TANDEM_CODEC_BENCH(fp16);
TANDEM_CODEC_BENCH(bf16 + lz4);
TANDEM_CODEC_BENCH(int8);
TANDEM_CODEC_BENCH(int8 + lz4);
TANDEM_CODEC_BENCH(int8 + zstd);
TANDEM_CODEC_BENCH(int4 + zstd);

BENCHMARK_MAIN();
