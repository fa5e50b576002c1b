// Compiled with AVX-512 flags (see common/CMakeLists.txt); called only after HaveAvx512Vnni().
#include "matvec_avx512.hpp"

#include <immintrin.h>

#include <algorithm>

namespace tandem::kernels {

bool HaveAvx512Vnni() {
  // Callers may run during static initialization, possibly before libgcc's own CPU probe.
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

namespace {
constexpr int64_t kRowsPerStep = 4;  // four independent rows keep four FMA chains in flight

inline __mmask16 TailMask16(int64_t left) { return static_cast<__mmask16>((1u << left) - 1u); }
inline __mmask64 TailMask64(int64_t left) {
  return left >= 64 ? ~__mmask64{0} : static_cast<__mmask64>((uint64_t{1} << left) - 1u);
}
}  // namespace

void MatVecFloat32(const float* w, const float* x, int64_t n, int64_t row_begin, int64_t row_end, float* y) {
  const int64_t body = n - n % 16;
  const __mmask16 tail = TailMask16(n - body);
  int64_t r = row_begin;
  for (; r + kRowsPerStep <= row_end; r += kRowsPerStep) {
    const float* w0 = w + r * n;
    __m512 acc0 = _mm512_setzero_ps(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int64_t i = 0; i < body; i += 16) {
      const __m512 xv = _mm512_loadu_ps(x + i);
      acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + i), xv, acc0);
      acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + n + i), xv, acc1);
      acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + 2 * n + i), xv, acc2);
      acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + 3 * n + i), xv, acc3);
    }
    if (tail) {
      const __m512 xv = _mm512_maskz_loadu_ps(tail, x + body);
      acc0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0 + body), xv, acc0);
      acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0 + n + body), xv, acc1);
      acc2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0 + 2 * n + body), xv, acc2);
      acc3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, w0 + 3 * n + body), xv, acc3);
    }
    y[r] = _mm512_reduce_add_ps(acc0);
    y[r + 1] = _mm512_reduce_add_ps(acc1);
    y[r + 2] = _mm512_reduce_add_ps(acc2);
    y[r + 3] = _mm512_reduce_add_ps(acc3);
  }
  for (; r < row_end; ++r) {
    const float* row = w + r * n;
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < body; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(x + i), acc);
    if (tail) acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, row + body), _mm512_maskz_loadu_ps(tail, x + body), acc);
    y[r] = _mm512_reduce_add_ps(acc);
  }
}

void MatVecInt8(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                float x_scale, int64_t n, int64_t row_begin, int64_t row_end, float* y) {
  auto finish = [&](int64_t row, __m512i acc) {
    const int32_t dot = _mm512_reduce_add_epi32(acc) - 128 * w_row_sum[row];
    y[row] = static_cast<float>(dot) * x_scale * w_scale[row];
  };
  int64_t r = row_begin;
  for (; r + kRowsPerStep <= row_end; r += kRowsPerStep) {
    const int8_t* w0 = w + r * n;
    __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, acc2 = acc0, acc3 = acc0;
    for (int64_t i = 0; i < n; i += 64) {
      const __mmask64 mask = TailMask64(n - i);
      const __m512i xv = _mm512_maskz_loadu_epi8(mask, x_biased + i);
      acc0 = _mm512_dpbusd_epi32(acc0, xv, _mm512_maskz_loadu_epi8(mask, w0 + i));
      acc1 = _mm512_dpbusd_epi32(acc1, xv, _mm512_maskz_loadu_epi8(mask, w0 + n + i));
      acc2 = _mm512_dpbusd_epi32(acc2, xv, _mm512_maskz_loadu_epi8(mask, w0 + 2 * n + i));
      acc3 = _mm512_dpbusd_epi32(acc3, xv, _mm512_maskz_loadu_epi8(mask, w0 + 3 * n + i));
    }
    finish(r, acc0);
    finish(r + 1, acc1);
    finish(r + 2, acc2);
    finish(r + 3, acc3);
  }
  for (; r < row_end; ++r) {
    __m512i acc = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; i += 64) {
      const __mmask64 mask = TailMask64(n - i);
      acc = _mm512_dpbusd_epi32(acc, _mm512_maskz_loadu_epi8(mask, x_biased + i),
                                _mm512_maskz_loadu_epi8(mask, w + r * n + i));
    }
    finish(r, acc);
  }
}

// Two weight rows per step: each x chunk loaded once serves both, and 2 x kBatch accumulators (at most 16)
// stay in registers (kBatch is a template argument so that the loops over it unroll). Per (row, input) the
// arithmetic is MatVecFloat32's, in its order.
template <int64_t kBatch>
void MatVecFloat32Rows(const float* w, const float* x, int64_t n, int64_t row_begin, int64_t row_end, float* y,
                       int64_t y_stride) {
  const int64_t body = n - n % 16;
  const __mmask16 tail = TailMask16(n - body);
  for (int64_t r = row_begin; r < row_end; r += 2) {
    const bool pair = r + 1 < row_end;
    const float* row0 = w + r * n;
    const float* row1 = pair ? row0 + n : row0;  // a lone last row is computed twice, stored once
    __m512 acc0[kBatch], acc1[kBatch];
    for (int64_t b = 0; b < kBatch; ++b) acc0[b] = acc1[b] = _mm512_setzero_ps();
    for (int64_t i = 0; i < body; i += 16) {
      const __m512 w0 = _mm512_loadu_ps(row0 + i), w1 = _mm512_loadu_ps(row1 + i);
      for (int64_t b = 0; b < kBatch; ++b) {
        const __m512 xv = _mm512_loadu_ps(x + b * n + i);
        acc0[b] = _mm512_fmadd_ps(w0, xv, acc0[b]);
        acc1[b] = _mm512_fmadd_ps(w1, xv, acc1[b]);
      }
    }
    if (tail) {
      const __m512 w0 = _mm512_maskz_loadu_ps(tail, row0 + body), w1 = _mm512_maskz_loadu_ps(tail, row1 + body);
      for (int64_t b = 0; b < kBatch; ++b) {
        const __m512 xv = _mm512_maskz_loadu_ps(tail, x + b * n + body);
        acc0[b] = _mm512_fmadd_ps(w0, xv, acc0[b]);
        acc1[b] = _mm512_fmadd_ps(w1, xv, acc1[b]);
      }
    }
    for (int64_t b = 0; b < kBatch; ++b) {
      y[b * y_stride + r] = _mm512_reduce_add_ps(acc0[b]);
      if (pair) y[b * y_stride + r + 1] = _mm512_reduce_add_ps(acc1[b]);
    }
  }
}

// As MatVecFloat32Rows; integer dot products are exact in any order.
template <int64_t kBatch>
void MatVecInt8Rows(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                    const float* x_scales, int64_t n, int64_t row_begin, int64_t row_end, float* y,
                    int64_t y_stride) {
  for (int64_t r = row_begin; r < row_end; r += 2) {
    const bool pair = r + 1 < row_end;
    const int8_t* row0 = w + r * n;
    const int8_t* row1 = pair ? row0 + n : row0;
    __m512i acc0[kBatch], acc1[kBatch];
    for (int64_t b = 0; b < kBatch; ++b) acc0[b] = acc1[b] = _mm512_setzero_si512();
    for (int64_t i = 0; i < n; i += 64) {
      const __mmask64 mask = TailMask64(n - i);
      const __m512i w0 = _mm512_maskz_loadu_epi8(mask, row0 + i), w1 = _mm512_maskz_loadu_epi8(mask, row1 + i);
      for (int64_t b = 0; b < kBatch; ++b) {
        const __m512i xv = _mm512_maskz_loadu_epi8(mask, x_biased + b * n + i);
        acc0[b] = _mm512_dpbusd_epi32(acc0[b], xv, w0);
        acc1[b] = _mm512_dpbusd_epi32(acc1[b], xv, w1);
      }
    }
    for (int64_t b = 0; b < kBatch; ++b) {
      const auto finish = [&](int64_t row, __m512i acc) {
        const int32_t dot = _mm512_reduce_add_epi32(acc) - 128 * w_row_sum[row];
        y[b * y_stride + row] = static_cast<float>(dot) * x_scales[b] * w_scale[row];
      };
      finish(r, acc0[b]);
      if (pair) finish(r + 1, acc1[b]);
    }
  }
}

// Calls kernel<B>(args...) for the runtime batch size B in [1, kMaxBatch].
template <template <int64_t> class Kernel, typename... Args>
void ForBatch(int64_t batch, Args... args) {
  switch (batch) {
    case 1: return Kernel<1>::Run(args...);
    case 2: return Kernel<2>::Run(args...);
    case 3: return Kernel<3>::Run(args...);
    case 4: return Kernel<4>::Run(args...);
    case 5: return Kernel<5>::Run(args...);
    case 6: return Kernel<6>::Run(args...);
    case 7: return Kernel<7>::Run(args...);
    default: return Kernel<8>::Run(args...);
  }
}
template <int64_t kBatch>
struct Float32Rows {
  static void Run(const float* w, const float* x, int64_t n, int64_t begin, int64_t end, float* y, int64_t ys) {
    MatVecFloat32Rows<kBatch>(w, x, n, begin, end, y, ys);
  }
};
template <int64_t kBatch>
struct Int8Rows {
  static void Run(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                  const float* x_scales, int64_t n, int64_t begin, int64_t end, float* y, int64_t ys) {
    MatVecInt8Rows<kBatch>(w, w_scale, w_row_sum, x_biased, x_scales, n, begin, end, y, ys);
  }
};

void MatVecFloat32Batch(const float* w, const float* x, int64_t batch, int64_t n, int64_t row_begin,
                        int64_t row_end, float* y, int64_t y_stride) {
  ForBatch<Float32Rows>(batch, w, x, n, row_begin, row_end, y, y_stride);
}

void MatVecInt8Batch(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                     const float* x_scales, int64_t batch, int64_t n, int64_t row_begin, int64_t row_end,
                     float* y, int64_t y_stride) {
  ForBatch<Int8Rows>(batch, w, w_scale, w_row_sum, x_biased, x_scales, n, row_begin, row_end, y, y_stride);
}

}  // namespace tandem::kernels
