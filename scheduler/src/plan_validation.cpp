#include "plan_validation.hpp"

#include <cmath>
#include <string>

#include "tandem/base/strings.hpp"

namespace tandem::scheduler {
namespace {

Status CheckTime(double value, const std::string& what) {
  // Written so that NaN fails too.
  if (!(value >= 0) || !std::isfinite(value)) {
    return InvalidArgument(what + " is " + ShortNumber(value) + "; must be a finite time >= 0");
  }
  return Status::Ok();
}

Status CheckTimes(const std::vector<double>& block_ms, const std::string& what_of_block) {
  for (size_t b = 0; b < block_ms.size(); ++b) {
    TANDEM_RETURN_IF_ERROR(CheckTime(block_ms[b], what_of_block + std::to_string(b)));
  }
  return Status::Ok();
}

Status CheckProfile(const ComputeProfile& profile, int n_layers, const std::string& who) {
  const auto blocks = static_cast<size_t>(n_layers);
  if (profile.decode_block_ms.size() != blocks) {
    return InvalidArgument(who + " has " + std::to_string(profile.decode_block_ms.size()) +
                           " decode block times; the model has " + std::to_string(n_layers) + " blocks");
  }
  TANDEM_RETURN_IF_ERROR(CheckTimes(profile.decode_block_ms, who + " decode time of block "));
  TANDEM_RETURN_IF_ERROR(CheckTime(profile.head_ms, who + " head time"));
  int previous_tokens = 0;
  for (size_t i = 0; i < profile.prefill.size(); ++i) {
    const auto& bucket = profile.prefill[i];
    const std::string name = who + " prefill bucket " + std::to_string(i);
    if (bucket.tokens <= previous_tokens) {
      return InvalidArgument(name + " has " + std::to_string(bucket.tokens) +
                             " tokens; buckets need tokens >= 1 in strictly ascending order");
    }
    previous_tokens = bucket.tokens;
    if (bucket.block_ms.size() != blocks) {
      return InvalidArgument(name + " has " + std::to_string(bucket.block_ms.size()) +
                             " block times; the model has " + std::to_string(n_layers) + " blocks");
    }
    TANDEM_RETURN_IF_ERROR(CheckTimes(bucket.block_ms, name + " time of block "));
  }
  return Status::Ok();
}

Status CheckCodec(const ActivationCodec& codec, const std::string& where) {
  auto precision = PrecisionFromWire(static_cast<uint8_t>(codec.precision));
  auto compression = CompressionFromWire(static_cast<uint8_t>(codec.compression));
  if (!precision.ok()) return precision.status().WithContext(where);
  if (!compression.ok()) return compression.status().WithContext(where);
  return Status::Ok();
}

// The model's shape and the edge's profile.
Status CheckModelAndEdge(const PlanInputs& inputs) {
  const int n_layers = inputs.n_layers;
  if (n_layers <= 0) return InvalidArgument("n_layers is " + std::to_string(n_layers) + "; must be >= 1");
  if (inputs.dim <= 0) return InvalidArgument("dim is " + std::to_string(inputs.dim) + "; must be >= 1");
  if (inputs.kv_bytes_per_position_per_block < 0) {
    return InvalidArgument("kv_bytes_per_position_per_block is " +
                           std::to_string(inputs.kv_bytes_per_position_per_block) + "; must be >= 0");
  }
  TANDEM_RETURN_IF_ERROR(CheckProfile(inputs.edge, n_layers, "edge profile"));
  if (inputs.edge_int8_blocks < 0 || inputs.edge_int8_blocks > n_layers) {
    return InvalidArgument("edge_int8_blocks is " + std::to_string(inputs.edge_int8_blocks) +
                           "; must be in [0, " + std::to_string(n_layers) + "]");
  }
  return Status::Ok();
}

// Tail i's profile, load, link and codecs, and that no earlier tail has its endpoint.
Status CheckTail(const PlanInputs& inputs, size_t i) {
  const TailState& tail = inputs.tails[i];
  const std::string name = "tail " + std::to_string(i) + " (" + tail.endpoint + ")";
  TANDEM_RETURN_IF_ERROR(CheckProfile(tail.profile, inputs.n_layers, name + " profile"));
  if (!(tail.utilization >= 0 && tail.utilization <= 1)) {
    return InvalidArgument(name + " utilization is " + ShortNumber(tail.utilization) + "; must be in [0, 1]");
  }
  TANDEM_RETURN_IF_ERROR(CheckTime(tail.link.rtt_ms, name + " link RTT"));
  if (std::isnan(tail.link.bandwidth_bytes_per_ms) || std::isinf(tail.link.bandwidth_bytes_per_ms)) {
    return InvalidArgument(name + " link bandwidth is " + ShortNumber(tail.link.bandwidth_bytes_per_ms) +
                           "; must be finite (<= 0 for unknown)");
  }
  for (const ActivationCodec& codec : tail.codecs)
    TANDEM_RETURN_IF_ERROR(CheckCodec(codec, name + " codecs"));
  // Plans name tails by endpoint (Candidate::SameChoice), so two tails with one endpoint would be one.
  for (size_t j = 0; j < i; ++j) {
    if (inputs.tails[j].endpoint == tail.endpoint) {
      return InvalidArgument("tails " + std::to_string(j) + " and " + std::to_string(i) +
                             " have the same endpoint \"" + tail.endpoint + "\"");
    }
  }
  return Status::Ok();
}

// The constraints, the blocks each tail holds, and the objective.
Status CheckConstraints(const PlanInputs& inputs) {
  const int n_layers = inputs.n_layers;
  const PlanConstraints& constraints = inputs.constraints;
  if (constraints.min_edge_blocks > n_layers) {
    return InvalidArgument("min_edge_blocks " + std::to_string(constraints.min_edge_blocks) +
                           " exceeds the model's " + std::to_string(n_layers) + " blocks");
  }
  if (constraints.max_edge_blocks >= 0 && constraints.min_edge_blocks > constraints.max_edge_blocks) {
    return InvalidArgument("min_edge_blocks " + std::to_string(constraints.min_edge_blocks) +
                           " exceeds max_edge_blocks " + std::to_string(constraints.max_edge_blocks));
  }
  if (constraints.min_edge_last_blocks < 0 || constraints.min_edge_last_blocks >= n_layers) {
    return InvalidArgument("min_edge_last_blocks " + std::to_string(constraints.min_edge_last_blocks) +
                           " is not within 0.." + std::to_string(n_layers - 1));
  }
  for (const TailState& tail : inputs.tails) {
    if (tail.held_last >= 0 &&
        (tail.held_first < 0 || tail.held_first >= tail.held_last || tail.held_last > n_layers)) {
      return InvalidArgument("tail \"" + tail.endpoint + "\" holds blocks " +
                             std::to_string(tail.held_first) + ":" + std::to_string(tail.held_last) +
                             ", not a range within the model");
    }
  }
  for (const ActivationCodec& codec : constraints.allowed_codecs) {
    TANDEM_RETURN_IF_ERROR(CheckCodec(codec, "allowed_codecs"));
  }
  return CheckObjectiveWeights(inputs.objective.ttft_weight, inputs.objective.token_weight);
}

// The request's lengths and what stands in for unmeasured links.
Status CheckRequest(const PlanInputs& inputs) {
  if (inputs.prompt_tokens < 1) {
    return InvalidArgument("prompt_tokens is " + std::to_string(inputs.prompt_tokens) + "; must be >= 1");
  }
  if (inputs.expected_tokens < 0) {
    return InvalidArgument("expected_tokens is " + std::to_string(inputs.expected_tokens) + "; must be >= 0");
  }
  if (!(inputs.default_bandwidth_bytes_per_ms > 0) || !std::isfinite(inputs.default_bandwidth_bytes_per_ms)) {
    return InvalidArgument("default_bandwidth_bytes_per_ms is " +
                           ShortNumber(inputs.default_bandwidth_bytes_per_ms) + "; must be finite and > 0");
  }
  for (const auto& [codec, ratio] : inputs.compression_ratios) {
    TANDEM_RETURN_IF_ERROR(CheckCodec(codec, "compression_ratios"));
    if (!(ratio > 0) || !std::isfinite(ratio)) {
      return InvalidArgument("compression ratio of " + codec.Name() + " is " + ShortNumber(ratio) +
                             "; must be finite and > 0");
    }
  }
  return Status::Ok();
}

// What drafting costs and gains; checked whether enabled or not, so that a bad figure never waits for
// drafting to be switched on.
Status CheckDraft(const DraftInputs& draft) {
  if (!(draft.acceptance >= 0 && draft.acceptance <= 1)) {
    return InvalidArgument("draft acceptance is " + ShortNumber(draft.acceptance) + "; must be in [0, 1]");
  }
  TANDEM_RETURN_IF_ERROR(CheckTime(draft.draft_token_ms, "draft_token_ms"));
  if (draft.max_drafts < 0 || draft.max_drafts > kMaxDraftTokens) {
    return InvalidArgument("max_drafts is " + std::to_string(draft.max_drafts) + "; must be in [0, " +
                           std::to_string(kMaxDraftTokens) + "]");
  }
  if (!(draft.min_gain >= 0) || !std::isfinite(draft.min_gain)) {
    return InvalidArgument("draft min_gain is " + ShortNumber(draft.min_gain) + "; must be finite and >= 0");
  }
  return Status::Ok();
}

}  // namespace

Status CheckObjectiveWeights(double ttft_weight, double token_weight) {
  if (!(ttft_weight >= 0) || !(token_weight >= 0) || !std::isfinite(ttft_weight) ||
      !std::isfinite(token_weight)) {
    return InvalidArgument("objective weights " + ShortNumber(ttft_weight) + ", " +
                           ShortNumber(token_weight) + " must be finite and >= 0");
  }
  // Both zero makes every plan cost nothing: the choice would be arbitrary, which is never what was meant.
  if (ttft_weight == 0 && token_weight == 0) {
    return InvalidArgument("objective weights are both 0; at least one must be positive");
  }
  return Status::Ok();
}

Status ValidatePlanInputs(const PlanInputs& inputs) {
  TANDEM_RETURN_IF_ERROR(CheckModelAndEdge(inputs));
  for (size_t i = 0; i < inputs.tails.size(); ++i) TANDEM_RETURN_IF_ERROR(CheckTail(inputs, i));
  TANDEM_RETURN_IF_ERROR(CheckConstraints(inputs));
  TANDEM_RETURN_IF_ERROR(CheckRequest(inputs));
  return CheckDraft(inputs.draft);
}

}  // namespace tandem::scheduler
