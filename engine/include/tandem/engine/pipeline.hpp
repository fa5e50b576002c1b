// The split pipeline: an edge part (embedding + blocks [0, k)) feeding a tail (blocks [k, L), final norm,
// head and sampling) through the TailRunner seam, and the generation loop over both.
//
// All-local and split runs take the same path: all-local is a cut at k = L with a LocalTail that runs no
// blocks. A remote tail (ZeroMQ) implements TailRunner too.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/engine/sampler.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem {

class Transformer;
class KvCache;

// Hidden states crossing the cut: `rows` consecutive positions × `cols` (= dim) floats, row-major.
struct HiddenRows {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<float> values;
};

// What a remote runner's session put on the wire and got back; runners in process have none.
struct WireStats {
  int64_t raw_bytes = 0;        // float32 bytes of the rows sent (before the codec)
  int64_t payload_bytes = 0;    // codec output (after compression)
  int64_t wire_bytes_sent = 0;  // headers + payloads of every message sent
  int64_t wire_bytes_received = 0;
  std::vector<int64_t> step_payload_bytes;  // per ACTIVATIONS: the prefill chunk, then one per token
  std::vector<double> step_round_trip_ms;   // ACTIVATIONS sent -> TOKEN (or ROWS) received
  std::vector<double> step_cloud_compute_ms;
  int resends = 0;                     // steps sent again for want of a reply
  int64_t returned_payload_bytes = 0;  // private output: codec payloads of the ROWS received
};

// What a verify step (speculative decoding) decided: how many of the drafted tokens the model kept, and
// the tokens that come out of the step: the kept drafts, then the model's own next token.
struct VerifyOutcome {
  int kept = 0;
  std::vector<int> tokens;  // kept + 1 tokens
  bool operator==(const VerifyOutcome&) const = default;
};

// One step of a session as the edge logged it, for a replay: its boundary rows, the drafted tokens its
// last rows carry (none for a plain step), and how many of them it kept when it first ran (where the next
// step's rows start: a remote tail pipelines the replay before any reply says so).
struct TailStep {
  HiddenRows rows;
  std::vector<int> draft;
  int kept = 0;
  int64_t positions_kept() const { return rows.rows - static_cast<int64_t>(draft.size()) + kept; }
};

// One session's model tail. Implementations are used by one session at a time (not thread-safe).
class TailRunner {
 public:
  virtual ~TailRunner() = default;
  // Consumes `rows` as the session's next positions and returns the token sampled from the last row.
  // On error the session's state is unchanged.
  virtual Result<int> Forward(const HiddenRows& rows) = 0;
  // A verify step: the last draft.size() rows are the drafted tokens `draft` (after at least one row of
  // the session's own tokens). Samples a token from the row before each draft in turn as a step without
  // drafts would, keeping the drafts while they are the tokens sampled and stopping at the first that is
  // not; forgets the positions of the drafts not kept. The tokens are those of the same session without
  // drafting. No draft: Forward. Runners that cannot verify refuse drafts.
  virtual Result<VerifyOutcome> Verify(const HiddenRows& rows, std::span<const int> draft);
  // Consumes several logged steps in order (a replay) and returns each step's outcome. Remote tails send
  // them all before waiting, paying one round trip instead of one per step.
  virtual Result<std::vector<VerifyOutcome>> ForwardAll(std::span<const TailStep> steps);
  // Bytes that crossed the cut so far (0 when nothing is serialized).
  virtual int64_t BytesSent() const { return 0; }
  // The wire statistics of the session behind this tail when it is remote (also through a U-shaped
  // tail's middle), else null. Valid as long as the runner.
  virtual const WireStats* wire_stats() const { return nullptr; }
};

// Embedding + blocks [0, cut) for one session, with its KV cache.
class EdgeRunner {
 public:
  EdgeRunner(std::shared_ptr<const Transformer> model, int cut, int capacity);
  ~EdgeRunner();
  Result<HiddenRows> Forward(std::span<const int> tokens);
  // Forgets the last `count` positions (drafts the tail did not keep).
  void DropPositions(int count);
  int positions() const;
  int cut() const;
  int seq_len() const;  // the model's context length

 private:
  std::shared_ptr<const Transformer> model_;
  std::unique_ptr<KvCache> cache_;
};

// Blocks [cut, L), final RMSNorm, classifier and sampling, in this process.
class LocalTail final : public TailRunner {
 public:
  // `top_logprobs` > 0 also keeps the log-probabilities of that many most likely tokens of each step.
  LocalTail(std::shared_ptr<const Transformer> model, int cut, int capacity, SamplingParams sampling,
            int top_logprobs = 0);
  ~LocalTail() override;
  Result<int> Forward(const HiddenRows& rows) override;
  Result<VerifyOutcome> Verify(const HiddenRows& rows, std::span<const int> draft) override;
  // One decode row for each of several sessions' tails (of one model), run together: their blocks through
  // Transformer::RunDecodeBatch, their heads through one classifier pass, then each sampled by its own
  // sampler. tokens[i] is what tails[i]->Forward(rows[i]) would return, bit for bit; a step that cannot
  // join the batch (not one row, a full cache) runs alone and gets its own answer.
  static std::vector<Result<int>> ForwardDecodeBatch(std::span<LocalTail* const> tails,
                                                     std::span<const HiddenRows> rows);

  // The last step's most likely tokens and their log-probabilities (temperature 1), best first.
  const std::vector<std::pair<int, float>>& top_logprobs() const { return top_logprobs_; }
  int64_t kv_cache_bytes() const;
  int positions() const;  // positions consumed so far

 private:
  Status CheckRows(const HiddenRows& rows) const;
  // Samples the next token from one position's logits and keeps its top log-probabilities.
  Result<int> Sample(std::span<const float> logits);

  std::shared_ptr<const Transformer> model_;
  std::unique_ptr<KvCache> cache_;
  Sampler sampler_;
  int top_logprobs_count_;
  std::vector<std::pair<int, float>> top_logprobs_;
};

// Blocks in the middle of a private-output (U-shaped) split: hidden rows in, the rows after the last of its
// blocks out, all positions of each step. Used by one session at a time.
class MiddleRunner {
 public:
  virtual ~MiddleRunner() = default;
  // Consumes `rows` as the session's next positions; on error the session's state is unchanged.
  virtual Result<HiddenRows> ForwardRows(const HiddenRows& rows) = 0;
  // Forgets the last `count` positions (drafts the device did not keep); the next step's rows follow the
  // ones kept.
  virtual Status DropPositions(int count) = 0;
  // Several logged steps in order (a replay), each followed by dropping its drafts not kept; remote middles
  // send them all before waiting.
  virtual Result<std::vector<HiddenRows>> ForwardAllRows(std::span<const TailStep> steps);
  virtual int64_t BytesSent() const { return 0; }
  virtual const WireStats* wire_stats() const { return nullptr; }  // as TailRunner's
};

// Blocks [first, last) in this process, on their own KV cache.
class LocalMiddle final : public MiddleRunner {
 public:
  LocalMiddle(std::shared_ptr<const Transformer> model, int first, int last, int capacity);
  ~LocalMiddle() override;
  Result<HiddenRows> ForwardRows(const HiddenRows& rows) override;
  Status DropPositions(int count) override;
  int positions() const;
  int64_t kv_cache_bytes() const;

 private:
  std::shared_ptr<const Transformer> model_;
  std::unique_ptr<KvCache> cache_;
};

// Private output: blocks [k, m) run in the middle (a cloud tail that never sees a token or a logit), the
// rows it returns go through `rest` (blocks [m, L), the head and sampling, on the device).
class UShapedTail final : public TailRunner {
 public:
  UShapedTail(std::unique_ptr<MiddleRunner> middle, std::unique_ptr<TailRunner> rest)
      : middle_(std::move(middle)), rest_(std::move(rest)) {}
  Result<int> Forward(const HiddenRows& rows) override;
  // The middle's rows for every position, verified here; the middle then forgets the drafts not kept.
  Result<VerifyOutcome> Verify(const HiddenRows& rows, std::span<const int> draft) override;
  Result<std::vector<VerifyOutcome>> ForwardAll(std::span<const TailStep> steps) override;
  int64_t BytesSent() const override { return middle_->BytesSent(); }
  const WireStats* wire_stats() const override { return middle_->wire_stats(); }
  MiddleRunner& middle() const { return *middle_; }

 private:
  std::unique_ptr<MiddleRunner> middle_;
  std::unique_ptr<TailRunner> rest_;
};

// Passes the rows through the activation codec (encode, then decode) before handing them to `inner`,
// exactly as a remote tail would receive them, and counts the encoded bytes.
class LoopbackTail final : public TailRunner {
 public:
  LoopbackTail(std::unique_ptr<TailRunner> inner, ActivationCodec codec)
      : inner_(std::move(inner)), codec_(codec) {}
  Result<int> Forward(const HiddenRows& rows) override;
  Result<VerifyOutcome> Verify(const HiddenRows& rows, std::span<const int> draft) override;
  int64_t BytesSent() const override { return bytes_sent_; }

 private:
  std::unique_ptr<TailRunner> inner_;
  ActivationCodec codec_;
  int64_t bytes_sent_ = 0;
};

// The same for a middle: its rows through the codec both ways, as a cloud tail's ROWS come back.
class LoopbackMiddle final : public MiddleRunner {
 public:
  LoopbackMiddle(std::unique_ptr<MiddleRunner> inner, ActivationCodec codec)
      : inner_(std::move(inner)), codec_(codec) {}
  Result<HiddenRows> ForwardRows(const HiddenRows& rows) override;
  Status DropPositions(int count) override { return inner_->DropPositions(count); }
  int64_t BytesSent() const override { return bytes_sent_; }

 private:
  std::unique_ptr<MiddleRunner> inner_;
  ActivationCodec codec_;
  int64_t bytes_sent_ = 0;
};

// `rows` after a trip through `codec` (encode, then decode), as the far side of the wire receives them;
// `bytes` counts the encoded payload.
Result<HiddenRows> ThroughCodec(const HiddenRows& rows, ActivationCodec codec, int64_t& bytes);

struct GenerateOptions {
  // llama2.c's -n: forward positions, BOS and prompt included; <= 0 or > seq_len means seq_len.
  int steps = 256;
  // Tokens that end the generation when sampled (kept in ids): the tokenizer's end-of-text ids. llama2.c's
  // models end a story with BOS, the default; empty: none.
  std::vector<int> stop_tokens = {1};
};

struct GenerationTimings {
  int prompt_tokens = 0;     // tokens prefilled (BOS included)
  int generated_tokens = 0;  // tokens sampled
  double prefill_ms = 0;     // prompt in, first token out (time to first token)
  double decode_ms = 0;      // every later token
  int64_t bytes_across_cut = 0;
  int model_steps = 0;     // passes through the model (round trips of a split), the prefill's included
  int drafted_tokens = 0;  // tokens drafters proposed
  int kept_drafts = 0;     // of which the model kept
  double prefill_tokens_per_second() const;
  double decode_tokens_per_second() const;
  double tokens_per_step() const;  // generated tokens per model step
};

struct Generation {
  std::vector<int> ids;  // prompt ids then every sampled token
  GenerationTimings timings;
};

// Sees each sampled token as it is produced; returns false to end the generation there (a stop string
// matched, the client went away).
using TokenCallback = std::function<bool(int token)>;

// One forward step of a whole model: token ids in (the prompt, then one token at a time), the token sampled
// from the last position out.
using ModelStep = std::function<Result<int>(std::span<const int> tokens)>;
// The same with drafted tokens after `tokens` to verify (TailRunner::Verify); no draft: a ModelStep.
using VerifyStep =
    std::function<Result<VerifyOutcome>(std::span<const int> tokens, std::span<const int> draft)>;
// Proposes the drafts of the next step: given every token so far (the prompt and the tokens generated, the
// last not yet through the model), at most `max_tokens` tokens; none for a plain step.
using DraftSource = std::function<std::vector<int>(std::span<const int> context, int max_tokens)>;

// Prefills `prompt_ids` (which start with BOS) in one step, then decodes one token at a time until
// `steps` positions (at most `seq_len`), or a stop token, or `on_token` returning false.
Result<Generation> Generate(const ModelStep& step, int seq_len, std::span<const int> prompt_ids,
                            const GenerateOptions& options, const TokenCallback& on_token = {});
// With drafts: each step (the prefill too) verifies what `drafts` proposes, emitting every token it
// yields, in order, under the same limits; tokens past a limit are not emitted.
Result<Generation> Generate(const VerifyStep& step, const DraftSource& drafts, int seq_len,
                            std::span<const int> prompt_ids, const GenerateOptions& options,
                            const TokenCallback& on_token = {});
// One step through an edge part and a tail: `tokens_and_draft` (the step's own tokens, then `draft`)
// through the edge's blocks, verified by the tail, the edge then forgetting the drafts the tail did not keep.
Result<VerifyOutcome> StepThrough(EdgeRunner& edge, TailRunner& tail, std::span<const int> tokens_and_draft,
                                  std::span<const int> draft);
// StepThrough as a VerifyStep.
VerifyStep SplitStep(EdgeRunner& edge, TailRunner& tail);
// Through an edge part and a tail, drafting when `drafts` is given.
Result<Generation> Generate(EdgeRunner& edge, TailRunner& tail, std::span<const int> prompt_ids,
                            const GenerateOptions& options, const TokenCallback& on_token = {},
                            const DraftSource& drafts = {});

}  // namespace tandem
