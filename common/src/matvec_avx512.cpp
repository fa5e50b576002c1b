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

// Batched kernels: a tile of kW weight rows × kB input rows keeps kW·kB accumulators in registers (kW + kB
// loads feed kW·kB FMAs). The tile's weight rows come from memory for the first group of inputs and from L1
// for the others, so the weights are read once per call whatever the batch. Per (weight row, input row) the
// arithmetic is MatVecFloat32's / MatVecInt8's, in the same order.
constexpr int64_t kTileRows = 4, kTileInputs = 4;

template <int64_t kW, int64_t kB>
void Float32Tile(const float* w, const float* x, int64_t n, float* y, int64_t y_stride) {
  const int64_t body = n - n % 16;
  const __mmask16 tail = TailMask16(n - body);
  __m512 acc[kW][kB];
  for (int64_t r = 0; r < kW; ++r)
    for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_setzero_ps();
  const auto step = [&](int64_t i, auto load) {
    __m512 wv[kW], xv[kB];
    for (int64_t r = 0; r < kW; ++r) wv[r] = load(w + r * n + i);
    for (int64_t b = 0; b < kB; ++b) xv[b] = load(x + b * n + i);
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_fmadd_ps(wv[r], xv[b], acc[r][b]);
  };
  for (int64_t i = 0; i < body; i += 16) step(i, [](const float* p) { return _mm512_loadu_ps(p); });
  if (tail) step(body, [tail](const float* p) { return _mm512_maskz_loadu_ps(tail, p); });
  for (int64_t r = 0; r < kW; ++r)
    for (int64_t b = 0; b < kB; ++b) y[b * y_stride + r] = _mm512_reduce_add_ps(acc[r][b]);
}

template <int64_t kW, int64_t kB>
void Int8Tile(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
              const float* x_scales, int64_t n, float* y, int64_t y_stride) {
  __m512i acc[kW][kB];
  for (int64_t r = 0; r < kW; ++r)
    for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_setzero_si512();
  for (int64_t i = 0; i < n; i += 64) {
    const __mmask64 mask = TailMask64(n - i);
    __m512i wv[kW], xv[kB];
    for (int64_t r = 0; r < kW; ++r) wv[r] = _mm512_maskz_loadu_epi8(mask, w + r * n + i);
    for (int64_t b = 0; b < kB; ++b) xv[b] = _mm512_maskz_loadu_epi8(mask, x_biased + b * n + i);
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], xv[b], wv[r]);
  }
  for (int64_t r = 0; r < kW; ++r) {
    for (int64_t b = 0; b < kB; ++b) {
      const int32_t dot = _mm512_reduce_add_epi32(acc[r][b]) - 128 * w_row_sum[r];
      y[b * y_stride + r] = static_cast<float>(dot) * x_scales[b] * w_scale[r];
    }
  }
}

// Calls f.operator()<K>() for the runtime k in [1, kMax]; nothing for 0.
template <int64_t kMax, typename F>
void WithConstant(int64_t k, const F& f) {
  if constexpr (kMax > 0) {
    if (k == kMax) return f.template operator()<kMax>();
    WithConstant<kMax - 1>(k, f);
  }
}

// Runs tile.operator()<kW, kB>(row, input) over rows [row_begin, row_end) × inputs [0, batch): full tiles,
// then narrower ones at the edges (each size a template instance, so that the loops over it unroll).
template <typename Tile>
void ForEachTile(int64_t batch, int64_t row_begin, int64_t row_end, const Tile& tile) {
  const auto inputs = [&]<int64_t kW>(int64_t row) {
    int64_t b = 0;
    for (; b + kTileInputs <= batch; b += kTileInputs) tile.template operator()<kW, kTileInputs>(row, b);
    WithConstant<kTileInputs - 1>(batch - b, [&]<int64_t kB>() { tile.template operator()<kW, kB>(row, b); });
  };
  int64_t r = row_begin;
  for (; r + kTileRows <= row_end; r += kTileRows) inputs.template operator()<kTileRows>(r);
  WithConstant<kTileRows - 1>(row_end - r, [&]<int64_t kW>() { inputs.template operator()<kW>(r); });
}

void MatVecFloat32Batch(const float* w, const float* x, int64_t batch, int64_t n, int64_t row_begin,
                        int64_t row_end, float* y, int64_t y_stride) {
  ForEachTile(batch, row_begin, row_end, [&]<int64_t kW, int64_t kB>(int64_t row, int64_t input) {
    Float32Tile<kW, kB>(w + row * n, x + input * n, n, y + input * y_stride + row, y_stride);
  });
}

void MatVecInt8Batch(const int8_t* w, const float* w_scale, const int32_t* w_row_sum, const uint8_t* x_biased,
                     const float* x_scales, int64_t batch, int64_t n, int64_t row_begin, int64_t row_end,
                     float* y, int64_t y_stride) {
  ForEachTile(batch, row_begin, row_end, [&]<int64_t kW, int64_t kB>(int64_t row, int64_t input) {
    Int8Tile<kW, kB>(w + row * n, w_scale + row, w_row_sum + row, x_biased + input * n, x_scales + input, n,
                     y + input * y_stride + row, y_stride);
  });
}

}  // namespace tandem::kernels
