// The avx512 table: AVX-512 F/BW/VL with VNNI. Compiled with those flags (kernels/CMakeLists.txt) and reached
// only through kAvx512Table after the CPU reported them (select.cpp).
#include "x86_intrinsics.hpp"

#include <algorithm>

#include "tables.hpp"
#include "tiles.hpp"

// glibc's vector expf (libmvec, by the x86-64 vector function ABI: 16 lanes in zmm0), at most 1 ulp off.
extern "C" __m512 _ZGVeN16v_expf(__m512 x);

namespace tandem::kernels {
namespace {

// Lanes [0, left) set (all 16 for left >= 16), as avx2.cpp's TailMask.
inline __mmask16 TailMask(int64_t left) {
  return left >= 16 ? __mmask16{0xFFFF} : static_cast<__mmask16>((1u << left) - 1u);
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

// The tiles (tiles.hpp): kRows weight rows × kInputs inputs, 16 accumulators of 32 registers.
struct Tiles {
  static constexpr int64_t kRows = 4, kInputs = 4;
  static constexpr int64_t kInt4Rows = 4, kInt4Inputs = 4;

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

  // One weight row by one input (decode of one session) on 256-bit VNNI, two chains: on AMD Zen 4 decode
  // (110M shape, all blocks int8) ran at 1.10-1.17x the speed of the 512-bit form (235 against 213 tok/s,
  // medians of 8 interleaved runs), which that core splits in two. Returns Σ w · (x + 128).
  static int32_t Int8SingleDot(const int8_t* wp, const int8_t* xp, int64_t stride) {
    const __m256i bias = _mm256_set1_epi8(static_cast<char>(0x80));
    const auto load = [](const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); };
    __m256i even = _mm256_setzero_si256(), odd = even;
    for (int64_t i = 0; i < stride; i += 64) {
      even = _mm256_dpbusd_epi32(even, _mm256_xor_si256(load(xp + i), bias), load(wp + i));
      odd = _mm256_dpbusd_epi32(odd, _mm256_xor_si256(load(xp + i + 32), bias), load(wp + i + 32));
    }
    const __m256i sums = _mm256_add_epi32(even, odd);
    return _mm512_reduce_add_epi32(_mm512_zextsi256_si512(sums));
  }

  // Int8: VNNI multiplies unsigned by signed bytes, so the inputs go in biased by 128 (x ^ 0x80 as a byte is
  // x + 128) and 128 · Σ w comes back out: the integer dot product is exact.
  template <int64_t kW, int64_t kB>
  static void Int8(const Int8Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n);
    const int8_t* wp = w.values + row * stride;
    const int8_t* xp = x.values + input * stride;
    if constexpr (kW == 1 && kB == 1) {
      y[0] = Int8Output(Int8SingleDot(wp, xp, stride) - 128 * w.row_sums[row], x, input, w, row);
      return;
    }
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

  // Int4, in int4 order (kernels.hpp): a superblock's line pair is one 64-byte load (16 groups × 4 bytes)
  // whose low and high nibbles (q + 8, unsigned) are lines 2p and 2p + 1. Their VNNI products with the
  // signed inputs add up in 32-bit lane j, group j's, over all eight lines; then each lane, less 8 · Σ x of
  // its group, is scaled by its group's scale in float: once per 512 values.
  template <int64_t kW, int64_t kB>
  static void Int4(const Int4Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n), row_bytes = Int4RowBytes(w.n), groups = Groups(w.n);
    const int8_t* xp = x.values + input * stride;
    const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
    __m512 acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm512_setzero_ps();
    for (int64_t first = 0; first < groups; first += kInt4Superblock) {
      const int64_t width = Int4SuperblockGroups(w.n, first), line = 4 * width;
      const uint8_t* wp = w.packed + row * row_bytes + first * kGroup / 2;
      const int8_t* xs = xp + first * kGroup;
      // A lone row and input (decode) sums its low and high nibbles' products in two registers: one
      // chain of eight dependent VNNI adds per superblock would bound decode (as Int8's kChains).
      constexpr bool kTwoChains = kW * kB == 1;
      __m512i sums[kW][kB], high_sums[kW][kB];
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) sums[r][b] = high_sums[r][b] = _mm512_setzero_si512();
      // Adds `steps` loads of each weight row, weights(r, step) (64 packed bytes), times the inputs their
      // low and high nibbles meet, inputs(b, step, 0) and inputs(b, step, 1).
      const auto accumulate = [&](int64_t steps, const auto& weights, const auto& inputs) {
        for (int64_t step = 0; step < steps; ++step) {
          __m512i x_low[kB], x_high[kB];
          for (int64_t b = 0; b < kB; ++b) {
            x_low[b] = inputs(b, step, 0);
            x_high[b] = inputs(b, step, 1);
          }
          for (int64_t r = 0; r < kW; ++r) {
            const __m512i packed = weights(r, step);
            const __m512i low = _mm512_and_si512(packed, low_nibbles);
            const __m512i high = _mm512_and_si512(_mm512_srli_epi16(packed, 4), low_nibbles);
            for (int64_t b = 0; b < kB; ++b) {
              sums[r][b] = _mm512_dpbusd_epi32(sums[r][b], low, x_low[b]);
              __m512i& high_chain = kTwoChains ? high_sums[r][b] : sums[r][b];
              high_chain = _mm512_dpbusd_epi32(high_chain, high, x_high[b]);
            }
          }
        }
      };
      // Then lane j, less 8 · Σ x of its group where `offset_lanes` has j, times scale_of(r)'s lane j.
      const auto scale_lanes = [&](const auto& scale_of, __mmask16 offset_lanes) {
        __m512 offsets[kB];
        for (int64_t b = 0; b < kB; ++b) {
          offsets[b] =
              _mm512_mul_ps(_mm512_set1_ps(8.0f),
                            _mm512_maskz_loadu_ps(offset_lanes, x.group_sums + (input + b) * groups + first));
        }
        for (int64_t r = 0; r < kW; ++r) {
          const __m512 scale = scale_of(w.scales + (row + r) * groups + first);
          for (int64_t b = 0; b < kB; ++b) {
            if constexpr (kTwoChains) sums[r][b] = _mm512_add_epi32(sums[r][b], high_sums[r][b]);
            acc[r][b] =
                _mm512_fmadd_ps(_mm512_sub_ps(_mm512_cvtepi32_ps(sums[r][b]), offsets[b]), scale, acc[r][b]);
          }
        }
      };
      if (width == kInt4Superblock / 2) {
        // Eight groups (a 768-wide row's last): lines of 32 bytes, so one load takes two line pairs, lines
        // 4s..4s + 3, whose low nibbles are lines 4s and 4s + 2 and high ones 4s + 1 and 4s + 3. Lanes j and
        // 8 + j are then both group j's: full registers rather than half-empty ones.
        accumulate(
            2,
            [&](int64_t r, int64_t step) { return _mm512_loadu_si512(wp + r * row_bytes + step * 2 * line); },
            [&](int64_t b, int64_t step, int64_t nibble) {
              const int8_t* p = xs + b * stride + (4 * step + nibble) * line;
              return _mm512_inserti64x4(
                  _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 2 * line)), 1);
            });
        scale_lanes(
            [](const float* scales) {  // the 8 scales twice
              return _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(scales))));
            },
            TailMask(8));
      } else {
        const __mmask64 bytes = width == kInt4Superblock ? ~__mmask64{0} : (__mmask64{1} << line) - 1;
        accumulate(
            kGroup / 8,
            [&](int64_t r, int64_t pair) {
              return _mm512_maskz_loadu_epi8(bytes, wp + r * row_bytes + pair * line);
            },
            [&](int64_t b, int64_t pair, int64_t nibble) {
              return _mm512_maskz_loadu_epi8(bytes, xs + b * stride + (2 * pair + nibble) * line);
            });
        const __mmask16 lanes = TailMask(width);
        scale_lanes([lanes](const float* scales) { return _mm512_maskz_loadu_ps(lanes, scales); }, lanes);
      }
    }
    float total[kW][kB];
    TileSums(acc, total);
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) y[b * y_stride + r] = total[r][b] * x.scales[input + b];
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

// ref::SwiGlu's arithmetic, 16 lanes at a time, the last ones under a mask (as in avx2.cpp: a value's bits
// must not depend on where it sits).
void SwiGlu(float* gate, const float* up, int64_t n) {
  const __m512 one = _mm512_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = TailMask(n - i);
    const __m512 g = _mm512_maskz_loadu_ps(lanes, gate + i);
    const __m512 silu =
        _mm512_div_ps(g, _mm512_add_ps(one, _ZGVeN16v_expf(_mm512_sub_ps(_mm512_setzero_ps(), g))));
    _mm512_mask_storeu_ps(gate + i, lanes, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(lanes, up + i)));
  }
}

// ref::Softmax's arithmetic, 16 lanes at a time (the sum in another order).
void Softmax(float* values, int64_t n) {
  const __m512 max_value = _mm512_set1_ps(*std::max_element(values, values + n));
  __m512 total = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = TailMask(n - i);
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_maskz_loadu_ps(lanes, values + i), max_value));
    _mm512_mask_storeu_ps(values + i, lanes, e);
    total = _mm512_mask_add_ps(total, lanes, total, e);
  }
  const __m512 sum = _mm512_set1_ps(_mm512_reduce_add_ps(total));
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 lanes = TailMask(n - i);
    _mm512_mask_storeu_ps(values + i, lanes, _mm512_div_ps(_mm512_maskz_loadu_ps(lanes, values + i), sum));
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
    .swiglu = SwiGlu,
    .softmax = Softmax,
    .rotate = ref::Rotate,
};

}  // namespace tandem::kernels
