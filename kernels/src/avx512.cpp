// The avx512 table: AVX-512 F/BW with VNNI. Compiled with those flags (kernels/CMakeLists.txt) and reached
// only through kAvx512Table after the CPU reported them (select.cpp).
#include <immintrin.h>

#include "tables.hpp"
#include "tiles.hpp"

namespace tandem::kernels {
namespace {

inline __mmask16 TailMask(int64_t left) {
  return static_cast<__mmask16>((1u << left) - 1u);
}

// The lane sums of four vectors at once, each paired exactly as _mm512_reduce_add_ps pairs them (lanes i
// and i + 8, then j and j + 4, then 0 and 2 with 1 and 3, then the two), so that a tile of four rows gives
// the bits of four single rows. Sixteen separate reductions were a fifth of a 768-wide tile's work.
inline __m128 ReduceAdd4(__m512 a, __m512 b, __m512 c, __m512 d) {
  const auto fold_halves = [](__m512 x, __m512 y) {  // [x lo + x hi | y lo + y hi], 8 lanes each
    return _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 2, 3, 2)));
  };
  const __m512 ab = fold_halves(a, b), cd = fold_halves(c, d);
  // [a, b, c, d], 4 lanes each: each 256-bit half's two 128-bit quarters added.
  const __m512 quarters = _mm512_add_ps(_mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                                        _mm512_shuffle_f32x4(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 pairs = _mm512_add_ps(quarters, _mm512_permute_ps(quarters, _MM_SHUFFLE(1, 0, 3, 2)));
  const __m512 sums = _mm512_add_ps(pairs, _mm512_permute_ps(pairs, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_castps512_ps128(
      _mm512_permutexvar_ps(_mm512_setr_epi32(0, 4, 8, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0), sums));
}

// The lane sums of a tile's accumulators, total[r][b], four rows at a time where the tile has them.
template <int64_t kW, int64_t kB>
void TileSums(const __m512 (&acc)[kW][kB], float (&total)[kW][kB]) {
  if constexpr (kW == 4) {
    for (int64_t b = 0; b < kB; ++b) {
      alignas(16) float sums[4];
      _mm_store_ps(sums, ReduceAdd4(acc[0][b], acc[1][b], acc[2][b], acc[3][b]));
      for (int64_t r = 0; r < kW; ++r) total[r][b] = sums[r];
    }
  } else {
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) total[r][b] = _mm512_reduce_add_ps(acc[r][b]);
  }
}

// Σ_g scales[g] · sums[g] over `groups` floats (the int4 kernels' 8 · Σ x term).
float GroupDot(const float* scales, const float* sums, int64_t groups) {
  __m512 acc = _mm512_setzero_ps();
  for (int64_t g = 0; g < groups; g += 16) {
    const __mmask16 mask = groups - g >= 16 ? __mmask16(0xFFFF) : TailMask(groups - g);
    acc =
        _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, scales + g), _mm512_maskz_loadu_ps(mask, sums + g), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

// The tiles (tiles.hpp): kRows weight rows × kInputs inputs, 16 accumulators of 32 registers.
struct Tiles {
  static constexpr int64_t kRows = 4, kInputs = 4;

  // Float32: kW weight rows × kB inputs of 16-wide FMAs; the rows are the checkpoint's, unpadded, so the
  // last partial vector is loaded under a mask.
  template <int64_t kW, int64_t kB>
  static void Float32(const float* w, const float* x, int64_t n, float* y, int64_t y_stride,
                      const float* next) {
    const int64_t body = n - n % 16;
    const __mmask16 tail = TailMask(n - body);
    __m512 acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_setzero_ps();
    const auto step = [&](int64_t i, auto load) {
      __m512 wv[kW], xv[kB];
      for (int64_t r = 0; r < kW; ++r) wv[r] = load(w + r * n + i);
      PrefetchNextRows<kW>(next, n, i);
      for (int64_t b = 0; b < kB; ++b) xv[b] = load(x + b * n + i);
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_fmadd_ps(wv[r], xv[b], acc[r][b]);
    };
    for (int64_t i = 0; i < body; i += 16) step(i, [](const float* p) { return _mm512_loadu_ps(p); });
    if (tail) step(body, [tail](const float* p) { return _mm512_maskz_loadu_ps(tail, p); });
    float total[kW][kB];
    TileSums(acc, total);
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) y[b * y_stride + r] = total[r][b];
  }

  // Int8: VNNI multiplies unsigned by signed bytes, so the inputs go in biased by 128 (x ^ 0x80 as a byte is
  // x + 128) and 128 · Σ w comes back out: the integer dot product is exact.
  template <int64_t kW, int64_t kB>
  static void Int8(const Int8Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n);
    const int8_t* wp = w.values + row * stride;
    const int8_t* xp = x.values + input * stride;
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    // A small tile alternates two sets of accumulators: one set is a chain of dependent VNNI adds, which
    // would bound a single row's decode. Integer sums are exact in any order, so this changes no bit.
    constexpr int64_t kChains = kW * kB <= 4 ? 2 : 1;
    __m512i acc[kChains][kW][kB];
    for (int64_t c = 0; c < kChains; ++c)
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) acc[c][r][b] = _mm512_setzero_si512();
    for (int64_t i = 0; i < stride; i += 64) {
      auto& chain = acc[(i / 64) % kChains];
      __m512i wv[kW], xv[kB];
      for (int64_t r = 0; r < kW; ++r) wv[r] = _mm512_loadu_si512(wp + r * stride + i);
      for (int64_t b = 0; b < kB; ++b)
        xv[b] = _mm512_xor_si512(_mm512_loadu_si512(xp + b * stride + i), bias);
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) chain[r][b] = _mm512_dpbusd_epi32(chain[r][b], xv[b], wv[r]);
    }
    for (int64_t c = 1; c < kChains; ++c)
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) acc[0][r][b] = _mm512_add_epi32(acc[0][r][b], acc[c][r][b]);
    for (int64_t r = 0; r < kW; ++r) {
      for (int64_t b = 0; b < kB; ++b) {
        const int32_t dot = _mm512_reduce_add_epi32(acc[0][r][b]) - 128 * w.row_sums[row + r];
        y[b * y_stride + r] = Int8Output(dot, x, input + b, w, row + r);
      }
    }
  }

  // Int4: 32 packed bytes are two groups; their nibbles (q + 8, unsigned) multiply the signed inputs in one
  // VNNI instruction, lanes 0–7 summing group g and 8–15 group g + 1, and each lane's integer sum is scaled
  // by its group's scale in float. 8 · Σ_g scale · Σ x is taken out at the end.
  template <int64_t kW, int64_t kB>
  static void Int4(const Int4Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n), row_bytes = Int4RowBytes(w.n), groups = Groups(w.n);
    const int8_t* xp = x.values + input * stride;
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    __m512 acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_setzero_ps();
    for (int64_t i = 0, g = 0; i < stride; i += 64, g += 2) {
      __m512i wv[kW];
      __m512 sv[kW];
      for (int64_t r = 0; r < kW; ++r) {
        const __m256i packed =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.packed + (row + r) * row_bytes + i / 2));
        // Low nibbles are group g, high nibbles group g + 1: the inputs' order once side by side.
        wv[r] = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(packed, low_nibbles)),
                                   _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles), 1);
        const float* scale = w.scales + (row + r) * groups + g;
        sv[r] = _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castps_pd(_mm512_set1_ps(scale[0])),
                                                    _mm256_castps_pd(_mm256_set1_ps(scale[1])), 1));
      }
      for (int64_t b = 0; b < kB; ++b) {
        const __m512i xv = _mm512_loadu_si512(xp + b * stride + i);
        for (int64_t r = 0; r < kW; ++r) {
          const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wv[r], xv);
          acc[r][b] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums), sv[r], acc[r][b]);
        }
      }
    }
    float total[kW][kB];
    TileSums(acc, total);
    for (int64_t r = 0; r < kW; ++r) {
      for (int64_t b = 0; b < kB; ++b) {
        const float offset =
            8.0f * GroupDot(w.scales + (row + r) * groups, x.group_sums + (input + b) * groups, groups);
        y[b * y_stride + r] = (total[r][b] - offset) * x.scales[input + b];
      }
    }
  }
};

// QuantizeActivations in 16 lanes: the same absmax (max is exact in any order), the same x · (1 / scale)
// rounded to nearest even (vcvtps2dq under the default rounding mode, as nearbyint).
void QuantizeRows(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales, float* group_sums) {
  const int64_t stride = PaddedLength(n), groups = Groups(n);
  const auto load = [n](const float* row, int64_t i) {
    return i + 16 <= n ? _mm512_loadu_ps(row + i)
                       : _mm512_maskz_loadu_ps(i < n ? TailMask(n - i) : 0, row + i);
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * n;
    __m512 absmax = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) absmax = _mm512_max_ps(absmax, _mm512_abs_ps(load(row, i)));
    const float scale = _mm512_reduce_max_ps(absmax) / 127.0f;
    const __m512 inverse = _mm512_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
    int8_t* out = values + r * stride;
    for (int64_t i = 0; i < stride; i += kGroup) {
      const __m512i low = _mm512_cvtps_epi32(_mm512_mul_ps(load(row, i), inverse));
      const __m512i high = _mm512_cvtps_epi32(_mm512_mul_ps(load(row, i + 16), inverse));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(low));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i + 16), _mm512_cvtepi32_epi8(high));
      group_sums[r * groups + i / kGroup] =
          static_cast<float>(_mm512_reduce_add_epi32(_mm512_add_epi32(low, high)));
    }
    scales[r] = scale;
  }
}

float Dot(const float* a, const float* b, int64_t n) {
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
  if (i < n) {
    const __mmask16 tail = TailMask(n - i);
    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i), _mm512_maskz_loadu_ps(tail, b + i), acc);
  }
  return _mm512_reduce_add_ps(acc);
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm512_storeu_ps(y + i, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
  }
  if (i < n) {
    const __mmask16 tail = TailMask(n - i);
    _mm512_mask_storeu_ps(
        y + i, tail,
        _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(tail, x + i), _mm512_maskz_loadu_ps(tail, y + i)));
  }
}

}  // namespace

constinit const Table kAvx512Table = {
    .name = "avx512",
    .matvec_f32 = MatVecFloat32<Tiles>,
    .matvec_i8 = MatVecInt8<Tiles>,
    .matvec_i4 = MatVecInt4<Tiles>,
    .quantize_rows = QuantizeRows,
    .dot = Dot,
    .axpy = Axpy,
    .rms_norm = ref::RmsNorm,
    .swiglu = ref::SwiGlu,
    .softmax = ref::Softmax,
    .rotate = ref::Rotate,
};

}  // namespace tandem::kernels
