// y = x · Wᵀ for a row-major weight W [out, in], in float32, int8 or int4.
//
// Why not at::linear: LibTorch's float32 path goes to the system BLAS, and Debian's OpenBLAS 0.3.21 does
// not recognise this server generation and falls back to its SSE3 ("Prescott") kernels; LibTorch's dynamic
// int8 linear rebuilds its kernel on every call and is 10–50× too slow at batch 1. Every product runs on
// the kernel table of this CPU (kernels/: AVX-512, AVX2, NEON or portable), split over the shared OpenMP
// pool by output rows, except float32 prefill (several rows of one session), which is oneDNN's SGEMM.
// oneDNN's int8 GEMM is never used: on AVX2 it saturates 16-bit pair sums.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/kernels/kernels.hpp"

namespace tandem {

enum class WeightFormat { kFloat32, kInt8, kInt4 };

// Row-major float32 C[m, n] = alpha · A[m, k] · op(B), where op(B) = Bᵀ (B stored [n, k]) when
// `transpose_b`, else B ([k, n]). Leading dimensions are given so that views (one head of a wider row,
// a prefix of a KV cache) need no copies. oneDNN's SGEMM, on the shared OpenMP pool.
void MatMul(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
            int64_t ldb, bool transpose_b, float* c, int64_t ldc);

// Immutable after creation; Forward is thread-safe (scratch space is per call).
class Linear {
 public:
  // Uses `weight` in place (it must outlive the Linear, e.g. a checkpoint mapping). Fails on a
  // non-finite weight.
  static Result<Linear> Float32(const float* weight, int64_t out_features, int64_t in_features);
  // Quantizes `weight` to int8 with one absmax scale per output row; `weight` is not used afterwards.
  // Activations are quantized per row (absmax) at each call. Fails on a non-finite weight.
  static Result<Linear> Int8(const float* weight, int64_t out_features, int64_t in_features);
  // Quantizes `weight` to int4 with one scale per group of 32 weights of a row (kernels::QuantizeInt4Rows);
  // activations as for int8. Fails on a non-finite weight.
  static Result<Linear> Int4(const float* weight, int64_t out_features, int64_t in_features);
  // The one of the three above that `format` names.
  static Result<Linear> Create(WeightFormat format, const float* weight, int64_t out_features,
                               int64_t in_features);

  // x [rows, in] → y [rows, out], both row-major and contiguous.
  void Forward(const float* x, int64_t rows, float* y) const;

  // Several layers of one format reading the same x [rows, in] (q/k/v, or the two SwiGLU inputs):
  // outputs[i] gets x · layers[i]ᵀ. They share one activation quantization and one parallel pass over all
  // their rows, instead of one each.
  static void ForwardSharedInput(std::span<const Linear* const> layers, const float* x, int64_t rows,
                                 std::span<float* const> outputs);

  // `rows` independent decode rows x [rows, in] → y [rows, out], each row bit for bit what Forward(row, 1)
  // gives, with the weights read once per group of rows rather than once per row: how the decode steps of
  // many sessions go through a layer together (continuous batching).
  void ForwardDecodeBatch(const float* x, int64_t rows, float* y) const;
  // The same for several layers reading the same rows, in one parallel pass (as ForwardSharedInput).
  static void ForwardDecodeBatch(std::span<const Linear* const> layers, const float* x, int64_t rows,
                                 std::span<float* const> outputs);

  int64_t out_features() const { return out_; }
  int64_t in_features() const { return in_; }
  WeightFormat format() const { return format_; }
  // Bytes of weights this layer reads per forward pass.
  int64_t WeightBytes() const;

 private:
  struct Quantized;  // int8 or int4 weights and their scales
  Linear(WeightFormat format, int64_t out, int64_t in) : format_(format), out_(out), in_(in) {}
  // Output rows [begin, end) for `batch` inputs: x as float32, xq the same rows quantized (int formats).
  void RunRows(const float* x, const kernels::QuantizedRows& xq, int64_t batch, int64_t begin, int64_t end,
               float* y, int64_t y_stride) const;
  // The kernel path for every layer of `layers` (one format), `rows` inputs in groups of kernels::kMaxBatch.
  static void RunKernels(std::span<const Linear* const> layers, const float* x, int64_t rows,
                         std::span<float* const> outputs);

  WeightFormat format_;
  int64_t out_ = 0;
  int64_t in_ = 0;
  const float* weight_f32_ = nullptr;
  std::shared_ptr<const Quantized> quantized_;  // shared so copies stay cheap
};

// The kernel table in use (kernels::Active(): TANDEM_KERNELS or the CPU's best); its name ("avx512",
// "avx2", "neon", "ref") is what logs, metrics and reports show. oneDNN's SGEMM is held to the same
// instruction set, so that TANDEM_KERNELS=avx2 on an AVX-512 machine runs what an AVX2 machine runs.
const kernels::Table& ActiveKernels();

}  // namespace tandem
