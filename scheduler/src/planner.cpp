#include "tandem/scheduler/planner.hpp"

#include <algorithm>
#include <charconv>
#include <functional>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "plan_validation.hpp"

namespace tandem::scheduler {
namespace {

// Every ACTIVATIONS message carries wire.hpp's 40-byte header before its payload, and is answered by a
// TOKEN: the same header plus token, compute time and an empty logprob count (9 bytes), and ZeroMQ's
// framing of the two frames; ~56 bytes in all.
constexpr double kActivationsHeaderBytes = 40;
constexpr double kTokenReplyBytes = 56;
// Past this a tail's predicted compute would explode (1 / (1 - u)); a tail that busy is slow, not
// infinitely slow, and a finite figure keeps the other terms comparable.
constexpr double kMaxUtilization = 0.9;

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

// The longest draft a decode step may carry: 0 without drafting.
int MaxDrafts(const PlanInputs& inputs) {
  return inputs.draft.enabled ? inputs.draft.max_drafts : 0;
}

// Milliseconds for blocks [first, last) on the `rows` rows of one decode step: the decode figure for one
// row (a step without drafts costs exactly what decode does), the prefill line for more.
double StepBlocksMs(const ComputeProfile& profile, int rows, int first, int last) {
  return rows == 1 ? DecodeBlocksMs(profile, first, last) : PrefillBlocksMs(profile, rows, first, last);
}

// The head on `rows` rows. Profiles time it on one row only; it is a matmul like the blocks' own, so it is
// taken to grow with rows as the profile's blocks do (T x head_ms when the blocks have no time).
double StepHeadMs(const ComputeProfile& profile, int rows) {
  if (rows == 1) return profile.head_ms;
  const auto blocks = static_cast<int>(profile.decode_block_ms.size());
  const double one_row = DecodeBlocksMs(profile, 0, blocks);
  if (!(one_row > 0)) return profile.head_ms * rows;
  return profile.head_ms * PrefillBlocksMs(profile, rows, 0, blocks) / one_row;
}

// KV bytes the tail reserves for blocks [cut, end); nullopt when that does not fit in int64 (never fits).
// Drafts in flight take positions too, until the verdict forgets the rejected ones.
std::optional<int64_t> TailKvBytes(const PlanInputs& inputs, int cut, int end) {
  const int64_t positions = int64_t{inputs.prompt_tokens} + inputs.expected_tokens + MaxDrafts(inputs);
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

// The codecs the constraints allow on the wire, each once (none named: lossless fp32 only).
std::vector<ActivationCodec> AllowedCodecs(const PlanConstraints& constraints) {
  std::vector<ActivationCodec> allowed;
  if (constraints.allowed_codecs.empty()) {
    allowed.push_back(ActivationCodec{});
  } else {
    for (const ActivationCodec& codec : constraints.allowed_codecs) {
      if (!Contains(allowed, codec)) allowed.push_back(codec);
    }
  }
  return allowed;
}

// The range of cuts k the edge may take, the same for every tail, and what set its top.
struct CutBounds {
  int min_cut = 0;
  int max_cut = 0;
  std::vector<std::string> max_cut_reasons;
  bool empty() const { return min_cut > max_cut; }
};

CutBounds BoundCuts(const PlanInputs& inputs) {
  const int n_layers = inputs.n_layers;
  const PlanConstraints& constraints = inputs.constraints;
  CutBounds bounds{.min_cut = std::max(constraints.min_edge_blocks, 0),
                   .max_cut = n_layers - 1,  // k = L is all-local
                   .max_cut_reasons = {"k < L = " + std::to_string(n_layers)}};
  if (constraints.max_edge_blocks >= 0 && constraints.max_edge_blocks <= bounds.max_cut) {
    bounds.max_cut = constraints.max_edge_blocks;
    bounds.max_cut_reasons.push_back("edge memory budget " + std::to_string(constraints.max_edge_blocks) +
                                     " blocks");
  }
  // The edge runs min(k, edge_int8_blocks) int8 blocks: the budget binds k only when the edge holds more.
  if (constraints.max_int8_blocks >= 0 && inputs.edge_int8_blocks > constraints.max_int8_blocks &&
      constraints.max_int8_blocks <= bounds.max_cut) {
    bounds.max_cut = constraints.max_int8_blocks;
    bounds.max_cut_reasons.push_back("int8 budget " + std::to_string(constraints.max_int8_blocks) +
                                     " of the edge's " + std::to_string(inputs.edge_int8_blocks) +
                                     " int8 blocks");
  }
  return bounds;
}

// What one tail's link costs a candidate, whatever its cut: the boundary is dim wide at every cut, so the
// bytes depend on the codec alone.
struct LinkCosts {
  double bandwidth = 0;  // bytes per ms
  double inflation = 1;  // of the tail's compute, by its load
  int64_t chunks = 1;    // prefill messages, each waiting for its reply: a round trip apiece
  // Per codec, both ways with private output: the prefill's, and a decode step's with n drafts (n + 1
  // rows in one message) by n.
  std::vector<double> prefill_bytes;
  std::vector<std::vector<double>> step_bytes;
};

Result<LinkCosts> LinkCostsOf(const PlanInputs& inputs, const TailState& tail,
                              const std::vector<ActivationCodec>& codecs) {
  const int tokens = inputs.prompt_tokens;
  LinkCosts link;
  link.bandwidth = tail.link.bandwidth_bytes_per_ms > 0 ? tail.link.bandwidth_bytes_per_ms
                                                        : inputs.default_bandwidth_bytes_per_ms;
  link.inflation = 1.0 / (1.0 - std::min(tail.utilization, kMaxUtilization));
  link.chunks = tail.max_rows == 0 ? 1 : (int64_t{tokens} + tail.max_rows - 1) / tail.max_rows;
  const double directions = inputs.constraints.private_output ? 2 : 1;
  for (const ActivationCodec& codec : codecs) {
    TANDEM_ASSIGN_OR_RETURN(const double prefill, WireBytes(inputs, codec, tokens, link.chunks));
    link.prefill_bytes.push_back(prefill * directions);
    std::vector<double>& step = link.step_bytes.emplace_back();
    for (int drafts = 0; drafts <= MaxDrafts(inputs); ++drafts) {
      TANDEM_ASSIGN_OR_RETURN(const double bytes, WireBytes(inputs, codec, drafts + 1, 1));
      step.push_back(bytes * directions);
    }
  }
  return link;
}

// Builds a plan's candidates in steps: each tail's (or the reason it has none), then all-local. The
// bounds on the cut and the edge's compute per cut are worked out once and shared by every tail.
class CandidateBuilder {
 public:
  explicit CandidateBuilder(const PlanInputs& inputs)
      : inputs_(inputs), bounds_(BoundCuts(inputs)), allowed_(AllowedCodecs(inputs.constraints)) {
    const auto cuts = static_cast<size_t>(inputs.n_layers) + 1;
    edge_prefill_.resize(cuts);
    for (int k = 0; k <= inputs.n_layers; ++k) {
      edge_prefill_[static_cast<size_t>(k)] = PrefillBlocksMs(inputs.edge, inputs.prompt_tokens, 0, k);
    }
  }

  // Adds every candidate on the tails; the reasons of the tails that have none.
  Result<std::vector<std::string>> AddTails() {
    std::vector<std::string> problems;
    if (bounds_.empty()) {
      if (!inputs_.tails.empty()) {
        problems.push_back("no cut satisfies k >= " + std::to_string(bounds_.min_cut) +
                           " (privacy floor) and " + Join(bounds_.max_cut_reasons, ", "));
      }
      return problems;
    }
    for (size_t i = 0; i < inputs_.tails.size(); ++i) {
      TANDEM_ASSIGN_OR_RETURN(std::string problem, AddTail(i));
      if (!problem.empty()) problems.push_back(std::move(problem));
    }
    return problems;
  }

  // Adds all-local unless a constraint forbids it; the constraints that do.
  std::vector<std::string> AddLocal() {
    const int n_layers = inputs_.n_layers;
    const PlanConstraints& constraints = inputs_.constraints;
    std::vector<std::string> problems;
    if (!constraints.allow_local) problems.push_back("allow_local is off");
    if (constraints.max_edge_blocks >= 0 && constraints.max_edge_blocks < n_layers) {
      problems.push_back("edge memory budget " + std::to_string(constraints.max_edge_blocks) + " of " +
                         std::to_string(n_layers) + " blocks");
    }
    if (constraints.max_int8_blocks >= 0 && inputs_.edge_int8_blocks > constraints.max_int8_blocks) {
      problems.push_back("int8 budget " + std::to_string(constraints.max_int8_blocks) + " of the edge's " +
                         std::to_string(inputs_.edge_int8_blocks) + " int8 blocks");
    }
    if (problems.empty()) {
      Candidate local{.tail = -1, .cut = n_layers};
      local.prefill_ms = edge_prefill_.back() + inputs_.edge.head_ms;
      // No round trip to hide, but a step of n + 1 rows may still cost less than n + 1 steps.
      PredictDecode(local, [&](int drafts) {
        return StepBlocksMs(inputs_.edge, drafts + 1, 0, n_layers) + StepHeadMs(inputs_.edge, drafts + 1) +
               drafts * inputs_.draft.draft_token_ms;
      });
      candidates_.push_back(std::move(local));
    }
    return problems;
  }

  std::vector<Candidate> TakeCandidates() { return std::move(candidates_); }

 private:
  double Cost(const Candidate& c) const {
    return inputs_.objective.ttft_weight * c.prefill_ms +
           inputs_.objective.token_weight * c.decode_ms * inputs_.expected_tokens;
  }

  // c's decode_ms, draft length and cost, from what a decode step with n drafts costs. Without drafting
  // only n = 0 is tried: decode_ms = step_ms(0), a plain decode step.
  void PredictDecode(Candidate& c, const std::function<double(int)>& step_ms) const {
    const DraftChoice choice =
        ChooseDraftLength(inputs_.draft.acceptance, MaxDrafts(inputs_), inputs_.draft.min_gain, step_ms);
    c.decode_ms = choice.ms_per_token;
    c.draft_tokens = choice.drafts;
    c.tokens_per_step = choice.tokens_per_step;
    c.cost = Cost(c);
  }

  // Adds tail i's candidates: every (k, m, codec) its link, codecs, held blocks and free KV allow.
  // "" when it has some, else why it has none.
  Result<std::string> AddTail(size_t i) {
    const TailState& tail = inputs_.tails[i];
    const std::string name = tail.endpoint.empty() ? "tail " + std::to_string(i) : tail.endpoint;
    if (!tail.link.up) return name + ": link down";
    std::vector<ActivationCodec> codecs;
    for (const ActivationCodec& codec : allowed_) {
      if (tail.codecs.empty() || Contains(tail.codecs, codec)) codecs.push_back(codec);
    }
    if (codecs.empty()) {
      return name + ": accepts none of the allowed codecs (allowed " + CodecNames(allowed_) +
             "; it accepts " + CodecNames(tail.codecs) + ")";
    }
    // The blocks the tail may run: those it holds; without private output, through the head.
    const int n_layers = inputs_.n_layers;
    const int held_first = tail.held_first;
    const int held_last = tail.held_last < 0 ? n_layers : tail.held_last;
    const bool u_shaped = inputs_.constraints.private_output;
    if (!u_shaped && held_last < n_layers) {
      return name + ": holds blocks " + std::to_string(held_first) + ":" + std::to_string(held_last) +
             " only, no head (private output only)";
    }
    const int last_end =
        u_shaped ? std::min(held_last, n_layers - inputs_.constraints.min_edge_last_blocks) : n_layers;
    const int first_cut = std::max(bounds_.min_cut, held_first);
    TANDEM_ASSIGN_OR_RETURN(const LinkCosts link, LinkCostsOf(inputs_, tail, codecs));
    std::optional<std::pair<int, int>> smallest_unfitting;  // the range of least KV that did not fit
    const size_t before = candidates_.size();
    for (int k = first_cut; k <= bounds_.max_cut; ++k) {
      for (int m = u_shaped ? k + 1 : n_layers; m <= last_end; ++m) {
        if (KvFits(inputs_, tail, k, m)) {
          AddRange(i, k, m, codecs, link);
        } else if (!smallest_unfitting || m - k < smallest_unfitting->second - smallest_unfitting->first) {
          smallest_unfitting = {k, m};
        }
      }
    }
    if (candidates_.size() > before) return std::string();
    if (smallest_unfitting) return name + ": " + KvProblem(tail, *smallest_unfitting);
    return name + ": no cut k in " + std::to_string(first_cut) + ".." + std::to_string(bounds_.max_cut) +
           (u_shaped ? " with a tail end m <= " + std::to_string(last_end) : "") +
           " within the blocks it holds (" + std::to_string(held_first) + ":" + std::to_string(held_last) +
           ")";
  }

  // The candidates of tail i running [k, m) (through the head unless private output), one per codec.
  void AddRange(size_t i, int k, int m, const std::vector<ActivationCodec>& codecs, const LinkCosts& link) {
    const TailState& tail = inputs_.tails[i];
    const int n_layers = inputs_.n_layers;
    const int tokens = inputs_.prompt_tokens;
    const bool u_shaped = inputs_.constraints.private_output;
    // The tail's blocks (and head), then, with private output, the edge's last blocks and head.
    const double head_ms = u_shaped ? 0 : tail.profile.head_ms;
    const double tail_prefill = (PrefillBlocksMs(tail.profile, tokens, k, m) + head_ms) * link.inflation;
    const double edge_rest_prefill =
        u_shaped ? PrefillBlocksMs(inputs_.edge, tokens, m, n_layers) + inputs_.edge.head_ms : 0;
    // The compute of a decode step with n drafts (n + 1 rows), by n; the same for every codec.
    struct StepCompute {
      double edge, tail, edge_rest;
    };
    std::vector<StepCompute> step_compute;
    for (int rows = 1; rows <= MaxDrafts(inputs_) + 1; ++rows) {
      const double tail_head = u_shaped ? 0 : StepHeadMs(tail.profile, rows);
      step_compute.push_back({.edge = StepBlocksMs(inputs_.edge, rows, 0, k),
                              .tail = (StepBlocksMs(tail.profile, rows, k, m) + tail_head) * link.inflation,
                              .edge_rest = u_shaped ? StepBlocksMs(inputs_.edge, rows, m, n_layers) +
                                                          StepHeadMs(inputs_.edge, rows)
                                                    : 0});
    }
    for (size_t c = 0; c < codecs.size(); ++c) {
      Candidate candidate{.tail = static_cast<int>(i),
                          .endpoint = tail.endpoint,
                          .cut = k,
                          .end = u_shaped ? m : 0,
                          .codec = codecs[c]};
      candidate.prefill_ms = edge_prefill_[static_cast<size_t>(k)] +
                             static_cast<double>(link.chunks) * tail.link.rtt_ms +
                             link.prefill_bytes[c] / link.bandwidth + tail_prefill + edge_rest_prefill;
      // One round trip per step, however many drafts ride on it.
      PredictDecode(candidate, [&](int drafts) {
        const StepCompute& compute = step_compute[static_cast<size_t>(drafts)];
        return compute.edge + tail.link.rtt_ms +
               link.step_bytes[c][static_cast<size_t>(drafts)] / link.bandwidth + compute.tail +
               compute.edge_rest + drafts * inputs_.draft.draft_token_ms;
      });
      candidates_.push_back(std::move(candidate));
    }
  }

  // Why the range of least KV, [k, m), does not fit on `tail`.
  std::string KvProblem(const TailState& tail, std::pair<int, int> range) const {
    const auto needed = TailKvBytes(inputs_, range.first, range.second);
    return "KV cache does not fit (k=" + std::to_string(range.first) +
           (inputs_.constraints.private_output ? " m=" + std::to_string(range.second) : "") + " needs " +
           (needed ? std::to_string(*needed) : std::string("more than 2^63")) + " bytes, " +
           std::to_string(tail.free_kv_bytes) + " free)";
  }

  const PlanInputs& inputs_;
  const CutBounds bounds_;
  const std::vector<ActivationCodec> allowed_;
  std::vector<double> edge_prefill_;  // the edge's blocks [0, k) on the prompt, by k
  std::vector<Candidate> candidates_;
};

// The candidates by ascending cost, the best overall and the best for each phase alone.
Plan Ranked(std::vector<Candidate> candidates) {
  Plan plan;
  plan.candidates = std::move(candidates);
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
    Status weights_ok = CheckObjectiveWeights(weights[0], weights[1]);
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
  const std::string drafting = draft_tokens > 0 ? " draft=" + std::to_string(draft_tokens) : "";
  if (local()) return "local" + drafting;
  return "k=" + std::to_string(cut) + (private_output() ? " m=" + std::to_string(end) : "") + " " +
         codec.Name() + " @" + endpoint + drafting;
}

const Candidate* Plan::Find(const Candidate& choice) const {
  for (const Candidate& candidate : candidates) {
    if (candidate.SameChoice(choice)) return &candidate;
  }
  return nullptr;
}

Result<Plan> MakePlan(const PlanInputs& inputs) {
  TANDEM_RETURN_IF_ERROR(ValidatePlanInputs(inputs));
  CandidateBuilder builder(inputs);
  TANDEM_ASSIGN_OR_RETURN(const std::vector<std::string> tail_problems, builder.AddTails());
  const std::vector<std::string> local_problems = builder.AddLocal();
  std::vector<Candidate> candidates = builder.TakeCandidates();
  if (candidates.empty()) {
    const std::string tails =
        inputs.tails.empty() ? "no tail configured" : "no tail usable (" + Join(tail_problems, "; ") + ")";
    return Unavailable("no feasible plan: " + tails + " and all-local not allowed (" +
                       Join(local_problems, "; ") + ")");
  }
  return Ranked(std::move(candidates));
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

}  // namespace tandem::scheduler
