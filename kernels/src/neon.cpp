// The neon table: ARM64's Advanced SIMD, which every AArch64 CPU has. Integer products widen s8 × s8 to
// 16 bits (|q| <= 127, so one product fits and vpadal sums pairs into 32 bits): exact, like the others.
// Compiled a second time with ARMv8.2's dot product (neon_dotprod.cpp) as the neon_dotprod table, whose
// sdot adds four byte products straight into a 32-bit lane: the same integers in fewer instructions.
#include <arm_neon.h>

#include "tables.hpp"
#include "tiles.hpp"

namespace tandem::kernels {
namespace {

#if defined(__ARM_FEATURE_DOTPROD)
#define TANDEM_NEON_TABLE kNeonDotprodTable
#define TANDEM_NEON_NAME "neon_dotprod"

// Σ of 16 byte products into four 32-bit lanes.
inline int32x4_t DotBytes(int32x4_t acc, int8x16_t a, int8x16_t b) {
  return vdotq_s32(acc, a, b);
}

// The 32-bit sums of a quad of int4 lines (4 groups × 4 bytes): sdot adds each group's four products
// straight into its lane.
struct QuadSums {
  int32x4_t lanes = vdupq_n_s32(0);
  void Add(int8x16_t a, int8x16_t b) { lanes = vdotq_s32(lanes, a, b); }
  int32x4_t Lanes() const { return lanes; }
};
#else
#define TANDEM_NEON_TABLE kNeonTable
#define TANDEM_NEON_NAME "neon"

// Σ of 16 byte products into four 32-bit lanes.
inline int32x4_t DotBytes(int32x4_t acc, int8x16_t a, int8x16_t b) {
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_high_s8(a, b));
}

// The 32-bit sums of a quad of int4 lines (4 groups × 4 bytes): the products (at most 8 · 127) add up over
// a superblock's eight lines in 16 bits (at most 8128, exact), and two pairwise widenings give group j its
// lane j at the end.
struct QuadSums {
  int16x8_t low = vdupq_n_s16(0), high = vdupq_n_s16(0);  // bytes 0–7 (groups 0, 1) and 8–15 (2, 3)
  void Add(int8x16_t a, int8x16_t b) {
    low = vmlal_s8(low, vget_low_s8(a), vget_low_s8(b));
    high = vmlal_high_s8(high, a, b);
  }
  int32x4_t Lanes() const { return vpaddq_s32(vpaddlq_s16(low), vpaddlq_s16(high)); }
};
#endif

// The tiles (tiles.hpp): kRows weight rows × kInputs inputs, 16 accumulators of 32 registers.
struct Tiles {
  static constexpr int64_t kRows = 4, kInputs = 4;
  static constexpr int64_t kInt4Rows = 2, kInt4Inputs = 2;

  // Float32: kW weight rows × kB inputs of 4-wide FMAs (32 registers: 16 accumulators, 4 + 4 operands); the
  // unpadded rows' last n % 4 values run scalar, in lane 0.
  template <int64_t kW, int64_t kB>
  static void Float32(const float* w, const float* x, int64_t n, float* y, int64_t y_stride,
                      const float* next) {
    const int64_t body = n - n % 4;
    float32x4_t acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < body; i += 4) {
      float32x4_t wv[kW], xv[kB];
      for (int64_t r = 0; r < kW; ++r) wv[r] = vld1q_f32(w + r * n + i);
      PrefetchNextRows<kW>(next, n, i);
      for (int64_t b = 0; b < kB; ++b) xv[b] = vld1q_f32(x + b * n + i);
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) acc[r][b] = vfmaq_f32(acc[r][b], wv[r], xv[b]);
    }
    for (int64_t r = 0; r < kW; ++r) {
      for (int64_t b = 0; b < kB; ++b) {
        float tail = 0.0f;
        for (int64_t i = body; i < n; ++i) tail += w[r * n + i] * x[b * n + i];
        y[b * y_stride + r] = vaddvq_f32(acc[r][b]) + tail;
      }
    }
  }

  template <int64_t kW, int64_t kB>
  static void Int8(const Int8Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n);
    const int8_t* wp = w.values + row * stride;
    const int8_t* xp = x.values + input * stride;
    int32x4_t acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = vdupq_n_s32(0);
    for (int64_t i = 0; i < stride; i += 16) {
      int8x16_t wv[kW], xv[kB];
      for (int64_t r = 0; r < kW; ++r) wv[r] = vld1q_s8(wp + r * stride + i);
      for (int64_t b = 0; b < kB; ++b) xv[b] = vld1q_s8(xp + b * stride + i);
      for (int64_t r = 0; r < kW; ++r)
        for (int64_t b = 0; b < kB; ++b) acc[r][b] = DotBytes(acc[r][b], wv[r], xv[b]);
    }
    for (int64_t r = 0; r < kW; ++r) {
      for (int64_t b = 0; b < kB; ++b) {
        const int32_t dot = vaddvq_s32(acc[r][b]);
        y[b * y_stride + r] = Int8Output(dot, x, input + b, w, row + r);
      }
    }
  }

  // Int4, in int4 order (kernels.hpp), 16 bytes of each line (4 groups) at a time: the nibbles become
  // signed bytes (q = nibble - 8) whose products with the inputs add up over the eight lines (QuadSums),
  // group j in lane j, scaled in float once per 128 values. The last superblock's last 4 groups may be 2:
  // 8-byte loads.
  template <int64_t kW, int64_t kB>
  static void Int4(const Int4Weights& w, const QuantizedRows& x, int64_t row, int64_t input, float* y,
                   int64_t y_stride) {
    const int64_t stride = PaddedLength(w.n), row_bytes = Int4RowBytes(w.n), groups = Groups(w.n);
    const int8_t* xp = x.values + input * stride;
    const uint8x16_t low_nibbles = vdupq_n_u8(0x0F);
    const int8x16_t eight = vdupq_n_s8(8);
    float32x4_t acc[kW][kB];
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) acc[r][b] = vdupq_n_f32(0.0f);
    for (int64_t first = 0; first < groups; first += kInt4Superblock) {
      const int64_t width = Int4SuperblockGroups(w.n, first), line = 4 * width;
      for (int64_t quad = 0; quad * 4 < width; ++quad) {
        const bool whole = quad * 4 + 4 <= width;
        const auto bytes = [whole](const void* p) {
          const auto* u = static_cast<const uint8_t*>(p);
          return whole ? vld1q_u8(u) : vcombine_u8(vld1_u8(u), vdup_n_u8(0));
        };
        const uint8_t* wp = w.packed + row * row_bytes + first * kGroup / 2 + quad * 16;
        const int8_t* xs = xp + first * kGroup + quad * 16;
        QuadSums sums[kW][kB];
        for (int64_t pair = 0; pair < kGroup / 8; ++pair) {
          int8x16_t low[kW], high[kW];
          for (int64_t r = 0; r < kW; ++r) {
            const uint8x16_t packed = bytes(wp + r * row_bytes + pair * line);
            low[r] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, low_nibbles)), eight);
            high[r] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), eight);
          }
          for (int64_t b = 0; b < kB; ++b) {
            const int8x16_t x_low = vreinterpretq_s8_u8(bytes(xs + b * stride + 2 * pair * line));
            const int8x16_t x_high = vreinterpretq_s8_u8(bytes(xs + b * stride + (2 * pair + 1) * line));
            for (int64_t r = 0; r < kW; ++r) {
              sums[r][b].Add(low[r], x_low);
              sums[r][b].Add(high[r], x_high);
            }
          }
        }
        for (int64_t r = 0; r < kW; ++r) {
          const float* scales = w.scales + (row + r) * groups + first + quad * 4;
          const float32x4_t scale =
              whole ? vld1q_f32(scales) : vcombine_f32(vld1_f32(scales), vdup_n_f32(0.0f));
          for (int64_t b = 0; b < kB; ++b) {
            acc[r][b] = vfmaq_f32(acc[r][b], vcvtq_f32_s32(sums[r][b].Lanes()), scale);
          }
        }
      }
    }
    for (int64_t r = 0; r < kW; ++r)
      for (int64_t b = 0; b < kB; ++b) y[b * y_stride + r] = vaddvq_f32(acc[r][b]) * x.scales[input + b];
  }
};

float Dot(const float* a, const float* b, int64_t n) {
  float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = acc0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = vfmaq_f32(acc0, vld1q_f32(a + i), vld1q_f32(b + i));
    acc1 = vfmaq_f32(acc1, vld1q_f32(a + i + 4), vld1q_f32(b + i + 4));
  }
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  return vaddvq_f32(vaddq_f32(acc0, acc1)) + tail;
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace

constinit const Table TANDEM_NEON_TABLE = {
    .name = TANDEM_NEON_NAME,
    .matvec_f32 = MatVecFloat32<Tiles>,
    .matvec_i8 = MatVecInt8<Tiles>,
    .matvec_i4 = MatVecInt4<Tiles>,
    .quantize_rows = QuantizeActivations,
    .dot = Dot,
    .axpy = Axpy,
    .rms_norm = ref::RmsNorm,
    .swiglu = ref::SwiGlu,
    .softmax = ref::Softmax,
    .rotate = ref::Rotate,
};

}  // namespace tandem::kernels
