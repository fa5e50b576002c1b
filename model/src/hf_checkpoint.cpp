// Checkpoint::Load for Hugging Face model directories: config.json and safetensors weights.
#include <filesystem>
#include <set>

#include "fnv1a.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/model/hf_config.hpp"
#include "tandem/model/safetensors.hpp"

namespace tandem {

struct Checkpoint::HuggingFaceFiles {
  SafetensorsModel weights;
  std::set<std::string> used;  // the tensors the model reads
};

namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

// The blocks a safetensors file holds: all of them, or the range its "tandem.blocks" metadata names (a
// block-range checkpoint, whose "tandem.rope_layout" then sets `config`'s layout).
Result<BlockRange> ReadHeldBlocks(const SafetensorsModel& weights, ModelConfig& config,
                                  const std::string& path) {
  // Tandem writes a block-range checkpoint as one file; the first shard speaks for a sharded model.
  const auto& metadata = weights.files().front()->metadata();
  const auto blocks = metadata.find(std::string(kBlockRangeMetadata));
  if (blocks == metadata.end()) return BlockRange{0, config.n_layers};
  auto range = ParseBlockRange(blocks->second, config.n_layers);
  if (!range.ok() || range->empty()) {
    return InvalidArgument(path + ": metadata tandem.blocks is '" + blocks->second +
                           "', not A:B with 0 <= A < B <= " + std::to_string(config.n_layers));
  }
  const auto layout = metadata.find(std::string(kRopeLayoutMetadata));
  const std::string layout_name = layout == metadata.end() ? "" : layout->second;
  if (layout_name == "interleaved") {
    config.rope_layout = RopeLayout::kInterleaved;
  } else if (layout_name != "halves") {
    return InvalidArgument(path + ": metadata tandem.rope_layout must be 'interleaved' or 'halves', not '" +
                           layout_name + "'");
  }
  return *range;
}

// Tensors some exports carry that the arithmetic does not read (rotary tables the runtime computes).
bool IsIgnorable(const std::string& name) {
  return name.ends_with(".rotary_emb.inv_freq");
}

}  // namespace

Result<const float*> Checkpoint::HfTensor(const std::string& name, std::vector<int64_t> shape) {
  TANDEM_ASSIGN_OR_RETURN(const SafetensorsModel::Tensor tensor, hf_->weights.Get(name));
  const std::string where = tensor.file->path() + ": tensor " + name;
  if (tensor.info->shape != shape) {
    return InvalidArgument(where + " has shape " + ShapeText(tensor.info->shape) + ", config.json implies " +
                           ShapeText(shape));
  }
  const TensorDtype dtype = tensor.info->dtype;
  if (dtype != TensorDtype::kF32 && dtype != TensorDtype::kF16 && dtype != TensorDtype::kBF16) {
    return InvalidArgument(where + " has dtype " + std::string(TensorDtypeName(dtype)) +
                           " (weights must be F32, F16 or BF16)");
  }
  hf_->used.insert(name);
  const auto count = static_cast<size_t>(tensor.info->elements());
  // F32 in place, when aligned for float (the reference writer aligns the data section to 8 bytes).
  if (dtype == TensorDtype::kF32 && reinterpret_cast<uintptr_t>(tensor.bytes.data()) % alignof(float) == 0) {
    return reinterpret_cast<const float*>(tensor.bytes.data());
  }
  std::vector<float> widened(count);
  TANDEM_RETURN_IF_ERROR(ConvertToFloat32(dtype, tensor.bytes, widened.data(), count));
  const float* data = widened.data();
  std::lock_guard lock(widened_mutex_);
  widened_.emplace(data, std::move(widened));
  return data;
}

Result<std::shared_ptr<const Checkpoint>> Checkpoint::LoadHuggingFace(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const std::string directory = fs::is_directory(path, error) ? path : fs::path(path).parent_path().string();
  TANDEM_ASSIGN_OR_RETURN(const HfModelConfig hf, LoadHfConfig(directory.empty() ? "." : directory));
  TANDEM_ASSIGN_OR_RETURN(SafetensorsModel weights, SafetensorsModel::Open(path));

  ModelConfig config = hf.shape;
  TANDEM_ASSIGN_OR_RETURN(const BlockRange held, ReadHeldBlocks(weights, config, path));
  std::shared_ptr<Checkpoint> checkpoint(new Checkpoint(path, Format::kHuggingFace, config));
  checkpoint->hf_ = std::make_shared<HuggingFaceFiles>(HuggingFaceFiles{std::move(weights), {}});
  Checkpoint& c = *checkpoint;
  c.held_ = held;
  const int64_t d = config.dim, h = config.hidden_dim, q = config.q_dim(), kv = config.kv_dim();
  const int64_t vocab = config.vocab_size;
  const bool head = held.last == config.n_layers;

  if (BlockRangeHoldsEmbedding(config, held)) {
    TANDEM_ASSIGN_OR_RETURN(c.token_embedding_, c.HfTensor("model.embed_tokens.weight", {vocab, d}));
  }
  c.blocks_.resize(static_cast<size_t>(config.n_layers));
  for (int layer = held.first; layer < held.last; ++layer) {
    const std::string prefix = "model.layers." + std::to_string(layer) + ".";
    BlockWeights& b = c.blocks_[static_cast<size_t>(layer)];
    auto take = [&](const float*& out, const std::string& name, std::vector<int64_t> shape) -> Status {
      TANDEM_ASSIGN_OR_RETURN(out, c.HfTensor(prefix + name, std::move(shape)));
      return Status::Ok();
    };
    TANDEM_RETURN_IF_ERROR(take(b.rms_att, "input_layernorm.weight", {d}));
    TANDEM_RETURN_IF_ERROR(take(b.wq, "self_attn.q_proj.weight", {q, d}));
    TANDEM_RETURN_IF_ERROR(take(b.wk, "self_attn.k_proj.weight", {kv, d}));
    TANDEM_RETURN_IF_ERROR(take(b.wv, "self_attn.v_proj.weight", {kv, d}));
    TANDEM_RETURN_IF_ERROR(take(b.wo, "self_attn.o_proj.weight", {d, q}));
    if (config.qkv_bias) {
      TANDEM_RETURN_IF_ERROR(take(b.bq, "self_attn.q_proj.bias", {q}));
      TANDEM_RETURN_IF_ERROR(take(b.bk, "self_attn.k_proj.bias", {kv}));
      TANDEM_RETURN_IF_ERROR(take(b.bv, "self_attn.v_proj.bias", {kv}));
    }
    if (config.output_bias) TANDEM_RETURN_IF_ERROR(take(b.bo, "self_attn.o_proj.bias", {d}));
    TANDEM_RETURN_IF_ERROR(take(b.rms_ffn, "post_attention_layernorm.weight", {d}));
    TANDEM_RETURN_IF_ERROR(take(b.w1, "mlp.gate_proj.weight", {h, d}));
    TANDEM_RETURN_IF_ERROR(take(b.w2, "mlp.down_proj.weight", {d, h}));
    TANDEM_RETURN_IF_ERROR(take(b.w3, "mlp.up_proj.weight", {h, d}));
  }
  if (head) {
    TANDEM_ASSIGN_OR_RETURN(c.rms_final_, c.HfTensor("model.norm.weight", {d}));
    if (config.shared_classifier) {
      c.classifier_ = c.token_embedding_;
      // Some exports store the tied head anyway; it is the embedding, so it is not read.
      if (c.hf_->weights.Contains("lm_head.weight")) c.hf_->used.insert("lm_head.weight");
    } else {
      TANDEM_ASSIGN_OR_RETURN(c.classifier_, c.HfTensor("lm_head.weight", {vocab, d}));
    }
  }

  // A tensor the config does not account for means a model this runtime would compute wrong.
  for (const std::string& name : c.hf_->weights.names()) {
    if (c.hf_->used.count(name) == 0 && !IsIgnorable(name)) {
      return InvalidArgument(path + ": tensor " + name + " is not part of the model config.json describes (" +
                             config.ToString() + ")");
    }
  }
  return std::shared_ptr<const Checkpoint>(std::move(checkpoint));
}

uint64_t Checkpoint::HuggingFaceFingerprint() const {
  const std::string description = "hf " + config_.ToString();
  uint64_t hash = Fnv1a64(std::as_bytes(std::span(description)));
  for (const std::string& name : hf_->used) {  // a std::set: name order
    const SafetensorsModel::Tensor tensor = *hf_->weights.Get(name);
    const std::string header = name + " " + std::string(TensorDtypeName(tensor.info->dtype));
    hash = Fnv1a64(std::as_bytes(std::span(header)), hash);
    hash = Fnv1a64(tensor.bytes, hash);
  }
  return hash;
}

void Checkpoint::ReleaseMappedHuggingFace(const float* weights, size_t count) const {
  const auto* begin = reinterpret_cast<const std::byte*>(weights);
  for (const auto& file : hf_->weights.files()) {
    const auto mapped = file->file().bytes();
    if (begin >= mapped.data() && begin + count * sizeof(float) <= mapped.data() + mapped.size()) {
      file->file().Release(weights, count * sizeof(float));
      return;
    }
  }
}

}  // namespace tandem
