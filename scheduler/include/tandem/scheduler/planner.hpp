// The split planner: predicts, for every feasible (tail, cut k, activation codec), the time to first token
// of a prompt and the time per decoded token, and picks the plan that minimizes the configured objective.
//
//   prefill(T) = edge blocks [0,k) for T tokens
//              + chunks(T) x RTT + bytes(codec, T rows) / bandwidth
//              + tail blocks [k,L) for T tokens + head, inflated by the tail's load
//   decode     = the same with T = 1
// and all-local (k = L, no tail) = edge blocks [0,L) + head on the edge. With private output the tail runs
// only [k,m) and sends its rows back: the bytes go both ways, and edge blocks [m,L) + head come after.
//
// With speculative decoding (PlanInputs::draft), a decode step carries n drafts: it is the same sum for
// T = n + 1 rows (the prefill line of each profile; the head scaled as the blocks are) plus n drafted
// tokens, and yields E(a, n) tokens (draft_planner.hpp), so
//   decode     = min over n of step(n) / E(a, n)
// The round trip is paid once per step whatever n: drafting is how a split hides it.
//
// Pure: every input is a measurement handed in (profiles, link estimates, load), so plans are tested with
// tables. Nothing here reads a clock except PlanStabilizer, which is given one.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tandem/base/clock.hpp"
#include "tandem/base/status.hpp"
#include "tandem/scheduler/draft_planner.hpp"
#include "tandem/wire/activation_codec.hpp"
#include "tandem/wire/compute_profile.hpp"

namespace tandem::scheduler {

using tandem::ComputeProfile;

// Milliseconds for blocks [first, last) of `profile`: decode, or a prefill of `tokens` positions
// (interpolated linearly in T between buckets, proportionally beyond the last; the decode figure x T
// when there are no buckets). Below the first bucket the interpolation starts from the decode figure at
// T = 1. An empty range or tokens <= 0 is 0 ms; the range is clipped to the profile's blocks.
double DecodeBlocksMs(const ComputeProfile& profile, int first, int last);
double PrefillBlocksMs(const ComputeProfile& profile, int tokens, int first, int last);

struct LinkEstimate {
  double rtt_ms = 0;
  double bandwidth_bytes_per_ms = 0;  // <= 0: unknown (the planner then uses PlanInputs::default_bandwidth)
  bool up = true;                     // false: probes are going unanswered
};

// What the planner knows of one cloud tail.
struct TailState {
  std::string endpoint;    // identifies the tail ("tcp://10.0.0.7:5555")
  ComputeProfile profile;  // its per-block times (of the blocks it holds)
  // The blocks it holds, [held_first, held_last) (a block-range checkpoint; HELLO says); held_last < 0:
  // every block. Holding block L-1 means holding the head too.
  int held_first = 0;
  int held_last = -1;
  double utilization = 0;  // busy fraction of its workers, 0..1: its compute is inflated by 1/(1-u)
  uint32_t max_rows = 0;   // rows per ACTIVATIONS (HELLO); a longer prefill costs one round trip per chunk
  int64_t free_kv_bytes = -1;           // < 0: unknown (not a constraint)
  std::vector<ActivationCodec> codecs;  // codecs it accepts; empty: every codec
  LinkEstimate link;                    // from this edge to the tail
};

struct PlanConstraints {
  int min_edge_blocks = 1;   // privacy floor k_min: 1 keeps token ids and embeddings on the device
  int max_edge_blocks = -1;  // edge memory budget in blocks; < 0: every block
  // Accuracy budget: the codecs allowed on the wire (empty: lossless fp32 only) ...
  std::vector<ActivationCodec> allowed_codecs;
  // ... and how many of the edge's int8 blocks may run (< 0: any).
  int max_int8_blocks = -1;
  bool allow_local = true;  // all-local, when the edge may hold every block
  // Private output: every split is U-shaped, the tail running [k,m) only, so that no token or logit is
  // on the tail; the edge keeps at least the last `min_edge_last_blocks` blocks besides the head (0: the
  // head alone, but a tail that holds the head's weights can then compute the tokens itself).
  bool private_output = false;
  int min_edge_last_blocks = 1;
};

// cost = ttft_weight x prefill_ms + token_weight x decode_ms x expected_tokens.
struct Objective {
  double ttft_weight = 1;
  double token_weight = 1;
  static Objective Ttft() { return {1, 0}; }
  static Objective PerToken() { return {0, 1}; }
  // Parses "ttft", "per-token" or "weighted:A,B" (A x TTFT + B x total decode time).
  static Result<Objective> Parse(const std::string& text);
};

// Speculative decoding, as the edge would run it: the acceptance it has seen and what its drafter costs.
struct DraftInputs {
  bool enabled = false;
  double acceptance = 0.5;                 // per-draft acceptance rate, in [0, 1] (AcceptanceEstimate)
  double draft_token_ms = 0;               // the drafter's time per drafted token, on the edge
  int max_drafts = 0;                      // the longest draft considered, in [0, kMaxDraftTokens]
  double min_gain = kDefaultDraftMinGain;  // drafts only if this much faster per token (relative)
};

struct PlanInputs {
  int n_layers = 0;
  int dim = 0;
  int64_t kv_bytes_per_position_per_block = 0;  // keys + values, float32
  ComputeProfile edge;
  int edge_int8_blocks = 0;  // the edge's first blocks hold int8 weights: [0, edge_int8_blocks)
  std::vector<TailState> tails;
  PlanConstraints constraints;
  Objective objective;
  int prompt_tokens = 1;
  int expected_tokens = 1;                        // tokens the request will decode (max_tokens)
  double default_bandwidth_bytes_per_ms = 12500;  // 100 Mbit/s, until a transfer is measured
  // Observed compressed/uncompressed ratio per codec (lz4/zstd on activations); 1 when absent.
  std::vector<std::pair<ActivationCodec, double>> compression_ratios;
  // Disabled: one token per decode step, and plans are as they were before drafting existed. Enabled: the
  // tail's KV also holds max_drafts positions of drafts in flight.
  DraftInputs draft;
};

struct Candidate {
  int tail = -1;         // index into PlanInputs::tails; -1: all-local
  std::string endpoint;  // the tail's, "" for all-local
  int cut = 0;           // k: the edge runs blocks [0, k)
  int end = 0;           // private output: the tail runs [k, end) and the edge [end, L); 0: the tail [k, L)
  ActivationCodec codec;
  double prefill_ms = 0;       // predicted time to first token
  double decode_ms = 0;        // predicted time per later token (per token, not per step, when drafting)
  int draft_tokens = 0;        // drafts per decode step that give decode_ms (0: drafting off or not worth it)
  double tokens_per_step = 1;  // tokens a decode step yields on average with them
  double cost = 0;             // the objective
  bool local() const { return tail < 0; }
  bool private_output() const { return end > 0; }
  // The same choice (tail endpoint, cut, end, codec), whatever the predictions (the draft length
  // counts as one).
  bool SameChoice(const Candidate& other) const;
  // "local", "k=3 fp32 @tcp://..." or "k=1 m=4 fp32 @tcp://...", then " draft=N" when N > 0.
  std::string Describe() const;
};

struct Plan {
  // Every feasible one, by ascending cost. Equal costs are ordered by fewer edge blocks (the edge is the
  // constrained device), then the more accurate precision (Precision's order), then the cheaper
  // compression (none, lz4, zstd), then the lower tail index: the same inputs always give the same plan.
  std::vector<Candidate> candidates;
  Candidate best;          // = candidates.front()
  Candidate best_prefill;  // lowest prefill_ms: the plan for the prefill phase alone
  Candidate best_decode;   // lowest decode_ms: the plan for the decode phase alone
  const Candidate* Find(const Candidate& choice) const;  // the same choice among candidates, or null
};

// Unavailable when no candidate is feasible (every tail down or refused and all-local not allowed);
// InvalidArgument for inconsistent inputs (profile sizes, constraints, negative or non-finite times, two
// tails with one endpoint, draft inputs out of range).
Result<Plan> MakePlan(const PlanInputs& inputs);

// Hysteresis: keeps the current choice unless another has been predicted better by at least `min_gain`
// (relative) continuously for `hold`, so that noisy estimates do not make the cut flap. A current choice
// that is no longer feasible is replaced at once.
struct HysteresisOptions {
  double min_gain = 0.10;
  Clock::Duration hold = std::chrono::milliseconds(500);
};

// Not thread-safe: one per planning loop.
class PlanStabilizer {
 public:
  explicit PlanStabilizer(const Clock& clock, HysteresisOptions options = {})
      : clock_(clock), options_(options) {}
  // The candidate to use now, given a fresh plan (returned by value: `plan` may not outlive it).
  Candidate Choose(const Plan& plan);
  const std::optional<Candidate>& current() const { return current_; }

 private:
  const Clock& clock_;
  HysteresisOptions options_;
  std::optional<Candidate> current_;
  std::optional<Candidate> challenger_;  // the better choice being watched, and since when
  Clock::TimePoint challenger_since_{};
};

}  // namespace tandem::scheduler
