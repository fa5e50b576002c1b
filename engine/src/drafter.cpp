#include "tandem/engine/drafter.hpp"

#include <ATen/ATen.h>

#include <algorithm>

#include "tandem/engine/sampler.hpp"
#include "tandem/engine/transformer.hpp"

namespace tandem {

Result<std::vector<int>> NgramDrafter::Propose(std::span<const int> context, int max_tokens) {
  if (max_tokens <= 0) return std::vector<int>{};
  const auto size = static_cast<int64_t>(context.size());
  for (int64_t n = std::min<int64_t>(longest_match_, size - 1); n >= 1; --n) {
    const auto suffix = context.subspan(static_cast<size_t>(size - n));
    // The most recent earlier occurrence wins: the text nearest the end is the likeliest to repeat.
    for (int64_t start = size - n - 1; start >= 0; --start) {
      if (!std::equal(suffix.begin(), suffix.end(), context.begin() + start)) continue;
      const int64_t follow = start + n;
      const int64_t count = std::min<int64_t>(max_tokens, size - follow);
      return std::vector<int>(context.begin() + follow, context.begin() + follow + count);
    }
  }
  return std::vector<int>{};
}

ModelDrafter::ModelDrafter(std::shared_ptr<const Transformer> model, int exit_block, int capacity)
    : model_(std::move(model)),
      cache_(std::make_unique<KvCache>(model_->config(), BlockRange{0, exit_block}, capacity)) {}

ModelDrafter::~ModelDrafter() = default;

Result<int> ModelDrafter::Next(std::span<const int> tokens) {
  TANDEM_ASSIGN_OR_RETURN(at::Tensor hidden, model_->Embed(tokens));
  TANDEM_RETURN_IF_ERROR(model_->RunBlocks(hidden, *cache_));
  cached_.insert(cached_.end(), tokens.begin(), tokens.end());
  TANDEM_ASSIGN_OR_RETURN(at::Tensor logits, model_->Logits(hidden.narrow(0, hidden.size(0) - 1, 1)));
  logits = logits.contiguous();
  return Argmax({logits.data_ptr<float>(), static_cast<size_t>(logits.numel())});
}

Result<std::vector<int>> ModelDrafter::Propose(std::span<const int> context, int max_tokens) {
  // No token to predict from (and no rows to run: the blocks do not take none).
  if (context.empty()) return std::vector<int>{};
  // Keep what the cache shares with the context, but run at least its last token again: its logits
  // give the first draft.
  size_t shared = 0;
  while (shared < cached_.size() && shared < context.size() && cached_[shared] == context[shared]) ++shared;
  shared = std::min(shared, context.size() - 1);
  cache_->Truncate(static_cast<int>(shared));
  cached_.resize(shared);
  const int room = cache_->capacity() - static_cast<int>(context.size());
  max_tokens = std::min(max_tokens, room + 1);
  std::vector<int> draft;
  if (max_tokens <= 0) return draft;
  TANDEM_ASSIGN_OR_RETURN(int token, Next(context.subspan(shared)));
  while (true) {
    if (token < 0) break;
    draft.push_back(token);
    if (static_cast<int>(draft.size()) >= max_tokens) break;
    TANDEM_ASSIGN_OR_RETURN(token, Next(std::span<const int>(&draft.back(), 1)));
  }
  return draft;
}

std::string DraftSpec::Name() const {
  switch (kind) {
    case DraftKind::kNone:
      return "none";
    case DraftKind::kNgram:
      return "ngram";
    case DraftKind::kSelfInt8:
      return "self-int8";
    case DraftKind::kSelfInt4:
      return "self-int4";
    case DraftKind::kModel:
      return "model:" + path;
    case DraftKind::kEarlyExit:
      return "early-exit";
  }
  return "none";
}

Result<DraftSpec> ParseDraftSpec(std::string_view text) {
  if (text == "none" || text.empty()) return DraftSpec{};
  if (text == "ngram") return DraftSpec{.kind = DraftKind::kNgram};
  if (text == "self-int8") return DraftSpec{.kind = DraftKind::kSelfInt8};
  if (text == "self-int4") return DraftSpec{.kind = DraftKind::kSelfInt4};
  if (text == "early-exit") return DraftSpec{.kind = DraftKind::kEarlyExit};
  if (text.starts_with("model:") && text.size() > 6) {
    return DraftSpec{.kind = DraftKind::kModel, .path = std::string(text.substr(6))};
  }
  return InvalidArgument("unknown drafter '" + std::string(text) +
                         "' (expected ngram, self-int8, self-int4, model:PATH, early-exit or none)");
}

Result<DraftModels> DraftModels::Load(const DraftSpec& spec, std::shared_ptr<const Transformer> target) {
  DraftModels models;
  models.spec_ = spec;
  const int layers = target->n_layers();
  switch (spec.kind) {
    case DraftKind::kSelfInt8:
    case DraftKind::kSelfInt4: {
      TransformerOptions options;
      const bool int8 = spec.kind == DraftKind::kSelfInt8;
      (int8 ? options.int8_blocks : options.int4_blocks) = BlockRange{0, layers};
      (int8 ? options.int8_classifier : options.int4_classifier) = true;
      TANDEM_ASSIGN_OR_RETURN(models.model_, Transformer::Create(target->checkpoint(), options));
      break;
    }
    case DraftKind::kModel: {
      TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<const Checkpoint> checkpoint, Checkpoint::Load(spec.path));
      if (checkpoint->config().vocab_size != target->config().vocab_size) {
        return InvalidArgument(spec.path + ": the draft model's vocabulary has " +
                               std::to_string(checkpoint->config().vocab_size) + " tokens, the model's " +
                               std::to_string(target->config().vocab_size));
      }
      TANDEM_ASSIGN_OR_RETURN(models.model_, Transformer::Create(checkpoint));
      break;
    }
    case DraftKind::kEarlyExit:
      if (!target->holds_embedding() || !target->holds_head()) {
        return InvalidArgument("early-exit drafting needs the model's embedding and head on the edge");
      }
      break;
    case DraftKind::kNone:
    case DraftKind::kNgram:
      break;
  }
  models.target_ = std::move(target);
  return models;
}

Result<std::unique_ptr<Drafter>> DraftModels::Create(int cut, int capacity) const {
  switch (spec_.kind) {
    case DraftKind::kNone:
      return std::unique_ptr<Drafter>();
    case DraftKind::kNgram:
      return std::unique_ptr<Drafter>(std::make_unique<NgramDrafter>());
    case DraftKind::kEarlyExit:
      // At least one block: the embedding alone predicts nothing.
      return std::unique_ptr<Drafter>(
          std::make_unique<ModelDrafter>(target_, std::clamp(cut, 1, target_->n_layers()), capacity));
    case DraftKind::kSelfInt8:
    case DraftKind::kSelfInt4:
    case DraftKind::kModel:
      return std::unique_ptr<Drafter>(std::make_unique<ModelDrafter>(
          model_, model_->n_layers(), std::min(capacity, model_->config().seq_len)));
  }
  return std::unique_ptr<Drafter>();
}

}  // namespace tandem
