#include "tandem/model/checkpoint.hpp"

#include "fnv1a.hpp"

#include <array>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

namespace tandem {
namespace {

constexpr size_t kHeaderInts = 7;
constexpr size_t kHeaderBytes = kHeaderInts * sizeof(int32_t);

// Walks the float32 section of the file in llama2.c order, handing out one tensor at a time.
class TensorCursor {
 public:
  explicit TensorCursor(const float* start) : next_(start) {}
  const float* Take(int64_t count) {
    const float* tensor = next_;
    next_ += count;
    return tensor;
  }

 private:
  const float* next_;
};

}  // namespace

Result<uint64_t> Checkpoint::ExpectedFileSize(const ModelConfig& config) {
  TANDEM_RETURN_IF_ERROR(config.Validate());
  const int64_t rope_tables = int64_t{config.seq_len} * config.head_dim();  // real + imag halves
  const int64_t floats = config.ParameterCount() + rope_tables;
  return kHeaderBytes + static_cast<uint64_t>(floats) * sizeof(float);
}

bool Checkpoint::IsHuggingFacePath(const std::string& path) {
  std::error_code error;
  return std::filesystem::is_directory(path, error) ||
         std::filesystem::path(path).extension() == ".safetensors";
}

Result<std::shared_ptr<const Checkpoint>> Checkpoint::Load(const std::string& path) {
  return IsHuggingFacePath(path) ? LoadHuggingFace(path) : LoadLlama2c(path);
}

Result<std::shared_ptr<const Checkpoint>> Checkpoint::LoadLlama2c(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(MappedFile file, MappedFile::Open(path));
  const std::string& name = path;
  if (file.size() < kHeaderBytes) {
    return InvalidArgument(name + ": truncated: " + std::to_string(file.size()) +
                           " bytes, shorter than the 28-byte llama2.c header");
  }
  std::array<int32_t, kHeaderInts> header{};
  std::memcpy(header.data(), file.bytes().data(), kHeaderBytes);

  ModelConfig config;
  config.dim = header[0];
  config.hidden_dim = header[1];
  config.n_layers = header[2];
  config.n_heads = header[3];
  config.n_kv_heads = header[4];
  config.shared_classifier = header[5] > 0;
  config.vocab_size = header[5] == std::numeric_limits<int32_t>::min() ? 0 : std::abs(header[5]);
  config.seq_len = header[6];
  if (Status valid = config.Validate(); !valid.ok()) {
    return InvalidArgument(name + ": corrupt header: " + valid.message());
  }
  const uint64_t expected = Checkpoint::ExpectedFileSize(config).value();
  if (file.size() != expected) {
    const bool short_file = file.size() < expected;
    return InvalidArgument(name + ": " + (short_file ? "truncated" : "inconsistent") + ": file has " +
                           std::to_string(file.size()) + " bytes, header (" + config.ToString() +
                           ") implies " + std::to_string(expected));
  }

  std::shared_ptr<Checkpoint> checkpoint(new Checkpoint(path, Format::kLlama2c, config));
  checkpoint->file_.emplace(std::move(file));
  const auto* floats = reinterpret_cast<const float*>(checkpoint->file_->bytes().data() + kHeaderBytes);
  TensorCursor cursor(floats);
  const int64_t d = config.dim, h = config.hidden_dim, kv = config.kv_dim(), layers = config.n_layers;
  checkpoint->token_embedding_ = cursor.Take(int64_t{config.vocab_size} * d);
  checkpoint->blocks_.resize(static_cast<size_t>(layers));
  checkpoint->held_ = {0, config.n_layers};
  // Each weight kind is stored for all layers before the next kind begins.
  auto take_per_layer = [&](const float* BlockWeights::*member, int64_t count) {
    for (auto& block : checkpoint->blocks_) block.*member = cursor.Take(count);
  };
  take_per_layer(&BlockWeights::rms_att, d);
  take_per_layer(&BlockWeights::wq, d * d);
  take_per_layer(&BlockWeights::wk, kv * d);
  take_per_layer(&BlockWeights::wv, kv * d);
  take_per_layer(&BlockWeights::wo, d * d);
  take_per_layer(&BlockWeights::rms_ffn, d);
  take_per_layer(&BlockWeights::w1, h * d);
  take_per_layer(&BlockWeights::w2, d * h);
  take_per_layer(&BlockWeights::w3, h * d);
  checkpoint->rms_final_ = cursor.Take(d);
  cursor.Take(int64_t{config.seq_len} * config.head_dim());  // legacy freq_cis_real/imag
  checkpoint->classifier_ =
      config.shared_classifier ? checkpoint->token_embedding_ : cursor.Take(int64_t{config.vocab_size} * d);
  return std::shared_ptr<const Checkpoint>(std::move(checkpoint));
}

uint64_t Fnv1a64(std::span<const std::byte> bytes, uint64_t hash) {
  // FNV-1a over 64-bit words (and the tail bytes): cheap, stable, and changes with any weight bit.
  constexpr uint64_t kPrime = 1099511628211ULL;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    hash = (hash ^ word) * kPrime;
  }
  for (; i < bytes.size(); ++i) hash = (hash ^ static_cast<uint8_t>(bytes[i])) * kPrime;
  return hash;
}

uint64_t Checkpoint::Fingerprint() const {
  if (format_ == Format::kLlama2c) return Fnv1a64(file_->bytes());
  return HuggingFaceFingerprint();
}

bool BlockRangeHoldsEmbedding(const ModelConfig& config, BlockRange held) {
  return held.first == 0 || (held.last == config.n_layers && config.shared_classifier);
}

std::vector<uint64_t> WeightFingerprints::List() const {
  std::vector<uint64_t> list = blocks;
  list.push_back(head);
  return list;
}

WeightFingerprints Checkpoint::HashWeights() const {
  const int64_t d = config_.dim, h = config_.hidden_dim, q = config_.q_dim(), kv = config_.kv_dim();
  const auto hash = [](std::initializer_list<std::pair<const float*, int64_t>> tensors) {
    uint64_t value = kFnv1a64Offset;
    for (const auto& [data, count] : tensors) {
      if (data == nullptr) continue;  // an absent bias
      value = Fnv1a64({reinterpret_cast<const std::byte*>(data), static_cast<size_t>(count) * sizeof(float)},
                      value);
    }
    return value;
  };
  WeightFingerprints fingerprints;
  fingerprints.blocks.assign(static_cast<size_t>(config_.n_layers), 0);
  for (int index = held_.first; index < held_.last; ++index) {
    const BlockWeights& b = blocks_[static_cast<size_t>(index)];
    fingerprints.blocks[static_cast<size_t>(index)] = hash({{b.rms_att, d},
                                                            {b.wq, q * d},
                                                            {b.wk, kv * d},
                                                            {b.wv, kv * d},
                                                            {b.wo, d * q},
                                                            {b.bq, q},
                                                            {b.bk, kv},
                                                            {b.bv, kv},
                                                            {b.bo, d},
                                                            {b.rms_ffn, d},
                                                            {b.w1, h * d},
                                                            {b.w2, d * h},
                                                            {b.w3, h * d}});
  }
  if (holds_head())
    fingerprints.head = hash({{rms_final_, d}, {classifier_, int64_t{config_.vocab_size} * d}});
  return fingerprints;
}

void Checkpoint::ReleaseWeights(const float* weights, size_t count) const {
  if (file_) {
    file_->Release(weights, count * sizeof(float));
    return;
  }
  std::lock_guard lock(widened_mutex_);
  if (auto it = widened_.find(weights); it != widened_.end()) {
    widened_.erase(it);
  } else {
    ReleaseMappedHuggingFace(weights, count);
  }
}

Status WriteRandomCheckpoint(const std::string& path, const ModelConfig& config, uint64_t seed, float std) {
  TANDEM_RETURN_IF_ERROR(config.Validate());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return InvalidArgument(path + ": cannot open for writing");
  const std::array<int32_t, kHeaderInts> header = {
      config.dim,     config.hidden_dim, config.n_layers,
      config.n_heads, config.n_kv_heads, config.shared_classifier ? config.vocab_size : -config.vocab_size,
      config.seq_len};
  out.write(reinterpret_cast<const char*>(header.data()), kHeaderBytes);

  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, std);
  std::vector<float> chunk;
  auto write = [&](int64_t count, bool ones) {
    while (count > 0) {
      const int64_t n = std::min<int64_t>(count, 1 << 20);
      chunk.resize(static_cast<size_t>(n));
      for (auto& value : chunk) value = ones ? 1.0f : normal(rng);
      out.write(reinterpret_cast<const char*>(chunk.data()), n * static_cast<int64_t>(sizeof(float)));
      count -= n;
    }
  };
  const int64_t d = config.dim, h = config.hidden_dim, kv = config.kv_dim(), layers = config.n_layers;
  write(int64_t{config.vocab_size} * d, false);               // token embedding
  write(layers * d, true);                                    // rms_att
  write(layers * d * d, false);                               // wq
  write(layers * kv * d * 2, false);                          // wk, wv
  write(layers * d * d, false);                               // wo
  write(layers * d, true);                                    // rms_ffn
  write(layers * h * d * 3, false);                           // w1, w2, w3
  write(d, true);                                             // rms_final
  write(int64_t{config.seq_len} * config.head_dim(), false);  // legacy RoPE tables (unused)
  if (!config.shared_classifier) write(int64_t{config.vocab_size} * d, false);
  out.close();
  if (!out) return Internal(path + ": write failed");
  return Status::Ok();
}

}  // namespace tandem
