#include "tandem/sched/planner.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <string_view>
#include <tuple>

namespace tandem::sched {
namespace {

// Every ACTIVATIONS message carries wire.hpp's 40-byte header before its payload, and is answered by a
// TOKEN: the same header plus token, compute time and an empty logprob count (9 bytes), and ZeroMQ's
// framing of the two frames; ~56 bytes in all.
constexpr double kActivationsHeaderBytes = 40;
constexpr double kTokenReplyBytes = 56;
// Past this a tail's predicted compute would explode (1 / (1 - u)); a tail that busy is slow, not
// infinitely slow, and a finite figure keeps the other terms comparable.
constexpr double kMaxUtilization = 0.9;

std::string Num(double value) {
  char buffer[32];
  std::snprintf(buffer, sizeof(buffer), "%g", value);
  return buffer;
}

double SumBlocks(const std::vector<double>& block_ms, int first, int last) {
  first = std::max(first, 0);
  last = std::min(last, static_cast<int>(block_ms.size()));
  double total = 0;
  for (int b = first; b < last; ++b) total += block_ms[static_cast<size_t>(b)];
  return total;
}

std::string Join(const std::vector<std::string>& parts, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += separator;
    out += parts[i];
  }
  return out;
}

std::string CodecNames(const std::vector<ActivationCodec>& codecs) {
  std::vector<std::string> names;
  for (const ActivationCodec& codec : codecs) names.push_back(codec.Name());
  return Join(names, ", ");
}

bool Contains(const std::vector<ActivationCodec>& codecs, const ActivationCodec& codec) {
  return std::find(codecs.begin(), codecs.end(), codec) != codecs.end();
}

Status CheckTime(double value, const std::string& what) {
  // Written so that NaN fails too.
  if (!(value >= 0) || !std::isfinite(value)) {
    return InvalidArgument(what + " is " + Num(value) + "; must be a finite time >= 0");
  }
  return Status::Ok();
}

Status CheckProfile(const ComputeProfile& profile, int n_layers, const std::string& who) {
  const auto blocks = static_cast<size_t>(n_layers);
  if (profile.decode_block_ms.size() != blocks) {
    return InvalidArgument(who + " has " + std::to_string(profile.decode_block_ms.size()) +
                           " decode block times; the model has " + std::to_string(n_layers) + " blocks");
  }
  for (size_t b = 0; b < blocks; ++b) {
    TANDEM_RETURN_IF_ERROR(
        CheckTime(profile.decode_block_ms[b], who + " decode time of block " + std::to_string(b)));
  }
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
    for (size_t b = 0; b < blocks; ++b) {
      TANDEM_RETURN_IF_ERROR(CheckTime(bucket.block_ms[b], name + " time of block " + std::to_string(b)));
    }
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

Status CheckWeights(double ttft_weight, double token_weight) {
  if (!(ttft_weight >= 0) || !(token_weight >= 0) || !std::isfinite(ttft_weight) ||
      !std::isfinite(token_weight)) {
    return InvalidArgument("objective weights " + Num(ttft_weight) + ", " + Num(token_weight) +
                           " must be finite and >= 0");
  }
  // Both zero makes every plan cost nothing: the choice would be arbitrary, which is never what was meant.
  if (ttft_weight == 0 && token_weight == 0) {
    return InvalidArgument("objective weights are both 0; at least one must be positive");
  }
  return Status::Ok();
}

std::string TailName(const PlanInputs& inputs, size_t i) {
  return "tail " + std::to_string(i) + " (" + inputs.tails[i].endpoint + ")";
}

Status Validate(const PlanInputs& inputs) {
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
  for (size_t i = 0; i < inputs.tails.size(); ++i) {
    const TailState& tail = inputs.tails[i];
    const std::string name = TailName(inputs, i);
    TANDEM_RETURN_IF_ERROR(CheckProfile(tail.profile, n_layers, name + " profile"));
    if (!(tail.utilization >= 0 && tail.utilization <= 1)) {
      return InvalidArgument(name + " utilization is " + Num(tail.utilization) + "; must be in [0, 1]");
    }
    TANDEM_RETURN_IF_ERROR(CheckTime(tail.link.rtt_ms, name + " link RTT"));
    if (std::isnan(tail.link.bandwidth_bytes_per_ms) || std::isinf(tail.link.bandwidth_bytes_per_ms)) {
      return InvalidArgument(name + " link bandwidth is " + Num(tail.link.bandwidth_bytes_per_ms) +
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
  }
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
  TANDEM_RETURN_IF_ERROR(CheckWeights(inputs.objective.ttft_weight, inputs.objective.token_weight));
  if (inputs.prompt_tokens < 1) {
    return InvalidArgument("prompt_tokens is " + std::to_string(inputs.prompt_tokens) + "; must be >= 1");
  }
  if (inputs.expected_tokens < 0) {
    return InvalidArgument("expected_tokens is " + std::to_string(inputs.expected_tokens) + "; must be >= 0");
  }
  if (!(inputs.default_bandwidth_bytes_per_ms > 0) || !std::isfinite(inputs.default_bandwidth_bytes_per_ms)) {
    return InvalidArgument("default_bandwidth_bytes_per_ms is " + Num(inputs.default_bandwidth_bytes_per_ms) +
                           "; must be finite and > 0");
  }
  for (const auto& [codec, ratio] : inputs.compression_ratios) {
    TANDEM_RETURN_IF_ERROR(CheckCodec(codec, "compression_ratios"));
    if (!(ratio > 0) || !std::isfinite(ratio)) {
      return InvalidArgument("compression ratio of " + codec.Name() + " is " + Num(ratio) +
                             "; must be finite and > 0");
    }
  }
  return Status::Ok();
}

double CompressionRatio(const PlanInputs& inputs, const ActivationCodec& codec) {
  if (codec.compression == Compression::kNone) return 1;
  for (const auto& [known, ratio] : inputs.compression_ratios) {
    // The codec sends a payload uncompressed when compression would not shrink it, so the wire never
    // carries more than the precision payload, whatever a noisy ratio says.
    if (known == codec) return std::min(ratio, 1.0);
  }
  return 1;
}

// Bytes on the wire, both ways, for `rows` rows sent in `messages` ACTIVATIONS.
Result<double> WireBytes(const PlanInputs& inputs, const ActivationCodec& codec, int64_t rows,
                         int64_t messages) {
  TANDEM_ASSIGN_OR_RETURN(const int64_t payload, PrecisionPayloadBytes(codec.precision, rows, inputs.dim));
  return static_cast<double>(messages) * (kActivationsHeaderBytes + kTokenReplyBytes) +
         static_cast<double>(payload) * CompressionRatio(inputs, codec);
}

// KV bytes the tail reserves for blocks [cut, end); nullopt when that does not fit in int64 (never fits).
std::optional<int64_t> TailKvBytes(const PlanInputs& inputs, int cut, int end) {
  const int64_t positions = int64_t{inputs.prompt_tokens} + inputs.expected_tokens;
  int64_t per_block = 0;
  int64_t total = 0;
  if (__builtin_mul_overflow(positions, inputs.kv_bytes_per_position_per_block, &per_block) ||
      __builtin_mul_overflow(per_block, int64_t{end - cut}, &total)) {
    return std::nullopt;
  }
  return total;
}

bool KvFits(const PlanInputs& inputs, const TailState& tail, int cut, int end) {
  if (tail.free_kv_bytes < 0) return true;
  const auto needed = TailKvBytes(inputs, cut, end);
  return needed.has_value() && *needed <= tail.free_kv_bytes;
}

// The order of Plan::candidates (documented there): cost, then a total order over the choice.
bool CheaperFirst(const Candidate& a, const Candidate& b) {
  return std::make_tuple(a.cost, a.cut, -a.end, a.codec.precision, a.codec.compression, a.tail) <
         std::make_tuple(b.cost, b.cut, -b.end, b.codec.precision, b.codec.compression, b.tail);
}

}  // namespace

double DecodeBlocksMs(const ComputeProfile& profile, int first, int last) {
  return SumBlocks(profile.decode_block_ms, first, last);
}

double PrefillBlocksMs(const ComputeProfile& profile, int tokens, int first, int last) {
  if (tokens <= 0 || first >= last) return 0;
  const double decode = DecodeBlocksMs(profile, first, last);
  const auto& buckets = profile.prefill;
  if (buckets.empty()) return decode * tokens;
  const auto above =
      std::lower_bound(buckets.begin(), buckets.end(), tokens,
                       [](const ComputeProfile::PrefillBucket& bucket, int t) { return bucket.tokens < t; });
  if (above == buckets.end()) {
    const auto& last_bucket = buckets.back();
    return SumBlocks(last_bucket.block_ms, first, last) * tokens / last_bucket.tokens;
  }
  const double above_ms = SumBlocks(above->block_ms, first, last);
  if (above->tokens == tokens) return above_ms;
  // A decode step is a one-token prefill, so the decode figure anchors the line below the first bucket.
  double below_tokens = 1;
  double below_ms = decode;
  if (above != buckets.begin()) {
    below_tokens = std::prev(above)->tokens;
    below_ms = SumBlocks(std::prev(above)->block_ms, first, last);
  }
  if (above->tokens <= below_tokens) return above_ms;  // unsorted buckets (MakePlan refuses them)
  return below_ms + (above_ms - below_ms) * (tokens - below_tokens) / (above->tokens - below_tokens);
}

Result<Objective> Objective::Parse(const std::string& text) {
  const std::string kForms =
      "expected ttft, per-token or weighted:A,B (A x TTFT + B x total decode time, A and B >= 0)";
  if (text == "ttft") return Ttft();
  if (text == "per-token") return PerToken();
  constexpr std::string_view kWeighted = "weighted:";
  if (text.starts_with(kWeighted)) {
    const std::string_view rest = std::string_view(text).substr(kWeighted.size());
    const size_t comma = rest.find(',');
    double weights[2] = {0, 0};
    const std::string_view parts[2] = {
        rest.substr(0, comma), comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1)};
    bool parsed = comma != std::string_view::npos;
    for (int i = 0; parsed && i < 2; ++i) {
      const auto [end, error] =
          std::from_chars(parts[i].data(), parts[i].data() + parts[i].size(), weights[i]);
      parsed = !parts[i].empty() && error == std::errc() && end == parts[i].data() + parts[i].size();
    }
    if (!parsed) return InvalidArgument("objective \"" + text + "\" is malformed; " + kForms);
    Status weights_ok = CheckWeights(weights[0], weights[1]);
    if (!weights_ok.ok()) {
      return InvalidArgument("objective \"" + text + "\": " + weights_ok.message() + "; " + kForms);
    }
    return Objective{weights[0], weights[1]};
  }
  return InvalidArgument("unknown objective \"" + text + "\"; " + kForms);
}

bool Candidate::SameChoice(const Candidate& other) const {
  if (local() || other.local()) return local() && other.local();
  return endpoint == other.endpoint && cut == other.cut && end == other.end && codec == other.codec;
}

std::string Candidate::Describe() const {
  if (local()) return "local";
  return "k=" + std::to_string(cut) + (private_output() ? " m=" + std::to_string(end) : "") + " " +
         codec.Name() + " @" + endpoint;
}

const Candidate* Plan::Find(const Candidate& choice) const {
  for (const Candidate& candidate : candidates) {
    if (candidate.SameChoice(choice)) return &candidate;
  }
  return nullptr;
}

Result<Plan> MakePlan(const PlanInputs& inputs) {
  TANDEM_RETURN_IF_ERROR(Validate(inputs));
  const int n_layers = inputs.n_layers;
  const int tokens = inputs.prompt_tokens;
  const PlanConstraints& constraints = inputs.constraints;
  const Objective& objective = inputs.objective;
  const auto cost = [&](const Candidate& c) {
    return objective.ttft_weight * c.prefill_ms +
           objective.token_weight * c.decode_ms * inputs.expected_tokens;
  };

  // The edge's blocks are [0, k); these bound k for every tail alike.
  const int min_cut = std::max(constraints.min_edge_blocks, 0);
  int max_cut = n_layers - 1;  // k = L is all-local
  std::vector<std::string> max_cut_reasons = {"k < L = " + std::to_string(n_layers)};
  if (constraints.max_edge_blocks >= 0 && constraints.max_edge_blocks <= max_cut) {
    max_cut = constraints.max_edge_blocks;
    max_cut_reasons.push_back("edge memory budget " + std::to_string(constraints.max_edge_blocks) +
                              " blocks");
  }
  // The edge runs min(k, edge_int8_blocks) int8 blocks: the budget binds k only when the edge holds more.
  if (constraints.max_int8_blocks >= 0 && inputs.edge_int8_blocks > constraints.max_int8_blocks &&
      constraints.max_int8_blocks <= max_cut) {
    max_cut = constraints.max_int8_blocks;
    max_cut_reasons.push_back("int8 budget " + std::to_string(constraints.max_int8_blocks) +
                              " of the edge's " + std::to_string(inputs.edge_int8_blocks) + " int8 blocks");
  }

  std::vector<ActivationCodec> allowed;
  if (constraints.allowed_codecs.empty()) {
    allowed.push_back(ActivationCodec{});  // lossless fp32 only
  } else {
    for (const ActivationCodec& codec : constraints.allowed_codecs) {
      if (!Contains(allowed, codec)) allowed.push_back(codec);
    }
  }

  // Edge compute per cut, shared by every tail.
  std::vector<double> edge_prefill(static_cast<size_t>(n_layers) + 1);
  std::vector<double> edge_decode(static_cast<size_t>(n_layers) + 1);
  for (int k = 0; k <= n_layers; ++k) {
    edge_prefill[static_cast<size_t>(k)] = PrefillBlocksMs(inputs.edge, tokens, 0, k);
    edge_decode[static_cast<size_t>(k)] = DecodeBlocksMs(inputs.edge, 0, k);
  }

  Plan plan;
  std::vector<std::string> tail_problems;
  if (min_cut > max_cut && !inputs.tails.empty()) {
    tail_problems.push_back("no cut satisfies k >= " + std::to_string(min_cut) + " (privacy floor) and " +
                            Join(max_cut_reasons, ", "));
  }
  for (size_t i = 0; min_cut <= max_cut && i < inputs.tails.size(); ++i) {
    const TailState& tail = inputs.tails[i];
    const std::string name = tail.endpoint.empty() ? "tail " + std::to_string(i) : tail.endpoint;
    if (!tail.link.up) {
      tail_problems.push_back(name + ": link down");
      continue;
    }
    std::vector<ActivationCodec> codecs;
    for (const ActivationCodec& codec : allowed) {
      if (tail.codecs.empty() || Contains(tail.codecs, codec)) codecs.push_back(codec);
    }
    if (codecs.empty()) {
      tail_problems.push_back(name + ": accepts none of the allowed codecs (allowed " + CodecNames(allowed) +
                              "; it accepts " + CodecNames(tail.codecs) + ")");
      continue;
    }
    // The blocks the tail may run: those it holds; without private output, through the head.
    const int held_first = tail.held_first;
    const int held_last = tail.held_last < 0 ? n_layers : tail.held_last;
    const bool u_shaped = constraints.private_output;
    if (!u_shaped && held_last < n_layers) {
      tail_problems.push_back(name + ": holds blocks " + std::to_string(held_first) + ":" +
                              std::to_string(held_last) + " only, no head (private output only)");
      continue;
    }
    const int last_end =
        u_shaped ? std::min(held_last, n_layers - constraints.min_edge_last_blocks) : n_layers;
    const int first_cut = std::max(min_cut, held_first);

    const double bandwidth = tail.link.bandwidth_bytes_per_ms > 0 ? tail.link.bandwidth_bytes_per_ms
                                                                  : inputs.default_bandwidth_bytes_per_ms;
    const double inflation = 1.0 / (1.0 - std::min(tail.utilization, kMaxUtilization));
    // Chunks go one after another, each waiting for its reply: a round trip apiece.
    const int64_t chunks = tail.max_rows == 0 ? 1 : (int64_t{tokens} + tail.max_rows - 1) / tail.max_rows;
    // The boundary is dim wide at every cut, so the bytes depend on the codec alone; with private output
    // as many come back.
    const double directions = u_shaped ? 2 : 1;
    std::vector<double> prefill_bytes;
    std::vector<double> decode_bytes;
    for (const ActivationCodec& codec : codecs) {
      TANDEM_ASSIGN_OR_RETURN(const double prefill, WireBytes(inputs, codec, tokens, chunks));
      TANDEM_ASSIGN_OR_RETURN(const double decode, WireBytes(inputs, codec, 1, 1));
      prefill_bytes.push_back(prefill * directions);
      decode_bytes.push_back(decode * directions);
    }
    std::optional<std::pair<int, int>> smallest_unfitting;  // the range of least KV that did not fit
    const size_t before = plan.candidates.size();
    for (int k = first_cut; k <= max_cut; ++k) {
      for (int m = u_shaped ? k + 1 : n_layers; m <= last_end; ++m) {
        if (!KvFits(inputs, tail, k, m)) {
          if (!smallest_unfitting || m - k < smallest_unfitting->second - smallest_unfitting->first) {
            smallest_unfitting = {k, m};
          }
          continue;
        }
        // The tail's blocks (and head), then, with private output, the edge's last blocks and head.
        const double head_ms = u_shaped ? 0 : tail.profile.head_ms;
        const double tail_prefill = (PrefillBlocksMs(tail.profile, tokens, k, m) + head_ms) * inflation;
        const double tail_decode = (DecodeBlocksMs(tail.profile, k, m) + head_ms) * inflation;
        const double edge_rest_prefill =
            u_shaped ? PrefillBlocksMs(inputs.edge, tokens, m, n_layers) + inputs.edge.head_ms : 0;
        const double edge_rest_decode =
            u_shaped ? DecodeBlocksMs(inputs.edge, m, n_layers) + inputs.edge.head_ms : 0;
        for (size_t c = 0; c < codecs.size(); ++c) {
          Candidate candidate{.tail = static_cast<int>(i),
                              .endpoint = tail.endpoint,
                              .cut = k,
                              .end = u_shaped ? m : 0,
                              .codec = codecs[c]};
          candidate.prefill_ms = edge_prefill[static_cast<size_t>(k)] +
                                 static_cast<double>(chunks) * tail.link.rtt_ms +
                                 prefill_bytes[c] / bandwidth + tail_prefill + edge_rest_prefill;
          candidate.decode_ms = edge_decode[static_cast<size_t>(k)] + tail.link.rtt_ms +
                                decode_bytes[c] / bandwidth + tail_decode + edge_rest_decode;
          candidate.cost = cost(candidate);
          plan.candidates.push_back(std::move(candidate));
        }
      }
    }
    if (plan.candidates.size() > before) continue;
    if (smallest_unfitting) {
      const auto needed = TailKvBytes(inputs, smallest_unfitting->first, smallest_unfitting->second);
      tail_problems.push_back(name +
                              ": KV cache does not fit (k=" + std::to_string(smallest_unfitting->first) +
                              (u_shaped ? " m=" + std::to_string(smallest_unfitting->second) : "") +
                              " needs " + (needed ? std::to_string(*needed) : std::string("more than 2^63")) +
                              " bytes, " + std::to_string(tail.free_kv_bytes) + " free)");
    } else {
      tail_problems.push_back(name + ": no cut k in " + std::to_string(first_cut) + ".." +
                              std::to_string(max_cut) +
                              (u_shaped ? " with a tail end m <= " + std::to_string(last_end) : "") +
                              " within the blocks it holds (" + std::to_string(held_first) + ":" +
                              std::to_string(held_last) + ")");
    }
  }

  std::vector<std::string> local_problems;
  if (!constraints.allow_local) local_problems.push_back("allow_local is off");
  if (constraints.max_edge_blocks >= 0 && constraints.max_edge_blocks < n_layers) {
    local_problems.push_back("edge memory budget " + std::to_string(constraints.max_edge_blocks) + " of " +
                             std::to_string(n_layers) + " blocks");
  }
  if (constraints.max_int8_blocks >= 0 && inputs.edge_int8_blocks > constraints.max_int8_blocks) {
    local_problems.push_back("int8 budget " + std::to_string(constraints.max_int8_blocks) +
                             " of the edge's " + std::to_string(inputs.edge_int8_blocks) + " int8 blocks");
  }
  if (local_problems.empty()) {
    Candidate local{.tail = -1, .cut = n_layers};
    local.prefill_ms = edge_prefill.back() + inputs.edge.head_ms;
    local.decode_ms = edge_decode.back() + inputs.edge.head_ms;
    local.cost = cost(local);
    plan.candidates.push_back(std::move(local));
  }

  if (plan.candidates.empty()) {
    const std::string tails =
        inputs.tails.empty() ? "no tail configured" : "no tail usable (" + Join(tail_problems, "; ") + ")";
    return Unavailable("no feasible plan: " + tails + " and all-local not allowed (" +
                       Join(local_problems, "; ") + ")");
  }
  std::sort(plan.candidates.begin(), plan.candidates.end(), CheaperFirst);
  plan.best = plan.candidates.front();
  // min_element keeps the first of equal minima, i.e. the cheapest overall among them.
  plan.best_prefill =
      *std::min_element(plan.candidates.begin(), plan.candidates.end(),
                        [](const Candidate& a, const Candidate& b) { return a.prefill_ms < b.prefill_ms; });
  plan.best_decode =
      *std::min_element(plan.candidates.begin(), plan.candidates.end(),
                        [](const Candidate& a, const Candidate& b) { return a.decode_ms < b.decode_ms; });
  return plan;
}

Candidate PlanStabilizer::Choose(const Plan& plan) {
  const Clock::TimePoint now = clock_.Now();
  const Candidate* current = current_ ? plan.Find(*current_) : nullptr;
  if (current == nullptr) {
    // First call, or the current choice is no longer feasible: nothing to be loyal to.
    current_ = plan.best;
    challenger_.reset();
    return *current_;
  }
  const Candidate& best = plan.best;
  // Strictly cheaper too: with min_gain <= 0 or a zero cost, an equal best is no reason to move.
  const bool better = !best.SameChoice(*current) && best.cost < current->cost &&
                      best.cost <= current->cost * (1 - options_.min_gain);
  if (!better) {
    // The gain must hold continuously: a lapse restarts the watch.
    challenger_.reset();
  } else {
    if (!challenger_ || !challenger_->SameChoice(best)) challenger_since_ = now;
    challenger_ = best;
    if (now - challenger_since_ >= options_.hold) {
      current_ = best;
      challenger_.reset();
      return *current_;
    }
  }
  current_ = *current;
  return *current_;
}

}  // namespace tandem::sched
