// The neon table: ARM64's Advanced SIMD, which every AArch64 CPU has. Integer products widen s8 × s8 to
// 16 bits (|q| <= 127, so one product fits and vpadal sums pairs into 32 bits): exact, like the others.
#include <arm_neon.h>

#include "tables.hpp"
#include "tiles.hpp"

namespace tandem::kernels {
namespace {

// Σ of 16 byte products into four 32-bit lanes.
inline int32x4_t DotBytes(int32x4_t acc, int8x16_t a, int8x16_t b) {
  acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
  return vpadalq_s16(acc, vmull_high_s8(a, b));
}

// The tiles (tiles.hpp): kRows weight rows × kInputs inputs, 16 accumulators of 32 registers.
struct Tiles {
  static constexpr int64_t kRows = 4, kInputs = 4;

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

  // Int4: a group's nibbles (the low ones of its block's 32 bytes for an even group, the high ones for an
  // odd group) become signed bytes (q = nibble - 8) and multiply the inputs exactly as int8 does; each
  // group's integer sum is scaled in float.
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
    for (int64_t g = 0; g < groups; ++g) {
      int8x16_t low[kW], high[kW];  // the group's values 0–15 and 16–31
      float scale[kW];
      for (int64_t r = 0; r < kW; ++r) {
        const uint8_t* block = w.packed + (row + r) * row_bytes + g / 2 * kGroup;
        const auto nibbles = [&](const uint8_t* bytes) {
          const uint8x16_t packed = vld1q_u8(bytes);
          const uint8x16_t values = g % 2 == 0 ? vandq_u8(packed, low_nibbles) : vshrq_n_u8(packed, 4);
          return vsubq_s8(vreinterpretq_s8_u8(values), eight);
        };
        low[r] = nibbles(block);
        high[r] = nibbles(block + kGroup / 2);
        scale[r] = w.scales[(row + r) * groups + g];
      }
      for (int64_t b = 0; b < kB; ++b) {
        const int8x16_t x_low = vld1q_s8(xp + b * stride + g * kGroup);
        const int8x16_t x_high = vld1q_s8(xp + b * stride + g * kGroup + kGroup / 2);
        for (int64_t r = 0; r < kW; ++r) {
          const int32x4_t sums = DotBytes(DotBytes(vdupq_n_s32(0), low[r], x_low), high[r], x_high);
          acc[r][b] = vfmaq_n_f32(acc[r][b], vcvtq_f32_s32(sums), scale[r]);
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

constinit const Table kNeonTable = {
    .name = "neon",
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
