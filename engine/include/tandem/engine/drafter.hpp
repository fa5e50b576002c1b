// Drafters for speculative decoding on the edge: each guesses the next few tokens cheaply, and the model
// (across the split) verifies them in one step (TailRunner::Verify). A guess costs only time: the tokens
// that come out are the model's whatever the drafter says.
//
//   ngram       the longest recent match of the last tokens in the prompt and history: what followed it
//               then (prompt lookup decoding; no model)
//   self-int8   the whole model with int8 weights (self-int4: int4), greedy, on its own KV cache
//   model:PATH  another checkpoint with the same vocabulary, greedy
//   early-exit  the model's own embedding, blocks [0, cut) and head (what the edge already holds)
#pragma once

#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/model/model_config.hpp"

namespace tandem {

class Transformer;
class KvCache;

// One generation's drafter (not thread-safe).
class Drafter {
 public:
  virtual ~Drafter() = default;
  // Up to `max_tokens` tokens likely to follow `context` (the prompt and every token generated so far);
  // fewer or none when it has no guess.
  virtual Result<std::vector<int>> Propose(std::span<const int> context, int max_tokens) = 0;
};

// Prompt lookup: finds the most recent earlier occurrence of the context's last n tokens (n from
// `longest_match` down to 1) and proposes the tokens that followed it.
class NgramDrafter final : public Drafter {
 public:
  explicit NgramDrafter(int longest_match = 3) : longest_match_(longest_match) {}
  Result<std::vector<int>> Propose(std::span<const int> context, int max_tokens) override;

 private:
  int longest_match_;
};

// Greedy decoding with a model's embedding, blocks [0, exit_block) and head, on its own KV cache, which
// keeps the longest prefix it shares with each new context (only the tokens since run again).
class ModelDrafter final : public Drafter {
 public:
  ModelDrafter(std::shared_ptr<const Transformer> model, int exit_block, int capacity);
  ~ModelDrafter() override;
  Result<std::vector<int>> Propose(std::span<const int> context, int max_tokens) override;

 private:
  // Runs `tokens` after the cached ones; the greedy next token.
  Result<int> Next(std::span<const int> tokens);

  std::shared_ptr<const Transformer> model_;
  std::unique_ptr<KvCache> cache_;
  std::vector<int> cached_;  // the tokens whose positions the cache holds
};

enum class DraftKind { kNone, kNgram, kSelfInt8, kSelfInt4, kModel, kEarlyExit };

struct DraftSpec {
  DraftKind kind = DraftKind::kNone;
  std::string path;          // kModel only
  std::string Name() const;  // as the flag spells it
};
inline constexpr const char* kDraftFlagHelp =
    "speculative decoding: the edge drafts tokens the tail verifies several at a time, the output unchanged: "
    "ngram, self-int8, self-int4, model:PATH, early-exit or none";
// "none", "ngram", "self-int8", "self-int4", "model:PATH", "early-exit".
Result<DraftSpec> ParseDraftSpec(std::string_view text);

// The models drafters of one kind run on, built once per process and shared by every generation.
class DraftModels {
 public:
  // `target` is the model being served (early-exit runs its blocks; self-int8/int4 quantize its
  // checkpoint). A model:PATH checkpoint must have the target's vocabulary size.
  static Result<DraftModels> Load(const DraftSpec& spec, std::shared_ptr<const Transformer> target);
  const DraftSpec& spec() const { return spec_; }
  // A drafter for one generation whose split cuts at `cut` (early-exit exits there); null for kNone.
  Result<std::unique_ptr<Drafter>> Create(int cut, int capacity) const;

 private:
  DraftSpec spec_;
  std::shared_ptr<const Transformer> target_;
  std::shared_ptr<const Transformer> model_;  // self-int8/int4 and model:PATH
};

}  // namespace tandem
