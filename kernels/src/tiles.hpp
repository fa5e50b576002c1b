// How the SIMD tables walk a matrix–vector product in register tiles: kRows weight rows × kInputs input
// rows at a time, full tiles first, then narrower ones at the edges (each size its own template instance,
// so that the loops over it unroll). A tile's weight rows come from memory for its first inputs and from L1
// for the rest, so the weights are read once per call whatever the batch.
//
// Included by each instruction set's translation unit, inside an anonymous namespace on purpose: every unit
// gets its own copy compiled with its own flags, and the linker can never fold an AVX-512 instance into a
// caller on another CPU (an inline function or template shared across units would be one ODR entity).
#pragma once

#include <cstdint>

namespace tandem::kernels {
namespace {

// Calls f.operator()<K>() for the runtime k in [1, kMax]; nothing for 0.
template <int64_t kMax, typename F>
void WithConstant(int64_t k, const F& f) {
  if constexpr (kMax > 0) {
    if (k == kMax) return f.template operator()<kMax>();
    WithConstant<kMax - 1>(k, f);
  }
}

// Runs tile.operator()<kW, kB>(row, input) over rows [row_begin, row_end) × inputs [0, batch).
template <int64_t kRows, int64_t kInputs, typename Tile>
void ForEachTile(int64_t batch, int64_t row_begin, int64_t row_end, const Tile& tile) {
  const auto inputs = [&]<int64_t kW>(int64_t row) {
    int64_t b = 0;
    for (; b + kInputs <= batch; b += kInputs) tile.template operator()<kW, kInputs>(row, b);
    WithConstant<kInputs - 1>(batch - b, [&]<int64_t kB>() { tile.template operator()<kW, kB>(row, b); });
  };
  int64_t r = row_begin;
  for (; r + kRows <= row_end; r += kRows) inputs.template operator()<kRows>(r);
  WithConstant<kRows - 1>(row_end - r, [&]<int64_t kW>() { inputs.template operator()<kW>(r); });
}

}  // namespace
}  // namespace tandem::kernels
