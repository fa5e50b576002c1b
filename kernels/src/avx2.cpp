// The avx2 table: AVX2 with FMA (the laptops' and AVX2-only servers' set). Compiled with those flags
// (kernels/CMakeLists.txt) and reached only through kAvx2Table after the CPU reported them (select.cpp).
#include "x86_intrinsics.hpp"

#include <algorithm>

#include "tables.hpp"
#include "tiles.hpp"

// glibc's vector expf (libmvec, by the x86-64 vector function ABI: 8 lanes in ymm0), at most 1 ulp off.
extern "C" __m256 _ZGVdN8v_expf(__m256 x);

namespace tandem::kernels {
namespace {

inline float HorizontalSum(__m256 v) {
  __m128 sum = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  sum = _mm_add_ps(sum, _mm_movehl_ps(sum, sum));
  sum = _mm_add_ss(sum, _mm_movehdup_ps(sum));
  return _mm_cvtss_f32(sum);
}

inline int32_t HorizontalSum(__m256i v) {
  __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(1, 0, 3, 2)));
  sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(sum);
}

// Lanes [0, left) set, for _mm256_maskload_ps.
inline __m256i TailMask(int64_t left) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(left)),
                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The tiles (tiles.hpp): kRows weight rows × kInputs inputs, 12 accumulators of 16 registers (3 × 4 ran
// batches of 16 float32 rows at 1.2–1.5× the rate of 4 × 2 on AMD EPYC).
struct Tiles {
  static constexpr int64_t kRows = 3, kInputs = 4;
  static constexpr int64_t kInt4Rows = 2, kInt4Inputs = 4;

  // Float32: kW weight rows × kB inputs of 8-wide FMAs (16 registers: 8 accumulators, 4 weight rows, inputs).
  template <int64_t kW, int64_t kB>
  static void Float32(const float* w, const float* x, int64_t n, float* y, int64_t y_stride,
                      const float* next) {
    const int64_t body = n - n % 8;
    __m256 acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm256_setzero_ps();
    const auto step = [&](int64_t i, auto load) {
      __m256 wv[kW];
      for (int64_t r = 0; r < kW; ++r) wv[r] = load(w + r * n + i);
      PrefetchNextRows<kW>(next, n, i);
      for (int64_t b = 0; b < kB; ++b) {
        const __m256 xv = load(x + b * n + i);
        for (int64_t r = 0; r < kW; ++r) acc[r][b] = _mm256_fmadd_ps(wv[r], xv, acc[r][b]);
      }
    };
    for (int64_t i = 0; i < body; i += 8) step(i, [](const float* p) { return _mm256_loadu_ps(p); });
    if (body < n) {
      const __m256i tail = TailMask(n - body);
      step(body, [tail](const float* p) { return _mm256_maskload_ps(p, tail); });
    }
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) y[b * y_stride + r] = HorizontalSum(acc[r][b]);
  }

  // Int8 without VNNI: vpmaddubsw multiplies unsigned by signed bytes and adds pairs into 16 bits with
  // saturation. With |w| as the unsigned side and x · sign(w) as the signed one, a pair sums to at most
  // 2 · 127 · 127 = 32258 < 32767 (quantization never produces -128), so nothing saturates and the integer
  // dot product is exact; vpmaddwd then widens the pairs to 32 bits.
  template <int64_t kW, int64_t kB>
  static void Int8(const Int8Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n);
    const int8_t* wp = w.values + row * stride;
    const int8_t* xp = x.values + input * stride;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm256_setzero_si256();
    for (int64_t i = 0; i < stride; i += 32) {
      __m256i xv[kB];
      for (int64_t b = 0; b < kB; ++b)
        xv[b] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xp + b * stride + i));
      for (int64_t r = 0; r < kW; ++r) {
        const __m256i wv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + r * stride + i));
        const __m256i magnitude = _mm256_sign_epi8(wv, wv);
        for (int64_t b = 0; b < kB; ++b) {
          const __m256i pairs = _mm256_maddubs_epi16(magnitude, _mm256_sign_epi8(xv[b], wv));
          acc[r][b] = _mm256_add_epi32(acc[r][b], _mm256_madd_epi16(pairs, ones));
        }
      }
    }
    for (int64_t r = 0; r < kW; ++r) {
      for (int64_t b = 0; b < kB; ++b) {
        const int32_t dot = HorizontalSum(acc[r][b]);
        y[b * y_stride + r] = Int8Output(dot, x, input + b, w, row + r);
      }
    }
  }

  // Int4, in int4 order (kernels.hpp), one half of a superblock (8 groups, 32 bytes of each line pair) at a
  // time: the nibbles (q + 8 <= 15) times the signed inputs sum in pairs to at most 2 · 15 · 127 = 3810
  // (vpmaddubsw cannot saturate), and the eight lines of a half add up in 16 bits to at most 30480, still
  // exact; vpmaddwd then gives group j its 32-bit lane j, which less 8 · Σ x of the group is scaled in
  // float once per 256 values. Tiles of 2 × 4 (of 2 × 2, 2 × 3, 3 × 2, 3 × 3, 3 × 4 and 4 × 3 the fastest
  // at a 128-row prefill on AMD EPYC; 2 × 4 with the nibbles held per row ran at 2.2× 2 × 2 with both rows'
  // nibbles held, which spilled the sums).
  template <int64_t kW, int64_t kB>
  static void Int4(const Int4Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n), row_bytes = Int4RowBytes(w.n), groups = Groups(w.n);
    const int8_t* xp = x.values + input * stride;
    const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = _mm256_setzero_ps();
    // Half `half` of the superblock at group `first`, of `width` groups; `whole`: all 8 groups of the half
    // there (plain loads).
    const auto run_half = [&](int64_t first, int64_t width, int64_t half, auto whole) {
      const int64_t line = 4 * width;
      const __m256i lanes = TailMask(width - half * 8);  // unused when whole
      const auto load = [&](const void* p) {
        if constexpr (whole) return _mm256_loadu_si256(static_cast<const __m256i*>(p));
        return _mm256_maskload_epi32(static_cast<const int*>(p), lanes);
      };
      const auto load_floats = [&](const float* p) {
        if constexpr (whole) return _mm256_loadu_ps(p);
        return _mm256_maskload_ps(p, lanes);
      };
      const uint8_t* wp = w.packed + row * row_bytes + first * kGroup / 2 + half * 32;
      const int8_t* xs = xp + first * kGroup + half * 32;
      __m256i sums[kW][kB];
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) sums[r][b] = _mm256_setzero_si256();
      // One row's nibbles at a time, the inputs read again for each row (from L1, as memory operands):
      // the sums then take all but three registers.
      for (int64_t pair = 0; pair < kGroup / 8; ++pair) {
        for (int64_t r = 0; r < kW; ++r) {
          const __m256i packed = load(wp + r * row_bytes + pair * line);
          const __m256i low = _mm256_and_si256(packed, low_nibbles);
          const __m256i high = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low_nibbles);
          for (int64_t b = 0; b < kB; ++b) {
            const __m256i products =
                _mm256_add_epi16(_mm256_maddubs_epi16(low, load(xs + b * stride + 2 * pair * line)),
                                 _mm256_maddubs_epi16(high, load(xs + b * stride + (2 * pair + 1) * line)));
            sums[r][b] = _mm256_add_epi16(sums[r][b], products);
          }
        }
      }
      const int64_t group = first + half * 8;
      __m256 offsets[kB];  // 8 · Σ x of each group
      for (int64_t b = 0; b < kB; ++b)
        offsets[b] =
            _mm256_mul_ps(_mm256_set1_ps(8.0f), load_floats(x.group_sums + (input + b) * groups + group));
      for (int64_t r = 0; r < kW; ++r) {
        const __m256 scale = load_floats(w.scales + (row + r) * groups + group);
        for (int64_t b = 0; b < kB; ++b) {
          const __m256 group_sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(sums[r][b], ones));
          acc[r][b] = _mm256_fmadd_ps(_mm256_sub_ps(group_sums, offsets[b]), scale, acc[r][b]);
        }
      }
    };
    for (int64_t first = 0; first < groups; first += kInt4Superblock) {
      const int64_t width = Int4SuperblockGroups(w.n, first);
      for (int64_t half = 0; half * 8 < width; ++half) {
        if (width - half * 8 >= 8) {
          run_half(first, width, half, std::true_type{});
        } else {
          run_half(first, width, half, std::false_type{});
        }
      }
    }
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) y[b * y_stride + r] = HorizontalSum(acc[r][b]) * x.scales[input + b];
  }
};

// QuantizeActivations in 8 lanes: the same absmax (max is exact in any order), the same x · (1 / scale)
// rounded to nearest even (vcvtps2dq under the default rounding mode, as nearbyint).
void QuantizeRows(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales, float* group_sums) {
  const int64_t stride = PaddedLength(n), groups = Groups(n);
  const __m256 magnitude = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const auto load = [n](const float* row, int64_t i) {
    if (i + 8 <= n) return _mm256_loadu_ps(row + i);
    return i < n ? _mm256_maskload_ps(row + i, TailMask(n - i)) : _mm256_setzero_ps();
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * n;
    __m256 absmax = _mm256_setzero_ps();
    for (int64_t i = 0; i < n; i += 8) absmax = _mm256_max_ps(absmax, _mm256_and_ps(load(row, i), magnitude));
    __m128 max4 = _mm_max_ps(_mm256_castps256_ps128(absmax), _mm256_extractf128_ps(absmax, 1));
    max4 = _mm_max_ps(max4, _mm_movehl_ps(max4, max4));
    max4 = _mm_max_ss(max4, _mm_movehdup_ps(max4));
    const float scale = _mm_cvtss_f32(max4) / 127.0f;
    const __m256 inverse = _mm256_set1_ps(scale > 0.0f ? 1.0f / scale : 0.0f);
    int8_t* out = values + r * stride;
    for (int64_t i = 0; i < stride; i += kGroup) {
      __m256i q[4];
      for (int64_t k = 0; k < 4; ++k) q[k] = _mm256_cvtps_epi32(_mm256_mul_ps(load(row, i + 8 * k), inverse));
      // Packing works within 128-bit lanes: the permutation puts the four quarters back in order.
      const __m256i bytes =
          _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i),
                          _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
      const __m256i sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      group_sums[r * groups + i / kGroup] = static_cast<float>(HorizontalSum(sum));
    }
    scales[r] = scale;
  }
}

float Dot(const float* a, const float* b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = acc0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i < n; i += 8) {
    const __m256i tail = TailMask(n - i);
    acc0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + i, tail), _mm256_maskload_ps(b + i, tail), acc0);
  }
  return HorizontalSum(_mm256_add_ps(acc0, acc1));
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  const __m256 av = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  if (i < n) {
    const __m256i tail = TailMask(n - i);
    _mm256_maskstore_ps(
        y + i, tail, _mm256_fmadd_ps(av, _mm256_maskload_ps(x + i, tail), _mm256_maskload_ps(y + i, tail)));
  }
}

// ref::SwiGlu's arithmetic, 8 lanes at a time, the last ones under a mask: a value's bits must not depend
// on where it sits (a batch's rows are one run of values; one session's row alone is another).
void SwiGlu(float* gate, const float* up, int64_t n) {
  const __m256 one = _mm256_set1_ps(1.0f);
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i lanes = TailMask(n - i);
    const __m256 g = _mm256_maskload_ps(gate + i, lanes);
    const __m256 silu =
        _mm256_div_ps(g, _mm256_add_ps(one, _ZGVdN8v_expf(_mm256_sub_ps(_mm256_setzero_ps(), g))));
    _mm256_maskstore_ps(gate + i, lanes, _mm256_mul_ps(silu, _mm256_maskload_ps(up + i, lanes)));
  }
}

// ref::Softmax's arithmetic, 8 lanes at a time, the last ones under a mask (the sum in another order).
void Softmax(float* values, int64_t n) {
  const __m256 max_value = _mm256_set1_ps(*std::max_element(values, values + n));
  __m256 total = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i lanes = TailMask(n - i);
    const __m256 e = _ZGVdN8v_expf(_mm256_sub_ps(_mm256_maskload_ps(values + i, lanes), max_value));
    _mm256_maskstore_ps(values + i, lanes, e);
    // Lanes past n hold exp(-max): left out of the sum.
    total = _mm256_add_ps(total, _mm256_and_ps(e, _mm256_castsi256_ps(lanes)));
  }
  const __m256 sum = _mm256_set1_ps(HorizontalSum(total));
  for (int64_t i = 0; i < n; i += 8) {
    const __m256i lanes = TailMask(n - i);
    _mm256_maskstore_ps(values + i, lanes, _mm256_div_ps(_mm256_maskload_ps(values + i, lanes), sum));
  }
}

}  // namespace

constinit const Table kAvx2Table = {
    .name = "avx2",
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
