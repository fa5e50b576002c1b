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

#include "tandem/kernels/kernels.hpp"

namespace tandem::kernels {
namespace {

// An int8 output from its exact integer dot product, in the one order every table uses (so that int8
// outputs are equal across tables, not only close).
inline float Int8Output(int32_t dot, const QuantizedRows& x, int64_t input, const Int8Weights& w,
                        int64_t row) {
  return static_cast<float>(dot) * x.scales[input] * w.scales[row];
}

// Calls f.operator()<K>() for the runtime k in [1, kMax]; nothing for 0.
template <int64_t kMax, typename F>
void WithConstant(int64_t k, const F& f) {
  if constexpr (kMax > 0) {
    if (k == kMax) return f.template operator()<kMax>();
    WithConstant<kMax - 1>(k, f);
  }
}

// Runs tile.operator()<kW, kB>(row, input) over rows [row_begin, row_end) × inputs [0, batch).
// (Blocking rows and inputs to fit L2 and L1 changed nothing measurable for 16 float32 inputs on AVX2 or
// AVX-512.)
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

// A table's three matrix–vector entries from its tiles: `Tiles` has kRows and kInputs (kInt4Rows and
// kInt4Inputs for int4, whose tiles hold more accumulators) and the templates
// Float32<kW, kB>, Int8<kW, kB> and Int4<kW, kB>, each computing y[b * y_stride + r] for its kW weight rows
// from `row` and kB inputs from `input` (y points at the tile's first output).
//
// One input (decode of one session) goes one weight row at a time: the weights then stream from memory in
// one sequential run, which the hardware prefetchers follow; four interleaved rows are four short runs per
// tile, and decode ran at 0.55–0.75 of the speed (110M shape, AVX-512, int8 and float32). Several inputs
// take the wide tiles, whose arithmetic per weight byte pays for it. Each (row, input) keeps its own
// accumulator in the same order either way, so the choice changes no bit.
template <int64_t kRows, int64_t kInputs, typename Tile>
void ForEachTileOf(int64_t batch, int64_t row_begin, int64_t row_end, const Tile& tile) {
  if (batch == 1) return ForEachTile<1, 1>(batch, row_begin, row_end, tile);
  ForEachTile<kRows, kInputs>(batch, row_begin, row_end, tile);
}
// Asks for the next row tile's weights at offset i, one 64-byte line of each of its rows, to be brought to
// L2 (null `next`: none). Called at every vector step; acts every 16 floats.
template <int64_t kW>
inline void PrefetchNextRows(const float* next, int64_t n, int64_t i) {
  if (next == nullptr || i % 16 != 0) return;
  for (int64_t r = 0; r < kW; ++r) __builtin_prefetch(next + r * n + i, /*rw=*/0, /*locality=L2*/ 2);
}

// Float32 tiles get `next`: while the last inputs of a row tile run, its weights are in L1 and the memory
// is free, so they bring the next tile's rows to L2 (the prefetchers alone leave the next tile's first
// inputs waiting on memory). A 16-session tail step (110M shape, AVX-512): 42-48 -> 34-40 ms.
template <typename Tiles>
void MatVecFloat32(const float* w, int64_t n, const float* x, int64_t batch, int64_t row_begin,
                   int64_t row_end, float* y, int64_t y_stride) {
  ForEachTileOf<Tiles::kRows, Tiles::kInputs>(
      batch, row_begin, row_end, [&]<int64_t kW, int64_t kB>(int64_t row, int64_t input) {
        const bool last_inputs = batch > 1 && input + kB == batch && row + kW < row_end;
        Tiles::template Float32<kW, kB>(w + row * n, x + input * n, n, y + input * y_stride + row, y_stride,
                                        last_inputs ? w + (row + kW) * n : nullptr);
      });
}

template <typename Tiles>
void MatVecInt8(const Int8Weights& w, const QuantizedRows& x, int64_t batch, int64_t row_begin,
                int64_t row_end, float* y, int64_t y_stride) {
  ForEachTileOf<Tiles::kRows, Tiles::kInputs>(
      batch, row_begin, row_end, [&]<int64_t kW, int64_t kB>(int64_t row, int64_t input) {
        Tiles::template Int8<kW, kB>(w, x, row, input, y + input * y_stride + row, y_stride);
      });
}

template <typename Tiles>
void MatVecInt4(const Int4Weights& w, const QuantizedRows& x, int64_t batch, int64_t row_begin,
                int64_t row_end, float* y, int64_t y_stride) {
  ForEachTileOf<Tiles::kInt4Rows, Tiles::kInt4Inputs>(
      batch, row_begin, row_end, [&]<int64_t kW, int64_t kB>(int64_t row, int64_t input) {
        Tiles::template Int4<kW, kB>(w, x, row, input, y + input * y_stride + row, y_stride);
      });
}

}  // namespace
}  // namespace tandem::kernels
