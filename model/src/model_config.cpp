#include "tandem/model/model_config.hpp"

#include <charconv>

#include <sstream>

namespace tandem {
namespace {
// Far above any real model, far below where int64 products of these could overflow.
constexpr int32_t kMaxDim = 1 << 16;
constexpr int32_t kMaxLayers = 1 << 10;
constexpr int32_t kMaxVocab = 1 << 22;
constexpr int32_t kMaxSeqLen = 1 << 20;
}  // namespace

int64_t ModelConfig::BlockParameterCount() const {
  const int64_t d = dim, h = hidden_dim, q = q_dim(), kv = kv_dim();
  return 2 * d         // rms_att, rms_ffn
         + 2 * q * d   // wq, wo
         + 2 * kv * d  // wk, wv
         + 3 * h * d   // w1, w2, w3
         + (qkv_bias ? q + 2 * kv : 0) + (output_bias ? d : 0);
}

int64_t ModelConfig::ParameterCount() const {
  const int64_t embedding = int64_t{vocab_size} * dim;
  return embedding + n_layers * BlockParameterCount() + dim + (shared_classifier ? 0 : embedding);
}

Status ModelConfig::Validate() const {
  auto in_range = [](int64_t value, int64_t max) { return value > 0 && value <= max; };
  if (!in_range(dim, kMaxDim)) return InvalidArgument("dim " + std::to_string(dim) + " out of range");
  if (!in_range(hidden_dim, 8 * kMaxDim))
    return InvalidArgument("hidden_dim " + std::to_string(hidden_dim) + " out of range");
  if (!in_range(n_layers, kMaxLayers))
    return InvalidArgument("n_layers " + std::to_string(n_layers) + " out of range");
  if (!in_range(n_heads, dim) || (explicit_head_dim == 0 && dim % n_heads != 0))
    return InvalidArgument("n_heads " + std::to_string(n_heads) + " does not divide dim " +
                           std::to_string(dim));
  if (explicit_head_dim < 0 || explicit_head_dim > kMaxDim)
    return InvalidArgument("head_dim " + std::to_string(explicit_head_dim) + " out of range");
  if (head_dim() % 2 != 0)
    return InvalidArgument("head size " + std::to_string(head_dim()) + " is odd (rotary pairs)");
  if (!in_range(n_kv_heads, n_heads) || n_heads % n_kv_heads != 0)
    return InvalidArgument("n_kv_heads " + std::to_string(n_kv_heads) + " does not divide n_heads " +
                           std::to_string(n_heads));
  if (!in_range(vocab_size, kMaxVocab))
    return InvalidArgument("vocab_size " + std::to_string(vocab_size) + " out of range");
  if (!in_range(seq_len, kMaxSeqLen))
    return InvalidArgument("seq_len " + std::to_string(seq_len) + " out of range");
  if (!(rms_norm_eps > 0 && rms_norm_eps < 1))
    return InvalidArgument("rms_norm_eps " + std::to_string(rms_norm_eps) + " out of range (0, 1)");
  if (!(rope_theta > 1 && rope_theta < 1e12f))
    return InvalidArgument("rope_theta " + std::to_string(rope_theta) + " out of range (1, 1e12)");
  if (rope_scaling.enabled()) {
    const RopeScaling& r = rope_scaling;
    if (!(r.factor >= 1 && r.low_freq_factor > 0 && r.high_freq_factor > r.low_freq_factor &&
          r.original_max_positions > 0))
      return InvalidArgument(
          "llama3 rope_scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor "
          "and original_max_position_embeddings > 0");
  }
  return Status::Ok();
}

std::string ModelConfig::ToString() const {
  std::ostringstream out;
  out << "dim=" << dim << " hidden=" << hidden_dim << " layers=" << n_layers << " heads=" << n_heads
      << " kv_heads=" << n_kv_heads << " vocab=" << vocab_size << " seq_len=" << seq_len
      << " classifier=" << (shared_classifier ? "shared" : "separate");
  if (explicit_head_dim > 0) out << " head_dim=" << explicit_head_dim;
  if (rope_layout == RopeLayout::kHalves) out << " rope=halves";
  if (rope_theta != 10000.0f) out << " theta=" << rope_theta;
  if (rms_norm_eps != 1e-5f) out << " eps=" << rms_norm_eps;
  if (rope_scaling.enabled()) {
    out << " llama3_scaling=" << rope_scaling.factor << "/" << rope_scaling.low_freq_factor << "/"
        << rope_scaling.high_freq_factor << "/" << rope_scaling.original_max_positions;
  }
  if (qkv_bias) out << " qkv_bias";
  if (output_bias) out << " output_bias";
  return out.str();
}

Result<BlockRange> ParseBlockRange(const std::string& text, int n_layers) {
  if (text.empty()) return BlockRange{};
  const auto colon = text.find(':');
  int first = 0, last = 0;
  const char* end = text.data() + text.size();
  auto parse = [](const char* begin, const char* stop, int& out) {
    auto [ptr, error] = std::from_chars(begin, stop, out);
    return error == std::errc() && ptr == stop && begin != stop;
  };
  if (colon == std::string::npos || !parse(text.data(), text.data() + colon, first) ||
      !parse(text.data() + colon + 1, end, last)) {
    return InvalidArgument("block range '" + text + "' is not of the form A:B");
  }
  if (first < 0 || first > last || last > n_layers) {
    return InvalidArgument("block range " + text + " is not within 0:" + std::to_string(n_layers));
  }
  return BlockRange{first, last};
}

}  // namespace tandem
