// Batch-1 matrix–vector kernels for decode, AVX-512 (VNNI for int8). Internal to linear.cpp.
//
// Why hand-written: decode multiplies a weight matrix by one activation row, and is bound by the bytes of
// weights read. oneDNN's GEMM at M = 1 reads them at about half the rate these streaming kernels reach
// here, and LibTorch's int8 linear rebuilds its kernel per call. Prefill (M > 1) stays on oneDNN.
#pragma once

#include <cstdint>

namespace tandem::kernels {

// True when this CPU can run the kernels below (AVX-512 F/BW and VNNI).
bool HaveAvx512Vnni();

// y[r] = dot(w[r, :], x) for r in [row_begin, row_end); w row-major [*, n].
void MatVecFloat32(const float* w, const float* x, int64_t n, int64_t row_begin, int64_t row_end, float* y);

// y[r] = (dot(w[r, :], x_q) * x_scale) * w_scale[r], where x_biased = x_q + 128 as unsigned bytes and
// w_row_sum[r] = Σ w[r, :] undoes the bias (VNNI multiplies unsigned by signed bytes).
void MatVecInt8(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                float x_scale, int64_t n, int64_t row_begin, int64_t row_end, float* y);

// The same for `batch` input rows at once (x row b at x + b * n, its output row at y + b * y_stride): each
// weight row is read from memory once for all of them, and every y[b][r] is computed in exactly the order
// MatVecFloat32 computes it for x row b alone, so batching changes no bit. batch <= kMaxBatch (a bound on
// the inputs kept in L2 while the weights stream past, not on the arithmetic).
inline constexpr int64_t kMaxBatch = 64;
void MatVecFloat32Batch(const float* w, const float* x, int64_t batch, int64_t n, int64_t row_begin,
                        int64_t row_end, float* y, int64_t y_stride);

// MatVecInt8 for `batch` input rows, each with its own scale (x_biased row b at x_biased + b * n), bit for
// bit as MatVecInt8 on each alone.
void MatVecInt8Batch(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                     const float* x_scales, int64_t batch, int64_t n, int64_t row_begin, int64_t row_end,
                     float* y, int64_t y_stride);

}  // namespace tandem::kernels
