#include "tandem/common/linear.hpp"

#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

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

void CheckDnnl(dnnl_status_t status, const char* what) {
  // Shapes are fixed at construction and checked there; a failure here is a bug, not bad input.
  if (status != dnnl_success) {
    std::fprintf(stderr, "tandem: internal error: %s failed with oneDNN status %d\n", what,
                 static_cast<int>(status));
    std::abort();
  }
}

}  // namespace

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
  for (int64_t row = 0; row < out_features; ++row) {
    (*scales)[row] = QuantizeRow(weight + row * in_features, in_features,
                                 quantized->data() + row * in_features);
  }
  Linear linear(WeightFormat::kInt8, out_features, in_features);
  linear.weight_i8_ = std::move(quantized);
  linear.scales_ = std::move(scales);
  return linear;
}

int64_t Linear::WeightBytes() const {
  return format_ == WeightFormat::kFloat32 ? out_ * in_ * 4 : out_ * in_ + out_ * 4;
}

void Linear::Forward(const float* x, int64_t rows, float* y) const {
  if (rows <= 0) return;
  if (format_ == WeightFormat::kFloat32) {
    CheckDnnl(dnnl_sgemm('N', 'T', rows, out_, in_, 1.0f, x, in_, weight_f32_, in_, 0.0f, y, out_),
              "dnnl_sgemm");
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

}  // namespace tandem
