#include "tandem/engine/transformer.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <stdexcept>
#include <thread>

namespace tandem {
namespace {

// Threads for the elementwise loops only where they outweigh a parallel region's start (a few µs): prefill
// and large batches, not one decode row.
constexpr int64_t kRowsPerTask = 32;
constexpr int64_t kValuesPerTask = 1 << 14;

// A tensor view of read-only mapped floats. LibTorch has no const tensors; the runtime never writes
// weights in place, and the mapping is PROT_READ so a stray write would fault rather than corrupt.
at::Tensor WrapWeights(const float* data, at::IntArrayRef sizes) {
  return at::from_blob(const_cast<float*>(data), sizes, at::TensorOptions().dtype(at::kFloat));
}

// Outputs of layers that all read x [T, in], through `forward` (one of Linear's multi-layer entries).
using ForwardLayers = void (*)(std::span<const Linear* const>, const float*, int64_t,
                               std::span<float* const>);
std::vector<at::Tensor> ApplyTogether(ForwardLayers forward, std::initializer_list<const Linear*> layers,
                                      const at::Tensor& x) {
  const at::Tensor input = x.contiguous();
  std::vector<at::Tensor> outputs;
  std::vector<float*> pointers;
  for (const Linear* layer : layers) {
    outputs.push_back(at::empty({input.size(0), layer->out_features()}, input.options()));
    pointers.push_back(outputs.back().data_ptr<float>());
  }
  forward({layers.begin(), layers.size()}, input.data_ptr<float>(), input.size(0), pointers);
  return outputs;
}

// The rows of one session: one pass at decode (Linear::ForwardSharedInput).
std::vector<at::Tensor> ApplyShared(std::initializer_list<const Linear*> layers, const at::Tensor& x) {
  return ApplyTogether(&Linear::ForwardSharedInput, layers, x);
}

// Rows of different sessions, one each: every row bit for bit what it gives alone
// (Linear::ForwardDecodeBatch).
std::vector<at::Tensor> ApplyDecodeBatch(std::initializer_list<const Linear*> layers, const at::Tensor& x) {
  return ApplyTogether(static_cast<ForwardLayers>(&Linear::ForwardDecodeBatch), layers, x);
}

at::Tensor Apply(const Linear& linear, const at::Tensor& x) {
  at::Tensor input = x.contiguous();
  at::Tensor output = at::empty({input.size(0), linear.out_features()}, input.options());
  linear.Forward(input.data_ptr<float>(), input.size(0), output.data_ptr<float>());
  return output;
}

// Radians per position of each rotary pair, in float as llama2.c computes them (so that the golden
// outputs reproduce), then Llama 3's scaling as Hugging Face's _compute_llama3_parameters applies it.
std::vector<float> RotaryFrequencies(const ModelConfig& config) {
  const int64_t half = config.head_dim() / 2;
  std::vector<float> frequencies(static_cast<size_t>(half));
  for (int64_t pair = 0; pair < half; ++pair) {
    frequencies[pair] =
        1.0f / powf(config.rope_theta, static_cast<float>(2 * pair) / static_cast<float>(config.head_dim()));
  }
  if (!config.rope_scaling.enabled()) return frequencies;
  const RopeScaling& scaling = config.rope_scaling;
  const float original = static_cast<float>(scaling.original_max_positions);
  const float low_freq_wavelength = original / scaling.low_freq_factor;
  const float high_freq_wavelength = original / scaling.high_freq_factor;
  for (float& frequency : frequencies) {
    const float wavelength = 2.0f * static_cast<float>(M_PI) / frequency;
    if (wavelength > low_freq_wavelength) {
      frequency /= scaling.factor;  // long wavelengths: stretched
    } else if (wavelength >= high_freq_wavelength) {
      const float smooth = (original / wavelength - scaling.low_freq_factor) /
                           (scaling.high_freq_factor - scaling.low_freq_factor);
      frequency = (1.0f - smooth) * frequency / scaling.factor + smooth * frequency;
    }  // short wavelengths: kept
  }
  return frequencies;
}

// The weight format the options give a layer (Create refuses both at once).
WeightFormat FormatOf(bool int8, bool int4) {
  return int8 ? WeightFormat::kInt8 : int4 ? WeightFormat::kInt4 : WeightFormat::kFloat32;
}

}  // namespace

KvCache::KvCache(const ModelConfig& config, BlockRange range, int capacity)
    // Positions beyond seq_len have no rotary angles: the model's context is the hard bound.
    : range_(range), capacity_(std::clamp(capacity, 0, config.seq_len)) {
  for (int block = range.first; block < range.last; ++block) {
    keys_.push_back(at::zeros({config.n_kv_heads, capacity_, config.head_dim()}));
    values_.push_back(at::zeros({config.n_kv_heads, capacity_, config.head_dim()}));
  }
}

int64_t KvCache::bytes() const {
  int64_t total = 0;
  for (const auto& tensor : keys_) total += 2 * tensor.nbytes();
  return total;
}

Transformer::Transformer(std::shared_ptr<const Checkpoint> checkpoint, const TransformerOptions& options)
    : checkpoint_(std::move(checkpoint)), config_(checkpoint_->config()), options_(options) {}

Result<std::shared_ptr<const Transformer>> Transformer::Create(std::shared_ptr<const Checkpoint> checkpoint,
                                                               const TransformerOptions& options) {
  const ModelConfig& config = checkpoint->config();
  for (const auto& [range, name] :
       {std::pair{options.int8_blocks, "int8"}, std::pair{options.int4_blocks, "int4"}}) {
    if (range.first < 0 || range.last > config.n_layers) {
      return InvalidArgument(std::string(name) + " block range is outside the model's " +
                             std::to_string(config.n_layers) + " blocks");
    }
  }
  const BlockRange& int8 = options.int8_blocks;
  const BlockRange& int4 = options.int4_blocks;
  if (!int8.empty() && !int4.empty() && int8.first < int4.last && int4.first < int8.last) {
    return InvalidArgument("int8 blocks " + std::to_string(int8.first) + ":" + std::to_string(int8.last) +
                           " and int4 blocks " + std::to_string(int4.first) + ":" +
                           std::to_string(int4.last) + " overlap");
  }
  if (options.int8_classifier && options.int4_classifier) {
    return InvalidArgument("the head is either int8 or int4, not both");
  }
  std::shared_ptr<Transformer> model(new Transformer(checkpoint, options));
  const int64_t d = config.dim, h = config.hidden_dim, q = config.q_dim(), kv = config.kv_dim();
  const std::string& path = checkpoint->path();

  // A block-range checkpoint holds some blocks, and the embedding and head only with the first and last.
  model->held_ = checkpoint->held_blocks();
  if (checkpoint->holds_embedding()) {
    model->token_embedding_ = WrapWeights(checkpoint->token_embedding(), {config.vocab_size, d});
  }
  for (int index = model->held_.first; index < model->held_.last; ++index) {
    const BlockWeights& weights = checkpoint->block(index);
    const WeightFormat format =
        FormatOf(options.int8_blocks.contains(index), options.int4_blocks.contains(index));
    const std::string context = path + ": block " + std::to_string(index);
    auto make = [&](const float* w, int64_t out, int64_t in) -> Result<Linear> {
      auto linear = Linear::Create(format, w, out, in);
      // The float32 originals of quantized weights are no longer needed in memory.
      if (format != WeightFormat::kFloat32) checkpoint->ReleaseWeights(w, static_cast<size_t>(out * in));
      return linear;
    };
    auto wq = make(weights.wq, q, d), wk = make(weights.wk, kv, d), wv = make(weights.wv, kv, d),
         wo = make(weights.wo, d, q), w1 = make(weights.w1, h, d), w2 = make(weights.w2, d, h),
         w3 = make(weights.w3, h, d);
    for (const auto* linear : {&wq, &wk, &wv, &wo, &w1, &w2, &w3}) {
      if (!linear->ok()) return linear->status().WithContext(context);
    }
    auto bias = [](const float* b, int64_t size) { return b ? WrapWeights(b, {size}) : at::Tensor(); };
    model->blocks_.push_back(Block{WrapWeights(weights.rms_att, {d}), WrapWeights(weights.rms_ffn, {d}), *wq,
                                   *wk, *wv, *wo, *w1, *w2, *w3, bias(weights.bq, q), bias(weights.bk, kv),
                                   bias(weights.bv, kv), bias(weights.bo, d)});
  }
  if (checkpoint->holds_head()) {
    model->rms_final_ = WrapWeights(checkpoint->rms_final(), {d});
    auto classifier = Linear::Create(FormatOf(options.int8_classifier, options.int4_classifier),
                                     checkpoint->classifier(), config.vocab_size, d);
    if (!classifier.ok()) return classifier.status().WithContext(path + ": classifier");
    model->classifier_ = std::make_unique<Linear>(*classifier);
  }

  model->rope_frequencies_ = RotaryFrequencies(config);
  return std::shared_ptr<const Transformer>(std::move(model));
}

Result<at::Tensor> Transformer::Embed(std::span<const int> tokens) const {
  if (!holds_embedding()) {
    return InvalidArgument("this model holds blocks " + std::to_string(held_.first) + ":" +
                           std::to_string(held_.last) + " only, not the token embedding");
  }
  std::vector<int64_t> ids(tokens.begin(), tokens.end());
  for (int64_t id : ids) {
    if (id < 0 || id >= config_.vocab_size) {
      return InvalidArgument("token id " + std::to_string(id) + " outside the vocabulary of " +
                             std::to_string(config_.vocab_size));
    }
  }
  const at::Tensor index = at::from_blob(ids.data(), {static_cast<int64_t>(ids.size())}, at::kLong);
  return at::index_select(token_embedding_, 0, index);  // a copy: the embedding stays read-only
}

// RMSNorm, rotary embedding, the SwiGLU gate and attention are the kernel table's loops over the rows, in
// llama2.c's arithmetic: as LibTorch expressions each is 5–10 small kernels, whose dispatch costs more than
// the math at decode.
at::Tensor Transformer::RmsNorm(const at::Tensor& input, const at::Tensor& weight) const {
  const at::Tensor x = input.contiguous();  // Logits is public: any view may arrive here
  const int64_t rows = x.size(0), dim = x.size(1);
  at::Tensor out = at::empty_like(x);
  const float* in = x.data_ptr<float>();
  const float* gain = weight.data_ptr<float>();
  float* normed = out.data_ptr<float>();
  const kernels::Table& kernels = ActiveKernels();
  at::parallel_for(0, rows, kRowsPerTask, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r)
      kernels.rms_norm(in + r * dim, gain, dim, config_.rms_norm_eps, normed + r * dim);
  });
  return out;
}

Transformer::RotaryAngles Transformer::Angles(int64_t position, int64_t rows) const {
  const auto half = static_cast<int64_t>(rope_frequencies_.size());
  RotaryAngles angles{at::empty({rows, half}), at::empty({rows, half})};
  float* cos = angles.cos.data_ptr<float>();
  float* sin = angles.sin.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t pair = 0; pair < half; ++pair) {
      const float angle = static_cast<float>(position + r) * rope_frequencies_[pair];
      cos[r * half + pair] = cosf(angle);
      sin[r * half + pair] = sinf(angle);
    }
  }
  return angles;
}

void Transformer::Rotate(float* x, int64_t rows, int64_t n_heads, const RotaryAngles& angles) const {
  // x [rows, n_heads * head_dim]. Pair i of a head is (2i, 2i+1) when interleaved (llama2.c), (i, i + half)
  // in halves (Hugging Face's rotate_half); both turn (a, b) into (a cos - b sin, a sin + b cos).
  const int64_t half = config_.head_dim() / 2, width = n_heads * half * 2;
  const bool interleaved = config_.rope_layout == RopeLayout::kInterleaved;
  const int64_t stride = interleaved ? 2 : 1, partner = interleaved ? 1 : half;
  const kernels::Table& kernels = ActiveKernels();
  for (int64_t r = 0; r < rows; ++r) {
    const float* cos = angles.cos.data_ptr<float>() + r * half;
    const float* sin = angles.sin.data_ptr<float>() + r * half;
    for (int64_t head = 0; head < n_heads; ++head) {
      kernels.rotate(x + r * width + head * half * 2, cos, sin, half, stride, partner);
    }
  }
}

void Transformer::GateInPlace(at::Tensor& gate, const at::Tensor& up) {
  // SwiGLU: silu(w1·x) * (w3·x), into `gate`.
  float* gates = gate.data_ptr<float>();
  const float* ups = up.data_ptr<float>();
  const kernels::Table& kernels = ActiveKernels();
  at::parallel_for(0, gate.numel(), kValuesPerTask, [&](int64_t begin, int64_t end) {
    kernels.swiglu(gates + begin, ups + begin, end - begin);
  });
}

at::Tensor Transformer::Attention(const at::Tensor& q, const KvCache& cache, size_t slot,
                                  int64_t position) const {
  if (q.size(0) == 1) {
    at::Tensor out = at::empty({1, config_.q_dim()});
    // Threads only pay off once a head's share of the cache is large.
    const int64_t heads = config_.n_heads,
                  heads_per_task = (position + 1) * config_.head_dim() >= 8192 ? 1 : heads;
    at::parallel_for(0, heads, heads_per_task, [&](int64_t head_begin, int64_t head_end) {
      AttendHeads(q.data_ptr<float>(), cache, slot, position, head_begin, head_end, out.data_ptr<float>());
    });
    return out;
  }
  // Prefill: per query head h (reading kv head h / group, as in llama2.c), scores = Q_h K_hᵀ over the
  // cache's first `span` positions, a causal softmax per row, then P V_h written into the head's columns.
  // The products run on the cache and q in place (leading dimensions), with no permuted copies.
  const int64_t rows = q.size(0), heads = config_.n_heads, hd = config_.head_dim(), dim = config_.q_dim();
  const int64_t group = heads / config_.n_kv_heads, span = position + rows, capacity = cache.capacity();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  at::Tensor out = at::empty({rows, dim});
  const float* queries = q.data_ptr<float>();
  const float* keys = cache.keys_[slot].data_ptr<float>();
  const float* values = cache.values_[slot].data_ptr<float>();
  float* mixed = out.data_ptr<float>();
  const kernels::Table& kernels = ActiveKernels();
  at::parallel_for(0, heads, 1, [&](int64_t head_begin, int64_t head_end) {
    std::vector<float> scores(static_cast<size_t>(rows * span));
    for (int64_t head = head_begin; head < head_end; ++head) {
      const int64_t kv_offset = (head / group) * capacity * hd;
      MatMul(rows, span, hd, scale, queries + head * hd, dim, keys + kv_offset, hd, /*transpose_b=*/true,
             scores.data(), span);
      for (int64_t r = 0; r < rows; ++r) {
        // Row r (position + r) attends to keys 0..position + r; the later ones get weight 0.
        float* row = scores.data() + r * span;
        const int64_t visible = position + r + 1;
        kernels.softmax(row, visible);
        std::fill(row + visible, row + span, 0.0f);
      }
      MatMul(rows, hd, span, 1.0f, scores.data(), span, values + kv_offset, hd, /*transpose_b=*/false,
             mixed + head * hd, dim);
    }
  });
  return out;
}

void Transformer::AttendHeads(const float* q, const KvCache& cache, size_t slot, int64_t position,
                              int64_t head_begin, int64_t head_end, float* out) const {
  // Decode attends one query to the whole cache. Straight loops over the cache, as llama2.c does:
  // at::matmul would hand BLAS a strided view of the cache and have it packed on every call, which costs
  // more than the products themselves once the context grows.
  const int64_t hd = config_.head_dim(), group = config_.n_heads / config_.n_kv_heads;
  const int64_t span = position + 1, capacity = cache.capacity();
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float* keys = cache.keys_[slot].data_ptr<float>();
  const float* values = cache.values_[slot].data_ptr<float>();
  const kernels::Table& kernels = ActiveKernels();
  thread_local std::vector<float> weights;
  weights.resize(static_cast<size_t>(span));
  for (int64_t head = head_begin; head < head_end; ++head) {
    const float* query = q + head * hd;
    const float* head_keys = keys + (head / group) * capacity * hd;
    const float* head_values = values + (head / group) * capacity * hd;
    for (int64_t s = 0; s < span; ++s) weights[s] = kernels.dot(query, head_keys + s * hd, hd) * scale;
    kernels.softmax(weights.data(), span);
    float* head_out = out + head * hd;
    std::fill(head_out, head_out + hd, 0.0f);
    for (int64_t s = 0; s < span; ++s) kernels.axpy(weights[s], head_values + s * hd, head_out, hd);
  }
}

std::vector<at::Tensor> Transformer::ProjectQkv(const Block& block, const at::Tensor& x,
                                                ApplyLayers apply) const {
  std::vector<at::Tensor> qkv = apply({&block.wq, &block.wk, &block.wv}, RmsNorm(x, block.rms_att));
  if (block.bq.defined()) {
    qkv[0].add_(block.bq);
    qkv[1].add_(block.bk);
    qkv[2].add_(block.bv);
  }
  return qkv;
}

void Transformer::RotateAndStore(float* q, float* k, const float* v, int64_t rows, KvCache& cache,
                                 size_t slot, int64_t position, const RotaryAngles& angles) const {
  const int64_t kv_heads = config_.n_kv_heads, hd = config_.head_dim(), capacity = cache.capacity();
  Rotate(q, rows, config_.n_heads, angles);
  Rotate(k, rows, kv_heads, angles);
  // The cache is [kv head, position, head_dim]: each row's heads go to their own runs.
  float* keys = cache.keys_[slot].data_ptr<float>();
  float* values = cache.values_[slot].data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t head = 0; head < kv_heads; ++head) {
      const int64_t to = (head * capacity + position + r) * hd, from = (r * kv_heads + head) * hd;
      std::copy_n(k + from, hd, keys + to);
      std::copy_n(v + from, hd, values + to);
    }
  }
}

void Transformer::FinishBlock(const Block& block, const at::Tensor& attended, at::Tensor& x,
                              ApplyLayers apply) const {
  at::Tensor projected = apply({&block.wo}, attended)[0];
  if (block.bo.defined()) projected.add_(block.bo);
  x.add_(projected);
  auto swiglu_inputs = apply({&block.w1, &block.w3}, RmsNorm(x, block.rms_ffn));
  at::Tensor& gate = swiglu_inputs[0];
  GateInPlace(gate, swiglu_inputs[1]);
  x.add_(apply({&block.w2}, gate)[0]);
}

void Transformer::RunBlock(const Block& block, at::Tensor& x, KvCache& cache, size_t slot, int64_t position,
                           const RotaryAngles& angles) const {
  std::vector<at::Tensor> qkv = ProjectQkv(block, x, ApplyShared);
  RotateAndStore(qkv[0].data_ptr<float>(), qkv[1].data_ptr<float>(), qkv[2].data_ptr<float>(), x.size(0),
                 cache, slot, position, angles);
  FinishBlock(block, Attention(qkv[0], cache, slot, position), x, ApplyShared);
}

void Transformer::RunBlockBatch(const Block& block, int block_index, at::Tensor& x,
                                std::span<KvCache* const> caches,
                                std::span<const RotaryAngles* const> angles) const {
  const auto rows = static_cast<int64_t>(caches.size());
  std::vector<at::Tensor> qkv = ProjectQkv(block, x, ApplyDecodeBatch);
  at::Tensor attended = at::empty({rows, config_.q_dim()});
  // Sessions attend in parallel (each its own cache and output row; a session's heads then run on its
  // thread, computed as they are alone): one after another, the small per-session steps left the other
  // threads idle (a 64-session tail on AVX2: 6.4x -> 7.8x the single-session rate). Raw rows, no tensor
  // operations: at 16 sessions their dispatch was a tenth of the step.
  const int64_t q_dim = config_.q_dim(), kv_dim = config_.kv_dim();
  at::parallel_for(0, rows, 1, [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      KvCache& cache = *caches[r];
      const auto slot = static_cast<size_t>(block_index - cache.range().first);
      const int64_t position = cache.length();
      float* q = qkv[0].data_ptr<float>() + r * q_dim;
      RotateAndStore(q, qkv[1].data_ptr<float>() + r * kv_dim, qkv[2].data_ptr<float>() + r * kv_dim, 1,
                     cache, slot, position, *angles[r]);
      AttendHeads(q, cache, slot, position, 0, config_.n_heads, attended.data_ptr<float>() + r * q_dim);
    }
  });
  FinishBlock(block, attended, x, ApplyDecodeBatch);
}

Status Transformer::CheckRun(const at::Tensor& hidden, const KvCache& cache) const {
  if (hidden.dim() != 2 || hidden.size(1) != config_.dim || hidden.scalar_type() != at::kFloat) {
    return InvalidArgument("hidden state must be float32 [T, " + std::to_string(config_.dim) + "]");
  }
  const BlockRange range = cache.range();
  if (range.first < 0 || range.last > config_.n_layers) {
    return InvalidArgument("KV cache covers blocks outside the model");
  }
  if (!range.empty() && (range.first < held_.first || range.last > held_.last)) {
    return InvalidArgument("blocks " + std::to_string(range.first) + ":" + std::to_string(range.last) +
                           " are not all held: this model holds " + std::to_string(held_.first) + ":" +
                           std::to_string(held_.last));
  }
  const int64_t rows = hidden.size(0), position = cache.length();
  if (position + rows > cache.capacity()) {
    return ResourceExhausted("context full: " + std::to_string(position) + " + " + std::to_string(rows) +
                             " positions exceed the session's capacity of " +
                             std::to_string(cache.capacity()));
  }
  return Status::Ok();
}

namespace {

// Device emulation (TransformerOptions::emulated_slowdown): stretches a computation to `factor` times its
// measured duration by sleeping the difference when it ends, so that one machine can stand in for a slower
// edge device in evaluations. Sleeping leaves the cores to the other process, as a separate device would.
class EmulatedSlowdown {
 public:
  explicit EmulatedSlowdown(float factor) : factor_(factor), start_(std::chrono::steady_clock::now()) {}
  ~EmulatedSlowdown() {
    if (factor_ <= 1) return;
    std::this_thread::sleep_for((std::chrono::steady_clock::now() - start_) * (factor_ - 1));
  }

 private:
  float factor_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace

Status Transformer::RunDecodeBatch(std::span<at::Tensor> hidden, std::span<KvCache* const> caches) const {
  if (hidden.size() != caches.size()) return InvalidArgument("one KV cache per decode step");
  int first = config_.n_layers, last = 0;
  for (size_t i = 0; i < hidden.size(); ++i) {
    const std::string step = "decode step " + std::to_string(i);
    const KvCache& cache = *caches[i];
    TANDEM_RETURN_IF_ERROR(CheckRun(hidden[i], cache).WithContext(step));
    if (hidden[i].size(0) != 1) return InvalidArgument(step + ": one row per decode step");
    for (size_t j = 0; j < i; ++j) {
      if (caches[j] == caches[i]) return InvalidArgument("two decode steps of one KV cache");
    }
    if (!cache.range().empty()) {
      first = std::min(first, cache.range().first);
      last = std::max(last, cache.range().last);
    }
  }
  const EmulatedSlowdown slowdown(options_.emulated_slowdown);
  std::vector<RotaryAngles> angles;  // each step's position, for every block it runs
  for (const KvCache* cache : caches) angles.push_back(Angles(cache->length(), 1));
  for (int index = first; index < last; ++index) {
    // The steps whose range holds this block, their rows gathered into one matrix and scattered back.
    std::vector<size_t> members;
    std::vector<KvCache*> member_caches;
    std::vector<const RotaryAngles*> member_angles;
    for (size_t i = 0; i < caches.size(); ++i) {
      if (caches[i]->range().contains(index)) {
        members.push_back(i);
        member_caches.push_back(caches[i]);
        member_angles.push_back(&angles[i]);
      }
    }
    if (members.empty()) continue;
    std::vector<at::Tensor> rows;
    for (size_t i : members) rows.push_back(hidden[i]);
    at::Tensor x = at::cat(rows);
    RunBlockBatch(block(index), index, x, member_caches, member_angles);
    for (size_t m = 0; m < members.size(); ++m)
      hidden[members[m]].copy_(x.narrow(0, static_cast<int64_t>(m), 1));
  }
  for (KvCache* cache : caches) cache->length_ += 1;
  return Status::Ok();
}

Status Transformer::RunBlocks(at::Tensor& hidden, KvCache& cache) const {
  TANDEM_RETURN_IF_ERROR(CheckRun(hidden, cache));
  const BlockRange range = cache.range();
  const int64_t rows = hidden.size(0), position = cache.length();
  const EmulatedSlowdown slowdown(options_.emulated_slowdown);
  hidden = hidden.contiguous();
  const RotaryAngles angles = Angles(position, rows);
  for (int index = range.first; index < range.last; ++index) {
    RunBlock(block(index), hidden, cache, static_cast<size_t>(index - range.first), position, angles);
  }
  cache.length_ += static_cast<int>(rows);
  return Status::Ok();
}

Status Transformer::RequireHead() const {
  if (holds_head()) return Status::Ok();
  return InvalidArgument("this model's checkpoint holds no head (a block-range checkpoint)");
}

Result<at::Tensor> Transformer::Logits(const at::Tensor& hidden) const {
  TANDEM_RETURN_IF_ERROR(RequireHead());
  const EmulatedSlowdown slowdown(options_.emulated_slowdown);
  return Apply(*classifier_, RmsNorm(hidden, rms_final_));
}

Result<at::Tensor> Transformer::LogitsDecodeBatch(const at::Tensor& hidden) const {
  TANDEM_RETURN_IF_ERROR(RequireHead());
  const EmulatedSlowdown slowdown(options_.emulated_slowdown);
  return std::move(ApplyDecodeBatch({classifier_.get()}, RmsNorm(hidden, rms_final_))[0]);
}

int64_t Transformer::BlockWeightBytes(BlockRange range) const {
  int64_t total = 0;
  for (int index = std::max(range.first, held_.first); index < std::min(range.last, held_.last); ++index) {
    const Block& weights = block(index);
    for (const Linear* linear :
         {&weights.wq, &weights.wk, &weights.wv, &weights.wo, &weights.w1, &weights.w2, &weights.w3}) {
      total += linear->WeightBytes();
    }
  }
  return total;
}

}  // namespace tandem
