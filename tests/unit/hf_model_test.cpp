// Hugging Face models through Checkpoint::Load and the Transformer, against an independent float64
// reference written here from the Hugging Face modeling code's arithmetic (rotate_half rotary embedding,
// Llama 3 frequency scaling, q/k/v biases, grouped-query attention, SwiGLU, RMSNorm): a Qwen2-style and a
// Llama-3-style tiny random model, run whole and split, must agree with it within 1e-4 on every logit.
// Then config.json and weights that do not fit together are refused with errors naming the problem.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "tandem/engine/transformer.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/model/hf_config.hpp"
#include "tandem/model/safetensors.hpp"
#include "test_env.hpp"

namespace tandem {
namespace {

using nlohmann::json;
using Matrix = std::vector<double>;  // row-major

// A tiny model's shape and the config.json describing it.
struct TinyModel {
  std::string architecture;  // LlamaForCausalLM or Qwen2ForCausalLM
  int dim, hidden, layers, heads, kv_heads, head_dim, vocab, positions;
  double eps, theta;
  bool tied, qkv_bias;
  json rope_scaling;  // null or a llama3 object
  TensorDtype dtype;  // how the weights are stored

  json Config() const {
    return {{"architectures", {architecture}},
            {"model_type", architecture == "Qwen2ForCausalLM" ? "qwen2" : "llama"},
            {"hidden_size", dim},
            {"intermediate_size", hidden},
            {"num_hidden_layers", layers},
            {"num_attention_heads", heads},
            {"num_key_value_heads", kv_heads},
            {"head_dim", head_dim},
            {"vocab_size", vocab},
            {"max_position_embeddings", positions},
            {"rms_norm_eps", eps},
            {"rope_theta", theta},
            {"rope_scaling", rope_scaling},
            {"tie_word_embeddings", tied},
            {"hidden_act", "silu"}};
  }
};

// Qwen2.5-0.5B's peculiarities: q/k/v biases, tied embeddings, rope_theta 1e6, a head size that is not
// dim / heads.
TinyModel QwenStyle() {
  return {"Qwen2ForCausalLM", 24, 40, 2, 4, 2, 8, 50, 64, 1e-6, 1e6, true, true, nullptr, TensorDtype::kF32};
}

// Llama 3.2's: llama3 rope scaling, a separate lm_head, bfloat16 weights. With head_dim 8 and theta 5e5 the
// wavelengths are 6.3, 167, 4457 and 118000 positions: against an original context of 256 (bands at 64 and
// 256) the first is kept, the second blended, the last two divided by the factor.
TinyModel Llama3Style() {
  json scaling = {{"rope_type", "llama3"},
                  {"factor", 8.0},
                  {"low_freq_factor", 1.0},
                  {"high_freq_factor", 4.0},
                  {"original_max_position_embeddings", 256}};
  return {"LlamaForCausalLM", 32, 48, 2, 4, 1, 8, 60, 128, 1e-5, 500000.0, false, false, scaling,
          TensorDtype::kBF16};
}

// Rounds to bfloat16 (round to nearest even), as the stored weights are.
float ToBFloat16(float value, std::vector<std::byte>& out) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  const uint32_t rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16;
  const auto half = static_cast<uint16_t>(rounded);
  const auto* bytes = reinterpret_cast<const std::byte*>(&half);
  out.insert(out.end(), bytes, bytes + 2);
  const uint32_t widened = rounded << 16;
  float result;
  std::memcpy(&result, &widened, 4);
  return result;
}

// The weights: random values as written (after bfloat16 rounding), kept in double for the reference.
class Weights {
 public:
  Weights(const TinyModel& model, uint64_t seed) : model_(model), rng_(seed) {}

  const Matrix& Add(const std::string& name, std::vector<int64_t> shape, double scale, double offset = 0) {
    int64_t count = 1;
    for (int64_t size : shape) count *= size;
    std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
    Matrix& values = values_[name];
    std::vector<std::byte>& bytes = bytes_[name];
    for (int64_t i = 0; i < count; ++i) {
      float value = static_cast<float>(offset) + normal(rng_);
      if (model_.dtype == TensorDtype::kBF16) {
        value = ToBFloat16(value, bytes);
      } else {
        const auto* raw = reinterpret_cast<const std::byte*>(&value);
        bytes.insert(bytes.end(), raw, raw + 4);
      }
      values.push_back(value);
    }
    shapes_[name] = std::move(shape);
    order_.push_back(name);
    return values;
  }
  const Matrix& operator[](const std::string& name) const { return values_.at(name); }
  bool Has(const std::string& name) const { return values_.count(name) != 0; }

  Status Write(const std::string& path) const {
    std::vector<TensorToWrite> tensors;
    for (const std::string& name : order_) {
      tensors.push_back({name, model_.dtype, shapes_.at(name), bytes_.at(name)});
    }
    return WriteSafetensors(path, tensors);
  }

 private:
  const TinyModel& model_;
  std::mt19937 rng_;
  std::vector<std::string> order_;
  std::map<std::string, Matrix> values_;
  std::map<std::string, std::vector<std::byte>> bytes_;
  std::map<std::string, std::vector<int64_t>> shapes_;
};

Weights RandomWeights(const TinyModel& m, uint64_t seed) {
  Weights w(m, seed);
  const int64_t q = m.heads * m.head_dim, kv = m.kv_heads * m.head_dim;
  w.Add("model.embed_tokens.weight", {m.vocab, m.dim}, 0.5);
  for (int layer = 0; layer < m.layers; ++layer) {
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    w.Add(p + "input_layernorm.weight", {m.dim}, 0.1, 1.0);
    w.Add(p + "self_attn.q_proj.weight", {q, m.dim}, 0.3);
    w.Add(p + "self_attn.k_proj.weight", {kv, m.dim}, 0.3);
    w.Add(p + "self_attn.v_proj.weight", {kv, m.dim}, 0.3);
    if (m.qkv_bias) {
      w.Add(p + "self_attn.q_proj.bias", {q}, 0.2);
      w.Add(p + "self_attn.k_proj.bias", {kv}, 0.2);
      w.Add(p + "self_attn.v_proj.bias", {kv}, 0.2);
    }
    w.Add(p + "self_attn.o_proj.weight", {m.dim, q}, 0.3);
    w.Add(p + "post_attention_layernorm.weight", {m.dim}, 0.1, 1.0);
    w.Add(p + "mlp.gate_proj.weight", {m.hidden, m.dim}, 0.3);
    w.Add(p + "mlp.up_proj.weight", {m.hidden, m.dim}, 0.3);
    w.Add(p + "mlp.down_proj.weight", {m.dim, m.hidden}, 0.3);
  }
  w.Add("model.norm.weight", {m.dim}, 0.1, 1.0);
  if (!m.tied) w.Add("lm_head.weight", {m.vocab, m.dim}, 0.3);
  return w;
}

// ---- The float64 reference: Hugging Face's LlamaForCausalLM / Qwen2ForCausalLM, written out. ----

std::vector<double> MatVec(const Matrix& w, const std::vector<double>& x, int64_t out) {
  const auto in = static_cast<int64_t>(x.size());
  std::vector<double> y(static_cast<size_t>(out), 0.0);
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) y[o] += w[o * in + i] * x[i];
  }
  return y;
}

std::vector<double> RmsNorm(const std::vector<double>& x, const Matrix& gain, double eps) {
  double squares = 0;
  for (double v : x) squares += v * v;
  const double inverse = 1.0 / std::sqrt(squares / static_cast<double>(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = gain[i] * x[i] * inverse;
  return y;
}

// transformers' _compute_default_rope_parameters and _compute_llama3_parameters.
std::vector<double> InverseFrequencies(const TinyModel& m) {
  std::vector<double> inv(static_cast<size_t>(m.head_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i) inv[i] = 1.0 / std::pow(m.theta, 2.0 * i / m.head_dim);
  if (m.rope_scaling.is_null()) return inv;
  const double factor = m.rope_scaling["factor"], low = m.rope_scaling["low_freq_factor"],
               high = m.rope_scaling["high_freq_factor"],
               original = m.rope_scaling["original_max_position_embeddings"];
  for (double& f : inv) {
    const double wavelength = 2 * M_PI / f;
    if (wavelength < original / high) continue;
    if (wavelength > original / low) {
      f /= factor;
    } else {
      const double smooth = (original / wavelength - low) / (high - low);
      f = (1 - smooth) * f / factor + smooth * f;
    }
  }
  return inv;
}

// q * cos + rotate_half(q) * sin on every head of `v` ([heads * head_dim]).
void RotateHalf(std::vector<double>& v, int heads, int head_dim, const std::vector<double>& inv, int pos) {
  const int half = head_dim / 2;
  for (int h = 0; h < heads; ++h) {
    double* x = v.data() + h * head_dim;
    for (int i = 0; i < half; ++i) {
      const double c = std::cos(pos * inv[i]), s = std::sin(pos * inv[i]);
      const double a = x[i], b = x[i + half];
      x[i] = a * c - b * s;
      x[i + half] = b * c + a * s;
    }
  }
}

void AddBias(std::vector<double>& v, const Weights& w, const std::string& name) {
  if (!w.Has(name)) return;
  for (size_t i = 0; i < v.size(); ++i) v[i] += w[name][i];
}

// Logits [tokens.size()][vocab] of a causal pass over `tokens` from position 0.
std::vector<std::vector<double>> ReferenceLogits(const TinyModel& m, const Weights& w,
                                                 const std::vector<int>& tokens) {
  const int q_dim = m.heads * m.head_dim, kv_dim = m.kv_heads * m.head_dim, group = m.heads / m.kv_heads;
  const std::vector<double> inv = InverseFrequencies(m);
  std::vector<std::vector<std::vector<double>>> keys(m.layers), values(m.layers);  // [layer][pos][kv]
  std::vector<std::vector<double>> logits;
  for (size_t pos = 0; pos < tokens.size(); ++pos) {
    const Matrix& embedding = w["model.embed_tokens.weight"];
    std::vector<double> x(embedding.begin() + tokens[pos] * m.dim,
                          embedding.begin() + (tokens[pos] + 1) * m.dim);
    for (int layer = 0; layer < m.layers; ++layer) {
      const std::string p = "model.layers." + std::to_string(layer) + ".";
      const std::vector<double> h = RmsNorm(x, w[p + "input_layernorm.weight"], m.eps);
      std::vector<double> q = MatVec(w[p + "self_attn.q_proj.weight"], h, q_dim);
      std::vector<double> k = MatVec(w[p + "self_attn.k_proj.weight"], h, kv_dim);
      std::vector<double> v = MatVec(w[p + "self_attn.v_proj.weight"], h, kv_dim);
      AddBias(q, w, p + "self_attn.q_proj.bias");
      AddBias(k, w, p + "self_attn.k_proj.bias");
      AddBias(v, w, p + "self_attn.v_proj.bias");
      RotateHalf(q, m.heads, m.head_dim, inv, static_cast<int>(pos));
      RotateHalf(k, m.kv_heads, m.head_dim, inv, static_cast<int>(pos));
      keys[layer].push_back(k);
      values[layer].push_back(v);
      std::vector<double> attended(static_cast<size_t>(q_dim), 0.0);
      for (int head = 0; head < m.heads; ++head) {
        const int kv_head = head / group;
        std::vector<double> scores;
        for (size_t s = 0; s <= pos; ++s) {
          double dot = 0;
          for (int i = 0; i < m.head_dim; ++i) {
            dot += q[head * m.head_dim + i] * keys[layer][s][kv_head * m.head_dim + i];
          }
          scores.push_back(dot / std::sqrt(static_cast<double>(m.head_dim)));
        }
        const double max_score = *std::max_element(scores.begin(), scores.end());
        double total = 0;
        for (double& score : scores) total += (score = std::exp(score - max_score));
        for (size_t s = 0; s <= pos; ++s) {
          for (int i = 0; i < m.head_dim; ++i) {
            attended[head * m.head_dim + i] += scores[s] / total * values[layer][s][kv_head * m.head_dim + i];
          }
        }
      }
      const std::vector<double> out = MatVec(w[p + "self_attn.o_proj.weight"], attended, m.dim);
      for (int i = 0; i < m.dim; ++i) x[i] += out[i];
      const std::vector<double> h2 = RmsNorm(x, w[p + "post_attention_layernorm.weight"], m.eps);
      std::vector<double> gate = MatVec(w[p + "mlp.gate_proj.weight"], h2, m.hidden);
      const std::vector<double> up = MatVec(w[p + "mlp.up_proj.weight"], h2, m.hidden);
      for (int i = 0; i < m.hidden; ++i) gate[i] = gate[i] / (1 + std::exp(-gate[i])) * up[i];
      const std::vector<double> down = MatVec(w[p + "mlp.down_proj.weight"], gate, m.dim);
      for (int i = 0; i < m.dim; ++i) x[i] += down[i];
    }
    const std::vector<double> normed = RmsNorm(x, w["model.norm.weight"], m.eps);
    logits.push_back(MatVec(w[m.tied ? "model.embed_tokens.weight" : "lm_head.weight"], normed, m.vocab));
  }
  return logits;
}

// ---- The tests. ----

class HfModelTest : public ::testing::TestWithParam<TinyModel> {
 protected:
  // A model directory with config.json and model.safetensors.
  std::string WriteModel(const TinyModel& model, const Weights& weights) {
    testing::WriteBytes(dir_.path() / "config.json", model.Config().dump(2));
    const Status written = weights.Write((dir_.path() / "model.safetensors").string());
    EXPECT_TRUE(written.ok()) << written.ToString();
    return dir_.path().string();
  }
  testing::TempDir dir_;
};

double MaxAbsDifference(const at::Tensor& logits, const std::vector<std::vector<double>>& expected,
                        size_t first_row) {
  double worst = 0;
  const at::Tensor values = logits.to(at::kDouble).contiguous();
  for (int64_t r = 0; r < values.size(0); ++r) {
    for (int64_t v = 0; v < values.size(1); ++v) {
      worst = std::max(worst, std::abs(values[r][v].item<double>() - expected[first_row + r][v]));
    }
  }
  return worst;
}

TEST_P(HfModelTest, AgreesWithTheFloat64Reference) {
  const TinyModel model = GetParam();
  const Weights weights = RandomWeights(model, 7);
  auto checkpoint = Checkpoint::Load(WriteModel(model, weights));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status().ToString();
  EXPECT_EQ((*checkpoint)->format(), Checkpoint::Format::kHuggingFace);
  ASSERT_EQ((*checkpoint)->config().rope_layout, RopeLayout::kHalves) << "interleaved is not the HF rotary";
  auto transformer = Transformer::Create(*checkpoint);
  ASSERT_TRUE(transformer.ok()) << transformer.status().ToString();
  const Transformer& runtime = **transformer;

  // A prefill of five positions, then three decode steps.
  const std::vector<int> tokens = {3, 17, 42, 5, 29, 11, 48, 0};
  const auto expected = ReferenceLogits(model, weights, tokens);

  double worst = 0;  // over every check below
  const auto check = [&](const at::Tensor& logits, size_t first_row) {
    const double error = MaxAbsDifference(logits, expected, first_row);
    worst = std::max(worst, error);
    return error;
  };
  KvCache cache(runtime.config(), {0, runtime.n_layers()}, 16);
  auto hidden = runtime.Embed(std::span(tokens).first(5));
  ASSERT_TRUE(hidden.ok());
  ASSERT_TRUE(runtime.RunBlocks(*hidden, cache).ok());
  EXPECT_LT(check(*runtime.Logits(*hidden), 0), 1e-4);
  for (size_t pos = 5; pos < tokens.size(); ++pos) {
    auto step = runtime.Embed(std::span(tokens).subspan(pos, 1));
    ASSERT_TRUE(step.ok());
    ASSERT_TRUE(runtime.RunBlocks(*step, cache).ok());
    EXPECT_LT(check(*runtime.Logits(*step), pos), 1e-4) << "position " << pos;
  }

  // Cut after block 1, each side with its own cache: the same logits.
  KvCache head(runtime.config(), {0, 1}, 16), tail(runtime.config(), {1, runtime.n_layers()}, 16);
  auto split = runtime.Embed(tokens);
  ASSERT_TRUE(split.ok());
  ASSERT_TRUE(runtime.RunBlocks(*split, head).ok());
  ASSERT_TRUE(runtime.RunBlocks(*split, tail).ok());
  EXPECT_LT(check(*runtime.Logits(*split), 0), 1e-4);
  std::cout << "[   INFO   ] max |logit - float64 reference| = " << worst << " over " << tokens.size()
            << " positions x " << model.vocab << " logits" << std::endl;
}

TEST_P(HfModelTest, TheSameWeightsHaveTheSameFingerprintAndOthersAnother) {
  const TinyModel model = GetParam();
  const std::string dir = WriteModel(model, RandomWeights(model, 7));
  auto first = Checkpoint::Load(dir);
  auto again = Checkpoint::Load(dir);
  ASSERT_TRUE(first.ok() && again.ok());
  const uint64_t fingerprint = (*first)->Fingerprint();
  EXPECT_EQ(fingerprint, (*again)->Fingerprint());
  RandomWeights(model, 8).Write(dir + "/model.safetensors");
  auto other = Checkpoint::Load(dir);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(fingerprint, (*other)->Fingerprint());
}

INSTANTIATE_TEST_SUITE_P(Architectures, HfModelTest, ::testing::Values(QwenStyle(), Llama3Style()),
                         [](const auto& info) { return info.index == 0 ? "Qwen2" : "Llama3"; });

TEST(HfConfigTest, ReadsTheFieldsOfEachArchitecture) {
  auto qwen = ParseHfConfig(QwenStyle().Config().dump(), "config.json");
  ASSERT_TRUE(qwen.ok()) << qwen.status().ToString();
  EXPECT_EQ(qwen->architecture, HfArchitecture::kQwen2);
  EXPECT_TRUE(qwen->shape.qkv_bias);
  EXPECT_FALSE(qwen->shape.output_bias);
  EXPECT_TRUE(qwen->shape.shared_classifier);
  EXPECT_EQ(qwen->shape.head_dim(), 8);
  EXPECT_EQ(qwen->shape.q_dim(), 32);
  EXPECT_FLOAT_EQ(qwen->shape.rope_theta, 1e6f);

  auto llama = ParseHfConfig(Llama3Style().Config().dump(), "config.json");
  ASSERT_TRUE(llama.ok()) << llama.status().ToString();
  EXPECT_TRUE(llama->shape.rope_scaling.enabled());
  EXPECT_FLOAT_EQ(llama->shape.rope_scaling.factor, 8);
  EXPECT_EQ(llama->shape.rope_scaling.original_max_positions, 256);
  EXPECT_FALSE(llama->shape.shared_classifier);

  json mistral = Llama3Style().Config();
  mistral["architectures"] = {"MistralForCausalLM"};
  mistral["model_type"] = "mistral";
  mistral["rope_scaling"] = nullptr;
  mistral["sliding_window"] = 32;
  auto parsed = ParseHfConfig(mistral.dump(), "config.json");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(parsed->shape.seq_len, 32);  // the context never outgrows the window
}

TEST(HfConfigTest, RefusesWhatWouldChangeTheArithmetic) {
  const std::vector<std::pair<std::function<void(json&)>, std::string>> cases = {
      {[](json& c) { c["architectures"] = {"GPT2LMHeadModel"}; },
       "names GPT2LMHeadModel, which Tandem does not run"},
      {[](json& c) { c["model_type"] = "mistral"; }, "does not match architecture"},
      {[](json& c) { c["hidden_act"] = "gelu"; }, "hidden_act \"gelu\" is not supported"},
      {[](json& c) { c["mlp_bias"] = true; }, "mlp_bias true is not supported"},
      {[](json& c) {
         c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
       },
       "type \"yarn\" is not supported"},
      {[](json& c) { c["rope_scaling"].erase("low_freq_factor"); },
       "rope_scaling.low_freq_factor must be a number"},
      {[](json& c) {
         c["quantization_config"] = {{"quant_method", "gptq"}};
       },
       "quantization_config is present"},
      {[](json& c) { c["num_local_experts"] = 8; }, "mixtures of experts"},
      {[](json& c) { c.erase("hidden_size"); }, "hidden_size is missing"},
      {[](json& c) { c["num_attention_heads"] = "four"; }, "num_attention_heads must be an integer"},
      {[](json& c) { c["num_key_value_heads"] = 3; }, "n_kv_heads 3 does not divide n_heads 4"},
      {[](json& c) { c["head_dim"] = 7; }, "is odd"},
  };
  for (const auto& [spoil, message] : cases) {
    json config = Llama3Style().Config();
    spoil(config);
    auto parsed = ParseHfConfig(config.dump(), "/models/x/config.json");
    ASSERT_FALSE(parsed.ok()) << message;
    EXPECT_NE(parsed.status().message().find("/models/x/config.json: "), std::string::npos)
        << parsed.status().message();
    EXPECT_NE(parsed.status().message().find(message), std::string::npos) << parsed.status().message();
  }
  EXPECT_FALSE(ParseHfConfig("{not json", "c.json").ok());
  EXPECT_FALSE(ParseHfConfig("[1]", "c.json").ok());
}

// Weights that do not fit config.json: each refused, naming the file, the tensor and the problem.
TEST(HfCheckpointTest, RefusesWeightsThatDoNotFitTheConfig) {
  const TinyModel model = QwenStyle();
  struct Case {
    std::string what;
    std::function<void(json& config, std::vector<TensorToWrite>& tensors)> spoil;
    std::string message;
  };
  const std::vector<std::byte> wrong_size(4 * 4 * 24);
  const std::vector<std::byte> int_bytes(4 * 8);
  const std::vector<Case> cases = {
      {"a tensor missing",
       [](json&, auto& t) { std::erase_if(t, [](auto& x) { return x.name == "model.norm.weight"; }); },
       "model.norm.weight"},
      {"a wrong shape",
       [&](json&, auto& t) {
         t[0].shape = {4, 24};
         t[0].bytes = wrong_size;
       },
       "tensor model.embed_tokens.weight has shape [4, 24], config.json implies [50, 24]"},
      {"an integer dtype",
       [](json&, auto& t) {
         // I32 has F32's size: the same bytes, another meaning.
         for (auto& x : t)
           if (x.name == "model.layers.0.self_attn.k_proj.bias") x.dtype = TensorDtype::kI32;
       },
       "has dtype I32 (weights must be F32, F16 or BF16)"},
      {"a tensor the config does not know",
       [&](json&, auto& t) {
         t.push_back({"model.layers.0.mlp.extra.weight", TensorDtype::kF32, {8}, int_bytes});
       },
       "tensor model.layers.0.mlp.extra.weight is not part of the model"},
      {"one layer more in the config", [](json& c, auto&) { c["num_hidden_layers"] = 3; }, "model.layers.2."},
      {"biases absent from a config that needs them",
       [](json& c, auto&) {
         c["architectures"] = {"LlamaForCausalLM"};
         c["model_type"] = "llama";
       },
       "_proj.bias is not part of the model"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    testing::TempDir dir;
    const Weights weights = RandomWeights(model, 3);
    // Re-encode the weights as a list we can spoil.
    const std::string original = (dir.path() / "original.safetensors").string();
    ASSERT_TRUE(weights.Write(original).ok());
    auto file = SafetensorsFile::Open(original);
    ASSERT_TRUE(file.ok());
    std::vector<TensorToWrite> tensors;
    for (const TensorInfo& info : file->tensors()) {
      tensors.push_back({info.name, info.dtype, info.shape, file->Data(info)});
    }
    json config = model.Config();
    c.spoil(config, tensors);
    testing::WriteBytes(dir.path() / "config.json", config.dump());
    ASSERT_TRUE(WriteSafetensors((dir.path() / "model.safetensors").string(), tensors).ok());
    std::filesystem::remove(original);
    auto loaded = Checkpoint::Load(dir.path().string());
    ASSERT_FALSE(loaded.ok());
    EXPECT_NE(loaded.status().message().find(c.message), std::string::npos) << loaded.status().message();
  }
}

TEST(HfCheckpointTest, ADirectoryWithoutConfigOrWeightsIsRefused) {
  testing::TempDir dir;
  auto loaded = Checkpoint::Load(dir.path().string());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("config.json"), std::string::npos) << loaded.status().message();
  testing::WriteBytes(dir.path() / "config.json", QwenStyle().Config().dump());
  loaded = Checkpoint::Load(dir.path().string());
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("model.safetensors"), std::string::npos)
      << loaded.status().message();
}

}  // namespace
}  // namespace tandem
