// Hugging Face config.json for the architectures Tandem runs: LlamaForCausalLM (Llama 2, 3, 3.x),
// MistralForCausalLM and Qwen2ForCausalLM. Read into a ModelConfig; anything that would change the
// arithmetic in a way the runtime does not implement (another activation, MLP biases, a rope scaling other
// than Llama 3's, sliding windows shorter than the context, mixture of experts, quantized weights) is
// refused with an error naming the file and the field, rather than run wrong.
#pragma once

#include <string>

#include "tandem/base/status.hpp"
#include "tandem/model/model_config.hpp"

namespace tandem {

// The architectures config.json may name, with their model_type.
enum class HfArchitecture { kLlama, kMistral, kQwen2 };

struct HfModelConfig {
  HfArchitecture architecture = HfArchitecture::kLlama;
  ModelConfig shape;  // rope_layout is kHalves: Hugging Face's rotate_half convention
};

// `text` is the content of config.json; `path` names it in errors.
Result<HfModelConfig> ParseHfConfig(const std::string& text, const std::string& path);
// Reads <directory>/config.json.
Result<HfModelConfig> LoadHfConfig(const std::string& directory);

// config.json of a LlamaForCausalLM with `shape` (rope_layout must be kHalves), for tandem convert.
std::string WriteHfConfigJson(const ModelConfig& shape, int bos_token_id, int eos_token_id);

}  // namespace tandem
