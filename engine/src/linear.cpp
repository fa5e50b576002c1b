#include "tandem/engine/linear.hpp"

#include <ATen/Parallel.h>
#include <oneapi/dnnl/dnnl.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace tandem {

struct Linear::Quantized {
  std::vector<int8_t> int8_values;   // int8: [out, PaddedLength(in)]
  std::vector<int32_t> row_sums;     // int8: [out]
  std::vector<uint8_t> int4_packed;  // int4: [out, Int4RowBytes(in)]
  std::vector<float> scales;         // int8: [out]; int4: [out, Groups(in)]
};

namespace {

Status CheckFinite(const float* weight, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    if (!std::isfinite(weight[i])) {
      return InvalidArgument("non-finite weight at element " + std::to_string(i));
    }
  }
  return Status::Ok();
}

// Rows of output per parallel task: big enough to amortize the task, small enough that both threads get
// work on the smallest matrices.
constexpr int64_t kRowsPerTask = 64;

void CheckDnnl(dnnl_status_t status, const char* what) {
  // Shapes are fixed at construction and checked there; a failure here is a bug, not bad input.
  if (status != dnnl_success) {
    std::fprintf(stderr, "tandem: internal error: %s failed with oneDNN status %d\n", what,
                 static_cast<int>(status));
    std::abort();
  }
}

// oneDNN 2.6's AVX-512 SGEMM ran float32 prefill at 0.78 of the speed of its AVX2 one on AMD Zen 4 (780
// against 1009 tok/s, 110M shape, 128 tokens, 2 threads), where 512-bit operations go through 256-bit
// units in two halves; Intel's AVX-512 parts keep it.
bool Avx2SgemmIsFaster() {
#if defined(__x86_64__)
  return __builtin_cpu_is("amd");
#else
  return false;
#endif
}

}  // namespace

const kernels::Table& ActiveKernels() {
  static const kernels::Table& table = []() -> const kernels::Table& {
    const kernels::Table& active = kernels::Active();
    const std::string_view name = active.name;
    const dnnl_cpu_isa_t isa = name == "avx2" || (name == "avx512" && Avx2SgemmIsFaster()) ? dnnl_cpu_isa_avx2
                               : name == "ref" ? dnnl_cpu_isa_sse41
                                               : dnnl_cpu_isa_all;
    // Fails only when oneDNN already ran (its choice is then the CPU's best): nothing to do about it.
    (void)dnnl_set_max_cpu_isa(isa);
    return active;
  }();
  return table;
}

namespace {

// Activation rows quantized for the int kernels, per calling thread and reused.
struct ActivationScratch {
  std::vector<int8_t> values, int4_values;
  std::vector<float> scales, group_sums;

  // In natural order for int8 weights, in int4 order (kernels.hpp) for int4 ones.
  kernels::QuantizedRows Quantize(const float* x, int64_t rows, int64_t n, WeightFormat format) {
    values.resize(static_cast<size_t>(rows * kernels::PaddedLength(n)));
    scales.resize(static_cast<size_t>(rows));
    group_sums.resize(static_cast<size_t>(rows * kernels::Groups(n)));
    ActiveKernels().quantize_rows(x, rows, n, values.data(), scales.data(), group_sums.data());
    if (format != WeightFormat::kInt4) return {values.data(), scales.data(), group_sums.data(), n};
    int4_values.resize(values.size());
    kernels::ToInt4Order(values.data(), rows, n, int4_values.data());
    return {int4_values.data(), scales.data(), group_sums.data(), n};
  }
};

}  // namespace

void MatMul(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
            int64_t ldb, bool transpose_b, float* c, int64_t ldc) {
  ActiveKernels();  // oneDNN's instruction set is decided before its first call
  CheckDnnl(dnnl_sgemm('N', transpose_b ? 'T' : 'N', m, n, k, alpha, a, lda, b, ldb, 0.0f, c, ldc),
            "dnnl_sgemm");
}

Result<Linear> Linear::Float32(const float* weight, int64_t out_features, int64_t in_features) {
  TANDEM_RETURN_IF_ERROR(CheckFinite(weight, out_features * in_features));
  Linear linear(WeightFormat::kFloat32, out_features, in_features);
  linear.weight_f32_ = weight;
  return linear;
}

Result<Linear> Linear::Int8(const float* weight, int64_t out_features, int64_t in_features) {
  TANDEM_RETURN_IF_ERROR(CheckFinite(weight, out_features * in_features));
  auto quantized = std::make_shared<Quantized>();
  quantized->int8_values.resize(static_cast<size_t>(out_features * kernels::PaddedLength(in_features)));
  quantized->scales.resize(static_cast<size_t>(out_features));
  quantized->row_sums.resize(static_cast<size_t>(out_features));
  kernels::QuantizeInt8Rows(weight, out_features, in_features, quantized->int8_values.data(),
                            quantized->scales.data(), quantized->row_sums.data());
  Linear linear(WeightFormat::kInt8, out_features, in_features);
  linear.quantized_ = std::move(quantized);
  return linear;
}

Result<Linear> Linear::Int4(const float* weight, int64_t out_features, int64_t in_features) {
  TANDEM_RETURN_IF_ERROR(CheckFinite(weight, out_features * in_features));
  auto quantized = std::make_shared<Quantized>();
  quantized->int4_packed.resize(static_cast<size_t>(out_features * kernels::Int4RowBytes(in_features)));
  quantized->scales.resize(static_cast<size_t>(out_features * kernels::Groups(in_features)));
  kernels::QuantizeInt4Rows(weight, out_features, in_features, quantized->int4_packed.data(),
                            quantized->scales.data());
  Linear linear(WeightFormat::kInt4, out_features, in_features);
  linear.quantized_ = std::move(quantized);
  return linear;
}

Result<Linear> Linear::Create(WeightFormat format, const float* weight, int64_t out_features,
                              int64_t in_features) {
  switch (format) {
    case WeightFormat::kInt8:
      return Int8(weight, out_features, in_features);
    case WeightFormat::kInt4:
      return Int4(weight, out_features, in_features);
    case WeightFormat::kFloat32:
      break;
  }
  return Float32(weight, out_features, in_features);
}

int64_t Linear::WeightBytes() const {
  switch (format_) {
    case WeightFormat::kFloat32:
      return out_ * in_ * 4;
    case WeightFormat::kInt8:
      return out_ * kernels::PaddedLength(in_) + out_ * 4;
    case WeightFormat::kInt4:
      return out_ * kernels::Int4RowBytes(in_) + out_ * kernels::Groups(in_) * 4;
  }
  return 0;
}

void Linear::RunRows(const float* x, const kernels::QuantizedRows& xq, int64_t batch, int64_t begin,
                     int64_t end, float* y, int64_t y_stride) const {
  const kernels::Table& table = ActiveKernels();
  switch (format_) {
    case WeightFormat::kFloat32:
      table.matvec_f32(weight_f32_, in_, x, batch, begin, end, y, y_stride);
      break;
    case WeightFormat::kInt8:
      table.matvec_i8(
          {quantized_->int8_values.data(), quantized_->scales.data(), quantized_->row_sums.data(), in_}, xq,
          batch, begin, end, y, y_stride);
      break;
    case WeightFormat::kInt4:
      table.matvec_i4({quantized_->int4_packed.data(), quantized_->scales.data(), in_}, xq, batch, begin, end,
                      y, y_stride);
      break;
  }
}

void Linear::RunKernels(std::span<const Linear* const> layers, const float* x, int64_t rows,
                        std::span<float* const> outputs) {
  const Linear& first = *layers.front();
  const int64_t in = first.in_;
  thread_local ActivationScratch scratch;
  const kernels::QuantizedRows all = first.format_ == WeightFormat::kFloat32
                                         ? kernels::QuantizedRows{nullptr, nullptr, nullptr, in}
                                         : scratch.Quantize(x, rows, in, first.format_);
  int64_t total_rows = 0;
  for (const Linear* layer : layers) total_rows += layer->out_;
  // The layers' output rows are numbered one after another; each task runs its slice of every layer it
  // overlaps, for every group of inputs (the slice's weights stay in cache from one group to the next).
  at::parallel_for(0, total_rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t input = 0; input < rows; input += kernels::kMaxBatch) {
      const int64_t batch = std::min(rows - input, kernels::kMaxBatch);
      const kernels::QuantizedRows group =
          all.values == nullptr
              ? all
              : kernels::QuantizedRows{all.values + input * kernels::PaddedLength(in), all.scales + input,
                                       all.group_sums + input * kernels::Groups(in), in};
      int64_t offset = 0;
      for (size_t i = 0; i < layers.size(); offset += layers[i]->out_, ++i) {
        const Linear& layer = *layers[i];
        const int64_t local_begin = std::max(begin - offset, int64_t{0});
        const int64_t local_end = std::min(end - offset, layer.out_);
        if (local_begin >= local_end) continue;
        layer.RunRows(x + input * in, group, batch, local_begin, local_end, outputs[i] + input * layer.out_,
                      layer.out_);
      }
    }
  });
}

void Linear::Forward(const float* x, int64_t rows, float* y) const {
  const Linear* self = this;
  ForwardSharedInput({&self, 1}, x, rows, {&y, 1});
}

void Linear::ForwardSharedInput(std::span<const Linear* const> layers, const float* x, int64_t rows,
                                std::span<float* const> outputs) {
  if (rows <= 0 || layers.empty()) return;
  if (rows > 1 && layers.front()->format_ == WeightFormat::kFloat32) {
    // Float32 prefill: compute-bound, where a tuned SGEMM's blocking beats streaming tiles.
    for (size_t i = 0; i < layers.size(); ++i) {
      const Linear& layer = *layers[i];
      MatMul(rows, layer.out_, layer.in_, 1.0f, x, layer.in_, layer.weight_f32_, layer.in_,
             /*transpose_b=*/true, outputs[i], layer.out_);
    }
    return;
  }
  RunKernels(layers, x, rows, outputs);
}

void Linear::ForwardDecodeBatch(const float* x, int64_t rows, float* y) const {
  const Linear* self = this;
  ForwardDecodeBatch({&self, 1}, x, rows, {&y, 1});
}

void Linear::ForwardDecodeBatch(std::span<const Linear* const> layers, const float* x, int64_t rows,
                                std::span<float* const> outputs) {
  if (rows <= 0 || layers.empty()) return;
  RunKernels(layers, x, rows, outputs);
}

}  // namespace tandem
