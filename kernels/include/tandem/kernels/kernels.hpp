// The compute kernels of the engine's hot loops, one table of functions per instruction set.
//
// Why hand-written: decode multiplies each weight matrix by one activation row (or by one row of each of a
// few sessions), so it is bound by the bytes of weights read; BLAS at M = 1 reads them at about half the
// rate of a streaming kernel, LibTorch's int8 linear rebuilds its kernel on every call, and oneDNN 2.6's
// u8·s8 GEMM saturates 16-bit pair sums on AVX2 (wrong results). Every table computes the same thing:
// `ref` is portable scalar C++ and the oracle the others are tested against.
//
// Each instruction set's code lives in its own translation unit, compiled with that set's flags, with
// internal linkage: no AVX-512 instruction can reach a CPU without it (ggml builds its per-ISA CPU back
// ends apart for the same reason). This header carries no LibTorch and no inline code of its own.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tandem::kernels {

// Quantized rows are zero-padded to a multiple of 64 values (one AVX-512 register of int8), and int4
// weights have one scale per group of 32 (so a padded row has an even number of groups).
inline constexpr int64_t kPadding = 64;
inline constexpr int64_t kGroup = 32;
constexpr int64_t PaddedLength(int64_t n) {
  return (n + kPadding - 1) / kPadding * kPadding;
}
constexpr int64_t Groups(int64_t n) {
  return PaddedLength(n) / kGroup;
}
// Bytes of one int4 row: 16 per group.
constexpr int64_t Int4RowBytes(int64_t n) {
  return PaddedLength(n) / 2;
}

// A bound on the input rows of one batched call (the inputs stay in L2 while the weights stream past).
inline constexpr int64_t kMaxBatch = 64;

// int8 weights [rows, n]: row r at values + r * PaddedLength(n), symmetric, y = q · scale[r];
// row_sums[r] = Σ q (how VNNI's unsigned-by-signed products are unbiased).
struct Int8Weights {
  const int8_t* values;
  const float* scales;
  const int32_t* row_sums;
  int64_t n;
};

// int4 order. A row's groups go in superblocks of up to 16 (512 values; the last may hold fewer, always an
// even number G). Value i of group j of a superblock, at offset 4t + m of its group (t < 8, m < 4), sits at
// superblock · 512 + t · 4G + 4j + m: the superblock's eight *lines*, line t holding values 4t..4t+3 of
// each group in turn. A 32-bit lane of a line thus always meets the same group, so the integer products
// of a whole superblock add up in one register before its group scales (a vector of G floats) apply once:
// the scale work is per 512 values rather than per 32. Activations for int4 layers go in this order
// (ToInt4Order). The layout is every table's, as llama.cpp repacks Q4_0 into interleaved blocks.
inline constexpr int64_t kInt4Superblock = 16;  // groups
// Groups in the superblock that begins at group `first` of a row of n values.
constexpr int64_t Int4SuperblockGroups(int64_t n, int64_t first) {
  return Groups(n) - first < kInt4Superblock ? Groups(n) - first : kInt4Superblock;
}
// int4 weights [rows, n]: row r at packed + r * Int4RowBytes(n), in int4 order at half a byte a value: a
// superblock's bytes are its lines in pairs, byte superblock · 256 + (t / 2) · 4G + 4j + m holding line t's
// value in its low nibble when t is even and in its high one when t is odd, each stored as q + 8 (q in
// [-8, 7]; padding past n is q = 0 with scale 0), so one load splits into two lines with a mask and a
// shift. y = q · scales[r * Groups(n) + g].
struct Int4Weights {
  const uint8_t* packed;
  const float* scales;
  int64_t n;
};

// Activation rows quantized per row (absmax → [-127, 127]): row b at values + b * PaddedLength(n), zero
// padded, in natural order for int8 products and in int4 order for int4 ones; y = q · scales[b]; group_sums[b
// * Groups(n) + g] = Σ of group g's q, as a float (exact: at most 32 · 127), for the int4 kernels that
// multiply the stored q + 8 and take 8 · Σ x back out.
struct QuantizedRows {
  const int8_t* values;
  const float* scales;
  const float* group_sums;
  int64_t n;
};

// One instruction set's kernels. The matrix–vector products compute, for weight rows r in
// [row_begin, row_end) and input rows b in [0, batch) (batch <= kMaxBatch),
//   y[b * y_stride + r] = Σ_i w[r, i] · x[b, i]
// reading each weight row once for the whole batch. Each (r, b) is computed in the same order whatever the
// batch and row range, so batching and threading change no bit. int8: the integer dot product, times the
// input's scale, times the row's scale. int4: Σ over groups of (integer dot of the group × its scale), times
// the input's scale.
struct Table {
  const char* name;
  void (*matvec_f32)(const float* w, int64_t n, const float* x, int64_t batch, int64_t row_begin,
                     int64_t row_end, float* y, int64_t y_stride);
  void (*matvec_i8)(const Int8Weights& w, const QuantizedRows& x, int64_t batch, int64_t row_begin,
                    int64_t row_end, float* y, int64_t y_stride);
  void (*matvec_i4)(const Int4Weights& w, const QuantizedRows& x, int64_t batch, int64_t row_begin,
                    int64_t row_end, float* y, int64_t y_stride);
  // QuantizeActivations (below), bit for bit: run at every call of an int8 or int4 layer.
  void (*quantize_rows)(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales,
                        float* group_sums);
  // Σ a[i] · b[i] (attention scores).
  float (*dot)(const float* a, const float* b, int64_t n);
  // y[i] += a · x[i] (attention's weighted sum of values).
  void (*axpy)(float a, const float* x, float* y, int64_t n);
  // out[i] = gain[i] · x[i] / sqrt(mean(x²) + eps).
  void (*rms_norm)(const float* x, const float* gain, int64_t n, float eps, float* out);
  // gate[i] = silu(gate[i]) · up[i] (SwiGLU).
  void (*swiglu)(float* gate, const float* up, int64_t n);
  // values[i] = exp(values[i] - max) / Σ (llama2.c's softmax).
  void (*softmax)(float* values, int64_t n);
  // Rotary embedding of one head: pair i is (i·stride, i·stride + partner) for i < pairs, turned by
  // (cos[i], sin[i]).
  void (*rotate)(float* head, const float* cos, const float* sin, int64_t pairs, int64_t stride,
                 int64_t partner);
};

// Every table built into this binary for this architecture, `ref` first.
std::span<const Table* const> AllTables();
// Whether this CPU can run `table`; when not, `missing` names the features it lacks.
bool Supported(const Table& table, std::string* missing = nullptr);
// The tables this CPU can run, `ref` first, the best last.
std::span<const Table* const> SupportedTables();

// The table in use: TANDEM_KERNELS when set (ref, avx2, avx512 or neon), else the best this CPU supports.
// Chosen once, at the first call. A TANDEM_KERNELS that names no table, or one this CPU cannot run, prints
// one line naming the problem and exits with status 2 (ChooseTable's error).
const Table& Active();

// The choice Active() makes, for callers that report the error themselves: `requested` empty means the
// best supported table. nullptr with `error` set when the name is unknown or the CPU lacks a feature.
const Table* ChooseTable(std::string_view requested, std::string* error);

// Quantization (portable, run once per weight matrix or per activation row).
// Symmetric absmax of `rows` rows of n floats to int8: values [rows, PaddedLength(n)] zero padded,
// one scale per row, and each row's Σ q. Inputs must be finite.
void QuantizeInt8Rows(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales,
                      int32_t* row_sums);
// The same for activations, with the sums of each group of 32 instead (QuantizedRows).
void QuantizeActivations(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales,
                         float* group_sums);
// Activation rows [rows, PaddedLength(n)] from natural order (QuantizeActivations, quantize_rows) into int4
// order, for the int4 products.
void ToInt4Order(const int8_t* values, int64_t rows, int64_t n, int8_t* out);
// Symmetric int4 per group of 32 in Int4Weights' layout (packed [rows, Int4RowBytes(n)], scales
// [rows, Groups(n)]): the group's value of largest magnitude maps to -8, so all 16 levels are used.
void QuantizeInt4Rows(const float* w, int64_t rows, int64_t n, uint8_t* packed, float* scales);

}  // namespace tandem::kernels
