// The portable table: plain loops, the oracle the other tables are tested against. Compiled for the
// baseline of the architecture; the compiler may vectorize it, but it assumes no optional feature.
#include "tables.hpp"
#include "tiles.hpp"

#include <algorithm>
#include <cmath>

namespace tandem::kernels {
namespace {

// Σ over 16 independent partial sums, combined in order: a single running sum is a chain of dependent adds
// that the compiler may not reorder (no -ffast-math), so it would run one lane at a time.
float Dot16(const float* a, const float* b, int64_t n) {
  constexpr int64_t kLanes = 16;
  float partial[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    for (int64_t lane = 0; lane < kLanes; ++lane) partial[lane] += a[i + lane] * b[i + lane];
  }
  for (; i < n; ++i) partial[0] += a[i] * b[i];
  float total = 0.0f;
  for (float value : partial) total += value;
  return total;
}

int32_t DotInt8(const int8_t* a, const int8_t* b, int64_t n) {
  int32_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += int32_t{a[i]} * int32_t{b[i]};
  return total;
}

void MatVecFloat32(const float* w, int64_t n, const float* x, int64_t batch, int64_t row_begin,
                   int64_t row_end, float* y, int64_t y_stride) {
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t b = 0; b < batch; ++b) y[b * y_stride + r] = Dot16(w + r * n, x + b * n, n);
  }
}

void MatVecInt8(const Int8Weights& w, const QuantizedRows& x, int64_t batch, int64_t row_begin,
                int64_t row_end, float* y, int64_t y_stride) {
  const int64_t stride = PaddedLength(w.n);
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t b = 0; b < batch; ++b) {
      const int32_t dot = DotInt8(w.values + r * stride, x.values + b * stride, stride);
      y[b * y_stride + r] = Int8Output(dot, x, b, w, r);
    }
  }
}

void MatVecInt4(const Int4Weights& w, const QuantizedRows& x, int64_t batch, int64_t row_begin,
                int64_t row_end, float* y, int64_t y_stride) {
  const int64_t groups = Groups(w.n), stride = PaddedLength(w.n);
  for (int64_t r = row_begin; r < row_end; ++r) {
    for (int64_t b = 0; b < batch; ++b) {
      float total = 0.0f;
      for (int64_t first = 0; first < groups; first += kInt4Superblock) {
        // A superblock (kernels.hpp): line t of group j is 4 values at t · 4G + 4j, nibbles of byte pair t
        // / 2.
        const int64_t width = Int4SuperblockGroups(w.n, first), line = 4 * width;
        const uint8_t* packed = w.packed + r * Int4RowBytes(w.n) + first * kGroup / 2;
        const int8_t* xs = x.values + b * stride + first * kGroup;
        for (int64_t j = 0; j < width; ++j) {
          int32_t dot = 0;
          for (int64_t t = 0; t < kGroup / 4; ++t) {
            for (int64_t m = 0; m < 4; ++m) {
              const int nibble = (packed[t / 2 * line + 4 * j + m] >> (t % 2 * 4)) & 0x0F;
              dot += (nibble - 8) * int32_t{xs[t * line + 4 * j + m]};
            }
          }
          total += static_cast<float>(dot) * w.scales[r * groups + first + j];
        }
      }
      y[b * y_stride + r] = total * x.scales[b];
    }
  }
}

}  // namespace

namespace ref {

float Dot(const float* a, const float* b, int64_t n) {
  return Dot16(a, b, n);
}

void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void RmsNorm(const float* x, const float* gain, int64_t n, float eps, float* out) {
  const float inverse_rms = 1.0f / std::sqrt(Dot16(x, x, n) / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = gain[i] * (inverse_rms * x[i]);
}

void SwiGlu(float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void Softmax(float* values, int64_t n) {
  const float max_value = *std::max_element(values, values + n);
  float total = 0.0f;
  for (int64_t i = 0; i < n; ++i) {
    values[i] = std::exp(values[i] - max_value);
    total += values[i];
  }
  for (int64_t i = 0; i < n; ++i) values[i] /= total;
}

void Rotate(float* head, const float* cos, const float* sin, int64_t pairs, int64_t stride, int64_t partner) {
  for (int64_t i = 0; i < pairs; ++i) {
    float& a = head[i * stride];
    float& b = head[i * stride + partner];
    const float first = a, second = b;
    a = first * cos[i] - second * sin[i];
    b = first * sin[i] + second * cos[i];
  }
}

}  // namespace ref

constinit const Table kRefTable = {
    .name = "ref",
    .matvec_f32 = MatVecFloat32,
    .matvec_i8 = MatVecInt8,
    .matvec_i4 = MatVecInt4,
    .quantize_rows = QuantizeActivations,
    .dot = ref::Dot,
    .axpy = ref::Axpy,
    .rms_norm = ref::RmsNorm,
    .swiglu = ref::SwiGlu,
    .softmax = ref::Softmax,
    .rotate = ref::Rotate,
};

namespace {

// Absmax scale of n values to [-limit, limit]; 0 for an all-zero row.
float AbsmaxScale(const float* x, int64_t n, float limit) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(x[i]));
  return absmax / limit;
}

// One row to int8 in [-127, 127], zero padded to PaddedLength(n); returns the scale.
float QuantizeRow(const float* x, int64_t n, int8_t* out) {
  const float scale = AbsmaxScale(x, n, 127.0f);
  const float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(std::nearbyint(x[i] * inverse));
  std::fill(out + n, out + PaddedLength(n), int8_t{0});
  return scale;
}

}  // namespace

void QuantizeInt8Rows(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales,
                      int32_t* row_sums) {
  const int64_t stride = PaddedLength(n);
  for (int64_t r = 0; r < rows; ++r) {
    int8_t* row = values + r * stride;
    scales[r] = QuantizeRow(x + r * n, n, row);
    int32_t sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += row[i];
    row_sums[r] = sum;
  }
}

void QuantizeActivations(const float* x, int64_t rows, int64_t n, int8_t* values, float* scales,
                         float* group_sums) {
  const int64_t stride = PaddedLength(n), groups = Groups(n);
  for (int64_t r = 0; r < rows; ++r) {
    int8_t* row = values + r * stride;
    scales[r] = QuantizeRow(x + r * n, n, row);
    for (int64_t g = 0; g < groups; ++g) {
      int32_t sum = 0;
      for (int64_t i = g * kGroup; i < (g + 1) * kGroup; ++i) sum += row[i];
      group_sums[r * groups + g] = static_cast<float>(sum);
    }
  }
}

void ToInt4Order(const int8_t* values, int64_t rows, int64_t n, int8_t* out) {
  const int64_t stride = PaddedLength(n), groups = Groups(n);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t first = 0; first < groups; first += kInt4Superblock) {
      const int64_t width = Int4SuperblockGroups(n, first);
      const int8_t* from = values + r * stride + first * kGroup;
      int8_t* to = out + r * stride + first * kGroup;
      for (int64_t j = 0; j < width; ++j) {
        for (int64_t t = 0; t < kGroup / 4; ++t)
          std::copy_n(from + j * kGroup + 4 * t, 4, to + t * 4 * width + 4 * j);
      }
    }
  }
}

void QuantizeInt4Rows(const float* w, int64_t rows, int64_t n, uint8_t* packed, float* scales) {
  const int64_t groups = Groups(n);
  std::fill_n(packed, rows * Int4RowBytes(n), uint8_t{0});
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t begin = g * kGroup, count = std::clamp(n - begin, int64_t{0}, kGroup);
      const float* values = w + r * n + std::min(begin, n);
      float extreme = 0.0f;  // the value of largest magnitude, with its sign
      for (int64_t i = 0; i < count; ++i) {
        if (std::fabs(values[i]) > std::fabs(extreme)) extreme = values[i];
      }
      const float scale = extreme / -8.0f;
      const float inverse = scale != 0.0f ? 1.0f / scale : 0.0f;
      // Value 4t + m of group j of its superblock: byte (t / 2) · 4G + 4j + m, low nibble for even t.
      const int64_t first = g / kInt4Superblock * kInt4Superblock, j = g - first;
      const int64_t line = 4 * Int4SuperblockGroups(n, first);
      uint8_t* superblock = packed + r * Int4RowBytes(n) + first * kGroup / 2;
      for (int64_t i = 0; i < kGroup; ++i) {
        const float q = i < count ? std::nearbyint(values[i] * inverse) : 0.0f;
        const auto nibble = static_cast<uint8_t>(std::clamp(q, -8.0f, 7.0f) + 8.0f);
        const int64_t t = i / 4, m = i % 4;
        superblock[t / 2 * line + 4 * j + m] |= static_cast<uint8_t>(nibble << (t % 2 * 4));
      }
      scales[r * groups + g] = scale;
    }
  }
}

}  // namespace tandem::kernels
