// tandem convert: a llama2.c checkpoint and tokenizer to a Hugging Face model directory (model.safetensors,
// config.json, tokenizer.json, tokenizer_config.json, generation_config.json) that Tandem, and
// transformers, load as a LlamaForCausalLM.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli_support.hpp"
#include "commands.hpp"
#include "tandem/model/checkpoint.hpp"
#include "tandem/model/hf_config.hpp"
#include "tandem/model/safetensors.hpp"
#include "tandem/text/tokenizer.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "convert";

std::span<const std::byte> Bytes(const float* data, int64_t count) {
  return {reinterpret_cast<const std::byte*>(data), static_cast<size_t>(count) * sizeof(float)};
}

// The rows of wq or wk [heads * head_dim, in] reordered from llama2.c's rotary pairs (2i, 2i+1) to Hugging
// Face's (i, i + head_dim/2): row h*hd + s*half + i takes row h*hd + 2i + s. transformers'
// convert_llama_weights_to_hf.py permute() does the same.
std::vector<float> PermuteForHalves(const float* weights, int64_t heads, int64_t head_dim, int64_t in) {
  const int64_t half = head_dim / 2;
  std::vector<float> permuted(static_cast<size_t>(heads * head_dim * in));
  for (int64_t h = 0; h < heads; ++h) {
    for (int64_t s = 0; s < 2; ++s) {
      for (int64_t i = 0; i < half; ++i) {
        const float* from = weights + (h * head_dim + 2 * i + s) * in;
        std::copy(from, from + in, permuted.data() + (h * head_dim + s * half + i) * in);
      }
    }
  }
  return permuted;
}

// model.safetensors (F32) and config.json for `checkpoint`: the whole model with q/k rows in Hugging Face's
// layout, or (`block_range`) only blocks `blocks` and what goes with them (the embedding from block 0 or
// for a tied head, the head with the last block), the rows as they are (the layout goes in the metadata).
Status WriteWeights(const Checkpoint& checkpoint, const std::filesystem::path& out, int bos, int eos,
                    BlockRange blocks, bool block_range) {
  ModelConfig config = checkpoint.config();
  const bool permute = !block_range && config.rope_layout == RopeLayout::kInterleaved;
  const int64_t d = config.dim, h = config.hidden_dim, q = config.q_dim(), kv = config.kv_dim();
  const int64_t hd = config.head_dim(), vocab = config.vocab_size;
  std::vector<TensorToWrite> tensors;
  std::vector<std::vector<float>> permuted;  // kept alive until written
  permuted.reserve(static_cast<size_t>(2 * config.n_layers));
  auto add = [&](const std::string& name, const float* data, std::vector<int64_t> shape) {
    int64_t count = 1;
    for (int64_t size : shape) count *= size;
    tensors.push_back({name, TensorDtype::kF32, std::move(shape), Bytes(data, count)});
  };
  if (BlockRangeHoldsEmbedding(config, blocks))
    add("model.embed_tokens.weight", checkpoint.token_embedding(), {vocab, d});
  for (int layer = blocks.first; layer < blocks.last; ++layer) {
    const BlockWeights& b = checkpoint.block(layer);
    const std::string p = "model.layers." + std::to_string(layer) + ".";
    const auto rows = [&](const float* weights, int64_t heads) {
      if (!permute) return weights;
      permuted.push_back(PermuteForHalves(weights, heads, hd, d));
      return static_cast<const float*>(permuted.back().data());
    };
    add(p + "self_attn.q_proj.weight", rows(b.wq, config.n_heads), {q, d});
    add(p + "self_attn.k_proj.weight", rows(b.wk, config.n_kv_heads), {kv, d});
    add(p + "self_attn.v_proj.weight", b.wv, {kv, d});
    add(p + "self_attn.o_proj.weight", b.wo, {d, q});
    add(p + "input_layernorm.weight", b.rms_att, {d});
    add(p + "post_attention_layernorm.weight", b.rms_ffn, {d});
    add(p + "mlp.gate_proj.weight", b.w1, {h, d});
    add(p + "mlp.down_proj.weight", b.w2, {d, h});
    add(p + "mlp.up_proj.weight", b.w3, {h, d});
  }
  if (blocks.last == config.n_layers) {
    add("model.norm.weight", checkpoint.rms_final(), {d});
    if (!config.shared_classifier) add("lm_head.weight", checkpoint.classifier(), {vocab, d});
  }
  std::map<std::string, std::string> metadata = {{"format", "pt"}};
  if (block_range) {
    metadata[std::string(kBlockRangeMetadata)] =
        std::to_string(blocks.first) + ":" + std::to_string(blocks.last);
    metadata[std::string(kRopeLayoutMetadata)] =
        config.rope_layout == RopeLayout::kInterleaved ? "interleaved" : "halves";
  }
  TANDEM_RETURN_IF_ERROR(WriteSafetensors((out / "model.safetensors").string(), tensors, metadata));

  config.rope_layout = RopeLayout::kHalves;
  return WriteText(out / "config.json", WriteHfConfigJson(config, bos, eos));
}

// tandem convert --blocks A:B: the blocks a tail runs, and nothing else of the model.
int ConvertBlockRange(const std::string& model, const std::string& blocks_text, const std::string& out) {
  if (model.empty() || out.empty()) {
    return Fail(kCommand, InvalidArgument("--blocks needs --model and --out"), kExitUsage);
  }
  auto checkpoint = Checkpoint::Load(model);
  if (!checkpoint.ok()) return Fail(kCommand, checkpoint.status());
  const ModelConfig& config = (*checkpoint)->config();
  auto blocks = ParseBlockRange(blocks_text, config.n_layers);
  if (!blocks.ok() || blocks->empty()) {
    return Fail(kCommand,
                InvalidArgument("--blocks must be A:B with 0 <= A < B <= " + std::to_string(config.n_layers) +
                                " (got '" + blocks_text + "')"),
                kExitUsage);
  }
  const BlockRange held = (*checkpoint)->held_blocks();
  if (blocks->first < held.first || blocks->last > held.last) {
    return Fail(kCommand, InvalidArgument(model + " holds blocks " + std::to_string(held.first) + ":" +
                                          std::to_string(held.last) + " only"));
  }
  if (Status made = CreateDirectories(out); !made.ok()) return Fail(kCommand, made);
  // config.json's token ids are not read by Tandem (the edge's tokenizer has them): llama2.c's.
  if (Status written = WriteWeights(**checkpoint, out, 1, 2, *blocks, true); !written.ok()) {
    return Fail(kCommand, written);
  }
  std::printf("wrote %s: blocks %d:%d of %s%s%s\n", out.c_str(), blocks->first, blocks->last,
              config.ToString().c_str(), blocks->last == config.n_layers ? ", with the head" : "",
              BlockRangeHoldsEmbedding(config, *blocks) ? ", with the embedding" : "");
  return 0;
}

}  // namespace

int RunConvert(std::span<const std::string> args) {
  std::string model, tokenizer_path, out;
  FlagSet flags(
      "usage: tandem convert --model CHECKPOINT.bin --tokenizer TOKENIZER.bin --out DIR\n"
      "       tandem convert --model MODEL --blocks A:B --out DIR\n"
      "Writes a Hugging Face LlamaForCausalLM directory (safetensors, config.json, tokenizer.json)\n"
      "from a llama2.c checkpoint and tokenizer; the q/k rows are permuted to the rotate_half\n"
      "convention, so the directory computes the same model.");
  flags.String("model", &model, "llama2.c checkpoint");
  flags.String("tokenizer", &tokenizer_path, "llama2.c tokenizer (tokenizer.bin, tok512.bin)");
  flags.String("out", &out, "output directory (created; files in it are replaced)");
  std::string blocks_text;
  flags.String("blocks", &blocks_text,
               "A:B: write a block-range checkpoint holding only blocks [A,B) (the head with the last block, "
               "the embedding with block 0 or a tied head) for a cloud tail that runs only those; from a "
               "llama2.c or Hugging Face model, no tokenizer needed");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (!blocks_text.empty()) return ConvertBlockRange(model, blocks_text, out);
  for (const char* required : {"model", "tokenizer", "out"}) {
    if (Status status = Require(flags, required); !status.ok()) return Fail(kCommand, status, kExitUsage);
  }
  if (Checkpoint::IsHuggingFacePath(model)) {
    return Fail(kCommand, InvalidArgument(model + " is already a Hugging Face model"), kExitUsage);
  }
  auto checkpoint = Checkpoint::Load(model);
  if (!checkpoint.ok()) return Fail(kCommand, checkpoint.status());
  auto tokenizer = Tokenizer::LoadForModel(model, tokenizer_path, (*checkpoint)->config().vocab_size);
  if (!tokenizer.ok()) return Fail(kCommand, tokenizer.status());

  if (Status made = CreateDirectories(out); !made.ok()) return Fail(kCommand, made);
  const std::filesystem::path dir(out);
  const int bos = tokenizer->bos(), eos = tokenizer->eos();
  if (Status written =
          WriteWeights(**checkpoint, dir, bos, eos, {0, (*checkpoint)->config().n_layers}, false);
      !written.ok()) {
    return Fail(kCommand, written);
  }
  auto tokenizer_files = ExportHfTokenizer(*tokenizer, (*checkpoint)->config().seq_len);
  if (!tokenizer_files.ok()) return Fail(kCommand, tokenizer_files.status());
  // llama2.c's models end a story with BOS: it stops a generation as EOS does.
  const nlohmann::json generation = {{"bos_token_id", bos}, {"eos_token_id", {eos, bos}}};
  for (const auto& [file, text] : {std::pair{"tokenizer.json", tokenizer_files->tokenizer_json},
                                   {"tokenizer_config.json", tokenizer_files->tokenizer_config_json},
                                   {"generation_config.json", generation.dump(2) + "\n"}}) {
    if (Status written = WriteText(dir / file, text); !written.ok()) return Fail(kCommand, written);
  }
  std::printf("wrote %s: LlamaForCausalLM %s, tokenizer.json with %d tokens\n", out.c_str(),
              (*checkpoint)->config().ToString().c_str(), tokenizer->vocab_size());
  return 0;
}

}  // namespace tandem::cli
