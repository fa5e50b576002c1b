#include "tandem/common/linear.hpp"

#include <ATen/Parallel.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "matvec_avx512.hpp"

namespace tandem {
namespace {

Status CheckFinite(const float* weight, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(weight[i])) {
      return InvalidArgument("non-finite weight at element " + std::to_string(i));
    }
  }
  return Status::Ok();
}

// Symmetric absmax quantization of one row to [-127, 127]; returns the scale (0 for an all-zero row).
float QuantizeRow(const float* row, int64_t n, int8_t* out) {
  float absmax = 0.0f;
  for (int64_t i = 0; i < n; ++i) absmax = std::max(absmax, std::fabs(row[i]));
  const float scale = absmax / 127.0f;
  const float inverse = scale > 0.0f ? 1.0f / scale : 0.0f;
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int8_t>(std::nearbyint(row[i] * inverse));
  return scale;
}

// Rows of output per parallel task in the decode kernels: big enough to amortize the task, small enough
// that both threads get work on the smallest matrices.
constexpr int64_t kRowsPerTask = 64;

const bool kHaveDecodeKernels = kernels::HaveAvx512Vnni();

void CheckDnnl(dnnl_status_t status, const char* what) {
  // Shapes are fixed at construction and checked there; a failure here is a bug, not bad input.
  if (status != dnnl_success) {
    std::fprintf(stderr, "tandem: internal error: %s failed with oneDNN status %d\n", what,
                 static_cast<int>(status));
    std::abort();
  }
}

}  // namespace

void MatMul(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
            int64_t ldb, bool transpose_b, float* c, int64_t ldc) {
  CheckDnnl(dnnl_sgemm('N', transpose_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc), "dnnl_sgemm");
}

Result<Linear> Linear::Float32(const float* weight, int64_t out_features, int64_t in_features) {
  TANDEM_RETURN_IF_ERROR(CheckFinite(weight, out_features * in_features));
  Linear linear(WeightFormat::kFloat32, out_features, in_features);
  linear.weight_f32_ = weight;
  return linear;
}

Result<Linear> Linear::Int8(const float* weight, int64_t out_features, int64_t in_features) {
  TANDEM_RETURN_IF_ERROR(CheckFinite(weight, out_features * in_features));
  auto quantized = std::make_shared<std::vector<int8_t>>(static_cast<size_t>(out_features * in_features));
  auto scales = std::make_shared<std::vector<float>>(static_cast<size_t>(out_features));
  auto row_sums = std::make_shared<std::vector<int32_t>>(static_cast<size_t>(out_features));
  for (int64_t row = 0; row < out_features; ++row) {
    int8_t* quantized_row = quantized->data() + row * in_features;
    (*scales)[row] = QuantizeRow(weight + row * in_features, in_features, quantized_row);
    for (int64_t i = 0; i < in_features; ++i) (*row_sums)[row] += quantized_row[i];
  }
  Linear linear(WeightFormat::kInt8, out_features, in_features);
  linear.weight_i8_ = std::move(quantized);
  linear.scales_ = std::move(scales);
  linear.row_sums_ = std::move(row_sums);
  return linear;
}

int64_t Linear::WeightBytes() const {
  return format_ == WeightFormat::kFloat32 ? out_ * in_ * 4 : out_ * in_ + out_ * 4;
}

void Linear::Forward(const float* x, int64_t rows, float* y) const {
  if (rows <= 0) return;
  if (rows == 1 && kHaveDecodeKernels) {
    const Linear* self = this;
    ForwardSharedInput({&self, 1}, x, rows, {&y, 1});
    return;
  }
  if (format_ == WeightFormat::kFloat32) {
    MatMul(rows, out_, in_, 1.0f, x, in_, weight_f32_, in_, /*transpose_b=*/true, y, out_);
    return;
  }
  // Per-call scratch, reused across calls on the same thread.
  thread_local std::vector<int8_t> x_quantized;
  thread_local std::vector<float> x_scales;
  thread_local std::vector<int32_t> accumulators;
  x_quantized.resize(static_cast<size_t>(rows * in_));
  x_scales.resize(static_cast<size_t>(rows));
  accumulators.resize(static_cast<size_t>(rows * out_));
  for (int64_t r = 0; r < rows; ++r) {
    x_scales[r] = QuantizeRow(x + r * in_, in_, x_quantized.data() + r * in_);
  }
  const int32_t no_offset = 0;
  CheckDnnl(dnnl_gemm_s8s8s32('N', 'T', 'F', rows, out_, in_, 1.0f, x_quantized.data(), in_, 0,
                              weight_i8_->data(), in_, 0, 0.0f, accumulators.data(), out_, &no_offset),
            "dnnl_gemm_s8s8s32");
  const float* w_scales = scales_->data();
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t* acc = accumulators.data() + r * out_;
    float* out_row = y + r * out_;
    const float x_scale = x_scales[r];
    for (int64_t c = 0; c < out_; ++c) out_row[c] = static_cast<float>(acc[c]) * x_scale * w_scales[c];
  }
}

void Linear::ForwardDecodeBatch(const float* x, int64_t rows, float* y) const {
  if (!kHaveDecodeKernels) {  // Forward(row, 1) is then oneDNN's, row by row
    for (int64_t r = 0; r < rows; ++r) Forward(x + r * in_, 1, y + r * out_);
    return;
  }
  thread_local std::vector<uint8_t> x_biased;
  thread_local std::vector<float> x_scales;
  for (int64_t first = 0; first < rows; first += kernels::kMaxBatch) {
    const int64_t batch = std::min(rows - first, kernels::kMaxBatch);
    const float* xs = x + first * in_;
    float* ys = y + first * out_;
    if (format_ == WeightFormat::kInt8) {
      // Each row quantized on its own, as ForwardSharedInput quantizes a lone row.
      x_biased.resize(static_cast<size_t>(batch * in_));
      x_scales.resize(static_cast<size_t>(batch));
      for (int64_t b = 0; b < batch; ++b) {
        x_scales[b] = QuantizeRow(xs + b * in_, in_, reinterpret_cast<int8_t*>(x_biased.data() + b * in_));
      }
      for (auto& byte : x_biased) byte ^= 0x80;
    }
    const uint8_t* biased = x_biased.data();
    const float* scales = x_scales.data();
    at::parallel_for(0, out_, kRowsPerTask, [&](int64_t begin, int64_t end) {
      if (format_ == WeightFormat::kFloat32) {
        kernels::MatVecFloat32Batch(weight_f32_, xs, batch, in_, begin, end, ys, out_);
      } else {
        kernels::MatVecInt8Batch(weight_i8_->data(), scales_->data(), row_sums_->data(), biased, scales, batch,
                                 in_, begin, end, ys, out_);
      }
    });
  }
}

void Linear::DecodeRows(const float* x, const uint8_t* x_biased, float x_scale, int64_t begin, int64_t end,
                        float* y) const {
  if (format_ == WeightFormat::kFloat32) {
    kernels::MatVecFloat32(weight_f32_, x, in_, begin, end, y);
  } else {
    kernels::MatVecInt8(weight_i8_->data(), scales_->data(), row_sums_->data(), x_biased, x_scale, in_, begin,
                        end, y);
  }
}

void Linear::ForwardSharedInput(std::span<const Linear* const> layers, const float* x, int64_t rows,
                                std::span<float* const> outputs) {
  if (rows != 1 || !kHaveDecodeKernels) {
    for (size_t i = 0; i < layers.size(); ++i) layers[i]->Forward(x, rows, outputs[i]);
    return;
  }
  const Linear& first = *layers.front();
  float x_scale = 0.0f;
  thread_local std::vector<uint8_t> x_biased;
  if (first.format_ == WeightFormat::kInt8) {
    // VNNI multiplies unsigned by signed bytes: the activations go in biased by 128 (for an int8 q,
    // uint8(q + 128) == uint8(q) ^ 0x80), and the kernel removes the bias.
    x_biased.resize(static_cast<size_t>(first.in_));
    x_scale = QuantizeRow(x, first.in_, reinterpret_cast<int8_t*>(x_biased.data()));
    for (auto& byte : x_biased) byte ^= 0x80;
  }
  int64_t total_rows = 0;
  for (const Linear* layer : layers) total_rows += layer->out_;
  const uint8_t* biased = x_biased.data();
  // The layers' rows are numbered one after another; each task runs its slice of every layer it overlaps.
  at::parallel_for(0, total_rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    int64_t offset = 0;
    for (size_t i = 0; i < layers.size(); offset += layers[i]->out_, ++i) {
      const int64_t local_begin = std::max(begin - offset, int64_t{0});
      const int64_t local_end = std::min(end - offset, layers[i]->out_);
      if (local_begin < local_end) layers[i]->DecodeRows(x, biased, x_scale, local_begin, local_end, outputs[i]);
    }
  });
}

}  // namespace tandem
