#include "tandem/model/hf_config.hpp"

#include "tandem/base/json_file.hpp"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <limits>
#include <optional>

namespace tandem {
namespace {

using nlohmann::json;

struct ArchitectureName {
  const char* architecture;
  const char* model_type;
  HfArchitecture value;
};
constexpr ArchitectureName kArchitectures[] = {
    {"LlamaForCausalLM", "llama", HfArchitecture::kLlama},
    {"MistralForCausalLM", "mistral", HfArchitecture::kMistral},
    {"Qwen2ForCausalLM", "qwen2", HfArchitecture::kQwen2},
};

// Reads typed fields of config.json, each error naming the file and the field.
class Fields {
 public:
  Fields(const json& object, const std::string& path) : object_(object), path_(path) {}

  Status Error(const std::string& field, const std::string& problem) const {
    return InvalidArgument(path_ + ": " + field + " " + problem);
  }
  bool Has(const std::string& field) const { return object_.contains(field) && !object_[field].is_null(); }

  // A positive integer that fits int32 (or `fallback` when absent, if given).
  Result<int32_t> PositiveInt(const std::string& field,
                              std::optional<int32_t> fallback = std::nullopt) const {
    if (!Has(field)) {
      if (fallback) return *fallback;
      return Error(field, "is missing");
    }
    const json& value = object_[field];
    if (!value.is_number_integer()) return Error(field, "must be an integer, not " + value.dump());
    const int64_t number = value.get<int64_t>();
    if (number <= 0 || number > std::numeric_limits<int32_t>::max()) {
      return Error(field, "= " + value.dump() + " is out of range");
    }
    return static_cast<int32_t>(number);
  }

  Result<double> Number(const std::string& field, double fallback) const {
    if (!Has(field)) return fallback;
    const json& value = object_[field];
    if (!value.is_number()) return Error(field, "must be a number, not " + value.dump());
    return value.get<double>();
  }

  Result<bool> Bool(const std::string& field, bool fallback) const {
    if (!Has(field)) return fallback;
    const json& value = object_[field];
    if (!value.is_boolean()) return Error(field, "must be true or false, not " + value.dump());
    return value.get<bool>();
  }

  Result<std::string> String(const std::string& field, const std::string& fallback) const {
    if (!Has(field)) return fallback;
    const json& value = object_[field];
    if (!value.is_string()) return Error(field, "must be a string, not " + value.dump());
    return value.get<std::string>();
  }

 private:
  const json& object_;
  const std::string& path_;
};

Result<HfArchitecture> ParseArchitecture(const json& config, const Fields& fields) {
  if (!config.contains("architectures") || !config["architectures"].is_array() ||
      config["architectures"].size() != 1 || !config["architectures"][0].is_string()) {
    return fields.Error("architectures",
                        "must list exactly one architecture (LlamaForCausalLM, "
                        "MistralForCausalLM or Qwen2ForCausalLM)");
  }
  const std::string name = config["architectures"][0];
  TANDEM_ASSIGN_OR_RETURN(const std::string model_type, fields.String("model_type", ""));
  for (const ArchitectureName& known : kArchitectures) {
    if (name != known.architecture) continue;
    if (!model_type.empty() && model_type != known.model_type) {
      return fields.Error("model_type", "\"" + model_type + "\" does not match architecture " + name);
    }
    return known.value;
  }
  return fields.Error("architectures", "names " + name +
                                           ", which Tandem does not run (supported: LlamaForCausalLM, "
                                           "MistralForCausalLM, Qwen2ForCausalLM)");
}

Status ParseRopeScaling(const json& config, const Fields& fields, ModelConfig& shape) {
  if (!fields.Has("rope_scaling")) return Status::Ok();
  const json& scaling = config["rope_scaling"];
  if (!scaling.is_object()) return fields.Error("rope_scaling", "must be an object or null");
  // Older configs call it "type", newer ones "rope_type".
  std::string type = scaling.value("rope_type", scaling.value("type", std::string()));
  if (type == "default") return Status::Ok();
  if (type != "llama3") {
    return fields.Error("rope_scaling", "type \"" + type +
                                            "\" is not supported (only Llama 3's \"llama3\"): it changes "
                                            "the rotary frequencies");
  }
  auto number = [&](const char* field) -> Result<double> {
    if (!scaling.contains(field) || !scaling[field].is_number()) {
      return fields.Error(std::string("rope_scaling.") + field, "must be a number");
    }
    return scaling[field].get<double>();
  };
  TANDEM_ASSIGN_OR_RETURN(const double factor, number("factor"));
  TANDEM_ASSIGN_OR_RETURN(const double low, number("low_freq_factor"));
  TANDEM_ASSIGN_OR_RETURN(const double high, number("high_freq_factor"));
  TANDEM_ASSIGN_OR_RETURN(const double original, number("original_max_position_embeddings"));
  shape.rope_scaling = {.factor = static_cast<float>(factor),
                        .low_freq_factor = static_cast<float>(low),
                        .high_freq_factor = static_cast<float>(high),
                        .original_max_positions = static_cast<int32_t>(original)};
  return Status::Ok();
}

// Fields whose presence (with a value other than the harmless one) means arithmetic the runtime lacks.
Status RefuseUnsupported(const Fields& fields, HfArchitecture architecture) {
  TANDEM_ASSIGN_OR_RETURN(const std::string activation, fields.String("hidden_act", "silu"));
  if (activation != "silu") {
    return fields.Error("hidden_act", "\"" + activation + "\" is not supported (SwiGLU with silu only)");
  }
  TANDEM_ASSIGN_OR_RETURN(const bool mlp_bias, fields.Bool("mlp_bias", false));
  if (mlp_bias) return fields.Error("mlp_bias", "true is not supported (the MLP has no biases here)");
  for (const char* field : {"quantization_config", "num_local_experts", "num_experts"}) {
    if (fields.Has(field)) {
      return fields.Error(field,
                          "is present: quantized checkpoints and mixtures of experts are not supported");
    }
  }
  if (fields.Has("partial_rotary_factor")) {
    TANDEM_ASSIGN_OR_RETURN(const double partial, fields.Number("partial_rotary_factor", 1));
    if (partial != 1) return fields.Error("partial_rotary_factor", "other than 1 is not supported");
  }
  if (architecture == HfArchitecture::kQwen2) {
    TANDEM_ASSIGN_OR_RETURN(const bool sliding, fields.Bool("use_sliding_window", false));
    if (sliding) return fields.Error("use_sliding_window", "true is not supported");
  }
  return Status::Ok();
}

// The fields of config.json's object `config`.
Result<HfModelConfig> HfConfigFromJson(const json& config, const std::string& path) {
  const Fields fields(config, path);

  HfModelConfig result;
  TANDEM_ASSIGN_OR_RETURN(result.architecture, ParseArchitecture(config, fields));
  TANDEM_RETURN_IF_ERROR(RefuseUnsupported(fields, result.architecture));

  ModelConfig& shape = result.shape;
  shape.rope_layout = RopeLayout::kHalves;
  TANDEM_ASSIGN_OR_RETURN(shape.dim, fields.PositiveInt("hidden_size"));
  TANDEM_ASSIGN_OR_RETURN(shape.hidden_dim, fields.PositiveInt("intermediate_size"));
  TANDEM_ASSIGN_OR_RETURN(shape.n_layers, fields.PositiveInt("num_hidden_layers"));
  TANDEM_ASSIGN_OR_RETURN(shape.n_heads, fields.PositiveInt("num_attention_heads"));
  TANDEM_ASSIGN_OR_RETURN(shape.n_kv_heads, fields.PositiveInt("num_key_value_heads", shape.n_heads));
  TANDEM_ASSIGN_OR_RETURN(shape.vocab_size, fields.PositiveInt("vocab_size"));
  TANDEM_ASSIGN_OR_RETURN(shape.seq_len, fields.PositiveInt("max_position_embeddings"));
  if (fields.Has("head_dim")) {
    TANDEM_ASSIGN_OR_RETURN(shape.explicit_head_dim, fields.PositiveInt("head_dim"));
  }
  TANDEM_ASSIGN_OR_RETURN(const double eps, fields.Number("rms_norm_eps", 1e-6));
  TANDEM_ASSIGN_OR_RETURN(const double theta, fields.Number("rope_theta", 10000.0));
  shape.rms_norm_eps = static_cast<float>(eps);
  shape.rope_theta = static_cast<float>(theta);
  TANDEM_ASSIGN_OR_RETURN(const bool tied, fields.Bool("tie_word_embeddings", false));
  shape.shared_classifier = tied;
  TANDEM_RETURN_IF_ERROR(ParseRopeScaling(config, fields, shape));

  switch (result.architecture) {
    case HfArchitecture::kQwen2:  // q, k and v always carry biases; the output projection none
      shape.qkv_bias = true;
      break;
    case HfArchitecture::kLlama: {
      TANDEM_ASSIGN_OR_RETURN(const bool bias, fields.Bool("attention_bias", false));
      shape.qkv_bias = shape.output_bias = bias;
      break;
    }
    case HfArchitecture::kMistral:
      // A window at least as long as the context is no window; a shorter one is honoured by never letting
      // the context grow past it (same arithmetic for every position the cache then holds).
      if (fields.Has("sliding_window")) {
        TANDEM_ASSIGN_OR_RETURN(const int32_t window, fields.PositiveInt("sliding_window"));
        shape.seq_len = std::min(shape.seq_len, window);
      }
      break;
  }
  if (Status valid = shape.Validate(); !valid.ok()) {
    return InvalidArgument(path + ": " + valid.message());
  }
  return result;
}

}  // namespace

Result<HfModelConfig> ParseHfConfig(const std::string& text, const std::string& path) {
  const json config = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded()) return InvalidArgument(path + ": not valid JSON");
  if (!config.is_object()) return InvalidArgument(path + ": not a JSON object");
  return HfConfigFromJson(config, path);
}

Result<HfModelConfig> LoadHfConfig(const std::string& directory) {
  const std::filesystem::path path = std::filesystem::path(directory) / "config.json";
  TANDEM_ASSIGN_OR_RETURN(const std::optional<json> config, ReadJsonObjectIfExists(path));
  if (!config) return InvalidArgument(path.string() + ": missing (a Hugging Face model directory has one)");
  return HfConfigFromJson(*config, path.string());
}

std::string WriteHfConfigJson(const ModelConfig& shape, int bos_token_id, int eos_token_id) {
  json config = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", shape.dim},
      {"intermediate_size", shape.hidden_dim},
      {"num_hidden_layers", shape.n_layers},
      {"num_attention_heads", shape.n_heads},
      {"num_key_value_heads", shape.n_kv_heads},
      {"head_dim", shape.head_dim()},
      {"vocab_size", shape.vocab_size},
      {"max_position_embeddings", shape.seq_len},
      {"rms_norm_eps", shape.rms_norm_eps},
      {"rope_theta", shape.rope_theta},
      {"rope_scaling", nullptr},
      {"tie_word_embeddings", shape.shared_classifier},
      {"attention_bias", false},
      {"mlp_bias", false},
      {"hidden_act", "silu"},
      {"bos_token_id", bos_token_id},
      {"eos_token_id", eos_token_id},
      {"torch_dtype", "float32"},
  };
  return config.dump(2) + "\n";
}

}  // namespace tandem
