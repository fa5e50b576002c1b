#include "tandem/engine/pipeline.hpp"

#include <algorithm>

#include <ATen/ATen.h>

#include <chrono>

#include "tandem/engine/transformer.hpp"

namespace tandem {
namespace {

using Clock = std::chrono::steady_clock;

double MillisecondsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

at::Tensor ToTensor(const HiddenRows& rows) {
  return at::from_blob(const_cast<float*>(rows.values.data()), {rows.rows, rows.cols}, at::kFloat).clone();
}

HiddenRows FromTensor(const at::Tensor& hidden) {
  HiddenRows rows{hidden.size(0), hidden.size(1), {}};
  rows.values.assign(hidden.data_ptr<float>(), hidden.data_ptr<float>() + hidden.numel());
  return rows;
}

Status CheckHiddenRows(const HiddenRows& rows, int64_t dim) {
  if (rows.rows <= 0 || rows.cols != dim ||
      rows.values.size() != static_cast<size_t>(rows.rows * rows.cols)) {
    return InvalidArgument("hidden rows must be [T > 0, " + std::to_string(dim) + "]");
  }
  return Status::Ok();
}

}  // namespace

double GenerationTimings::prefill_tokens_per_second() const {
  return prefill_ms > 0 ? prompt_tokens * 1000.0 / prefill_ms : 0.0;
}

double GenerationTimings::tokens_per_step() const {
  return model_steps > 0 ? static_cast<double>(generated_tokens) / model_steps : 0.0;
}

double GenerationTimings::decode_tokens_per_second() const {
  // The first sampled token comes out of the prefill; decode covers the rest.
  const int decoded = generated_tokens - 1;
  return decode_ms > 0 && decoded > 0 ? decoded * 1000.0 / decode_ms : 0.0;
}

EdgeRunner::EdgeRunner(std::shared_ptr<const Transformer> model, int cut, int capacity)
    : model_(std::move(model)),
      cache_(std::make_unique<KvCache>(model_->config(), BlockRange{0, cut}, capacity)) {}

EdgeRunner::~EdgeRunner() = default;

int EdgeRunner::positions() const {
  return cache_->length();
}

void EdgeRunner::DropPositions(int count) {
  cache_->Truncate(cache_->length() - count);
}

int EdgeRunner::cut() const {
  return cache_->range().last;
}
int EdgeRunner::seq_len() const {
  return model_->config().seq_len;
}

Result<HiddenRows> EdgeRunner::Forward(std::span<const int> tokens) {
  TANDEM_ASSIGN_OR_RETURN(at::Tensor hidden, model_->Embed(tokens));
  TANDEM_RETURN_IF_ERROR(model_->RunBlocks(hidden, *cache_));
  return FromTensor(hidden);
}

LocalTail::LocalTail(std::shared_ptr<const Transformer> model, int cut, int capacity, SamplingParams sampling,
                     int top_logprobs)
    : model_(std::move(model)),
      cache_(std::make_unique<KvCache>(model_->config(), BlockRange{cut, model_->n_layers()}, capacity)),
      sampler_(sampling),
      top_logprobs_count_(top_logprobs) {}

LocalTail::~LocalTail() = default;

int64_t LocalTail::kv_cache_bytes() const {
  return cache_->bytes();
}
int LocalTail::positions() const {
  return cache_->length();
}

Status LocalTail::CheckRows(const HiddenRows& rows) const {
  return CheckHiddenRows(rows, model_->config().dim);
}

Result<int> LocalTail::Sample(std::span<const float> logits) {
  const int token = sampler_.Sample(logits);
  if (token < 0) return Internal("the model produced no finite logits");
  if (top_logprobs_count_ > 0) {
    const auto n = static_cast<int64_t>(logits.size());
    const auto k = std::min<int64_t>(top_logprobs_count_, n);
    const at::Tensor view = at::from_blob(const_cast<float*>(logits.data()), {n}, at::kFloat);
    const auto [values, indices] = at::log_softmax(view, 0).topk(k);
    top_logprobs_.clear();
    for (int64_t i = 0; i < k; ++i) {
      top_logprobs_.emplace_back(static_cast<int>(indices[i].item<int64_t>()), values[i].item<float>());
    }
  }
  return token;
}

Result<int> LocalTail::Forward(const HiddenRows& rows) {
  TANDEM_RETURN_IF_ERROR(CheckRows(rows));
  at::Tensor hidden = ToTensor(rows);
  TANDEM_RETURN_IF_ERROR(model_->RunBlocks(hidden, *cache_));
  // Only the last position's logits pick the next token.
  TANDEM_ASSIGN_OR_RETURN(at::Tensor logits, model_->Logits(hidden.narrow(0, rows.rows - 1, 1)));
  logits = logits.contiguous();
  return Sample({logits.data_ptr<float>(), static_cast<size_t>(logits.numel())});
}

Result<VerifyOutcome> LocalTail::Verify(const HiddenRows& rows, std::span<const int> draft) {
  if (draft.empty()) {
    TANDEM_ASSIGN_OR_RETURN(const int token, Forward(rows));
    return VerifyOutcome{.kept = 0, .tokens = {token}};
  }
  TANDEM_RETURN_IF_ERROR(CheckRows(rows));
  const auto drafted = static_cast<int64_t>(draft.size());
  if (drafted >= rows.rows) {
    return InvalidArgument("a verify step needs a row before its " + std::to_string(drafted) + " drafts");
  }
  const int vocab = model_->config().vocab_size;
  for (const int token : draft) {
    if (token < 0 || token >= vocab)
      return InvalidArgument("drafted token " + std::to_string(token) + " is outside the vocabulary");
  }
  const int before = cache_->length();
  at::Tensor hidden = ToTensor(rows);
  TANDEM_RETURN_IF_ERROR(model_->RunBlocks(hidden, *cache_));
  // The row before each draft predicts it; the last row predicts the token after the last draft.
  auto logits = model_->Logits(hidden.narrow(0, rows.rows - drafted - 1, drafted + 1));
  if (!logits.ok()) {
    cache_->Truncate(before);
    return logits.status();
  }
  const at::Tensor all = logits->contiguous();
  const auto width = static_cast<size_t>(all.size(1));
  // Each row's token is sampled as the step without drafts would sample it, from the same draw of the
  // session's RNG (one per token emitted): a draft is kept when it is that token. With a drafter that
  // proposes one token for sure, speculative sampling keeps a draft with probability p(draft), which is
  // exactly this, and here the tokens are even the same as without drafting, seed for seed.
  VerifyOutcome outcome;
  for (int64_t j = 0; j <= drafted; ++j) {
    const std::span<const float> row(all.data_ptr<float>() + j * static_cast<int64_t>(width), width);
    const int token = sampler_.Sample(row);
    if (token < 0) {
      cache_->Truncate(before);
      return Internal("the model produced no finite logits");
    }
    outcome.tokens.push_back(token);
    if (j == drafted || token != draft[static_cast<size_t>(j)]) break;
    ++outcome.kept;
  }
  cache_->Truncate(before + static_cast<int>(rows.rows - drafted) + outcome.kept);
  return outcome;
}

std::vector<Result<int>> LocalTail::ForwardDecodeBatch(std::span<LocalTail* const> tails,
                                                       std::span<const HiddenRows> rows) {
  std::vector<Result<int>> tokens(tails.size(), Internal("not run"));
  std::vector<size_t> members;  // the steps that run together
  std::vector<at::Tensor> hidden;
  std::vector<KvCache*> caches;
  for (size_t i = 0; i < tails.size(); ++i) {
    LocalTail& tail = *tails[i];
    const bool joins = i < rows.size() && tail.model_ == tails[0]->model_ && rows[i].rows == 1 &&
                       tail.CheckRows(rows[i]).ok();
    if (!joins) {
      tokens[i] = i < rows.size() ? tail.Forward(rows[i]) : InvalidArgument("no rows for this tail");
      continue;
    }
    members.push_back(i);
    hidden.push_back(ToTensor(rows[i]));
    caches.push_back(tail.cache_.get());
  }
  if (members.empty()) return tokens;
  const Transformer& model = *tails[members[0]]->model_;
  if (!model.RunDecodeBatch(hidden, caches).ok()) {
    // A step the batch refuses (a full cache) fails it whole, changing nothing: each then runs alone and
    // gets its own answer.
    for (size_t i : members) tokens[i] = tails[i]->Forward(rows[i]);
    return tokens;
  }
  auto batch_logits = model.LogitsDecodeBatch(at::cat(hidden));
  if (!batch_logits.ok()) {
    for (size_t i : members) tokens[i] = batch_logits.status();
    return tokens;
  }
  const at::Tensor logits = batch_logits->contiguous();
  const auto vocab = static_cast<size_t>(logits.size(1));
  for (size_t m = 0; m < members.size(); ++m) {
    tokens[members[m]] = tails[members[m]]->Sample({logits.data_ptr<float>() + m * vocab, vocab});
  }
  return tokens;
}

Result<HiddenRows> ThroughCodec(const HiddenRows& rows, ActivationCodec codec, int64_t& bytes) {
  TANDEM_ASSIGN_OR_RETURN(EncodedActivations encoded,
                          EncodeActivations(rows.values, rows.rows, rows.cols, codec));
  bytes += static_cast<int64_t>(encoded.payload.size());
  const ActivationCodec applied{codec.precision, encoded.compression};
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> values, DecodeActivations(encoded.payload, rows.rows, rows.cols,
                                                                       applied, rows.rows * rows.cols));
  return HiddenRows{rows.rows, rows.cols, std::move(values)};
}

Result<int> LoopbackTail::Forward(const HiddenRows& rows) {
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows received, ThroughCodec(rows, codec_, bytes_sent_));
  return inner_->Forward(received);
}

Result<VerifyOutcome> LoopbackTail::Verify(const HiddenRows& rows, std::span<const int> draft) {
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows received, ThroughCodec(rows, codec_, bytes_sent_));
  return inner_->Verify(received, draft);
}

Result<HiddenRows> LoopbackMiddle::ForwardRows(const HiddenRows& rows) {
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows received, ThroughCodec(rows, codec_, bytes_sent_));
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows returned, inner_->ForwardRows(received));
  int64_t returned_bytes = 0;  // counted as sent: bytes across the cut, both ways
  auto back = ThroughCodec(returned, codec_, returned_bytes);
  bytes_sent_ += returned_bytes;
  return back;
}

LocalMiddle::LocalMiddle(std::shared_ptr<const Transformer> model, int first, int last, int capacity)
    : model_(std::move(model)),
      cache_(std::make_unique<KvCache>(model_->config(), BlockRange{first, last}, capacity)) {}

LocalMiddle::~LocalMiddle() = default;

int LocalMiddle::positions() const {
  return cache_->length();
}

Status LocalMiddle::DropPositions(int count) {
  if (count < 0 || count > cache_->length())
    return InvalidArgument("cannot drop " + std::to_string(count) + " positions");
  cache_->Truncate(cache_->length() - count);
  return Status::Ok();
}

int64_t LocalMiddle::kv_cache_bytes() const {
  return cache_->bytes();
}

Result<HiddenRows> LocalMiddle::ForwardRows(const HiddenRows& rows) {
  TANDEM_RETURN_IF_ERROR(CheckHiddenRows(rows, model_->config().dim));
  at::Tensor hidden = ToTensor(rows);
  TANDEM_RETURN_IF_ERROR(model_->RunBlocks(hidden, *cache_));
  return FromTensor(hidden);
}

Result<std::vector<HiddenRows>> MiddleRunner::ForwardAllRows(std::span<const TailStep> steps) {
  std::vector<HiddenRows> outputs;
  for (const TailStep& step : steps) {
    TANDEM_ASSIGN_OR_RETURN(HiddenRows out, ForwardRows(step.rows));
    TANDEM_RETURN_IF_ERROR(DropPositions(static_cast<int>(step.draft.size()) - step.kept));
    outputs.push_back(std::move(out));
  }
  return outputs;
}

Result<int> UShapedTail::Forward(const HiddenRows& rows) {
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows returned, middle_->ForwardRows(rows));
  return rest_->Forward(returned);
}

Result<VerifyOutcome> UShapedTail::Verify(const HiddenRows& rows, std::span<const int> draft) {
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows returned, middle_->ForwardRows(rows));
  TANDEM_ASSIGN_OR_RETURN(VerifyOutcome outcome, rest_->Verify(returned, draft));
  TANDEM_RETURN_IF_ERROR(middle_->DropPositions(static_cast<int>(draft.size()) - outcome.kept));
  return outcome;
}

Result<std::vector<VerifyOutcome>> UShapedTail::ForwardAll(std::span<const TailStep> steps) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<HiddenRows> returned, middle_->ForwardAllRows(steps));
  std::vector<TailStep> rest(steps.begin(), steps.end());
  for (size_t i = 0; i < rest.size(); ++i) rest[i].rows = std::move(returned[i]);
  return rest_->ForwardAll(rest);
}

Result<VerifyOutcome> TailRunner::Verify(const HiddenRows& rows, std::span<const int> draft) {
  if (!draft.empty()) return InvalidArgument("this tail does not verify drafted tokens");
  TANDEM_ASSIGN_OR_RETURN(const int token, Forward(rows));
  return VerifyOutcome{.kept = 0, .tokens = {token}};
}

Result<std::vector<VerifyOutcome>> TailRunner::ForwardAll(std::span<const TailStep> steps) {
  std::vector<VerifyOutcome> outcomes;
  for (const TailStep& step : steps) {
    TANDEM_ASSIGN_OR_RETURN(VerifyOutcome outcome, Verify(step.rows, step.draft));
    outcomes.push_back(std::move(outcome));
  }
  return outcomes;
}

Result<Generation> Generate(const ModelStep& step, int seq_len, std::span<const int> prompt_ids,
                            const GenerateOptions& options, const TokenCallback& on_token) {
  const VerifyStep verify = [&step](std::span<const int> tokens,
                                    std::span<const int>) -> Result<VerifyOutcome> {
    TANDEM_ASSIGN_OR_RETURN(const int token, step(tokens));
    return VerifyOutcome{.kept = 0, .tokens = {token}};
  };
  return Generate(verify, DraftSource{}, seq_len, prompt_ids, options, on_token);
}

Result<Generation> Generate(const VerifyStep& step, const DraftSource& drafts, int seq_len,
                            std::span<const int> prompt_ids, const GenerateOptions& options,
                            const TokenCallback& on_token) {
  if (prompt_ids.empty()) return InvalidArgument("the prompt has no tokens (BOS expected first)");
  const int steps = options.steps <= 0 || options.steps > seq_len ? seq_len : options.steps;
  Generation result;
  // As llama2.c: position p predicts token p + 1; `steps` positions make steps + 1 tokens in all, of which
  // the prompt's are forced. A prompt longer than that is cut, with nothing to generate.
  const size_t forced = std::min(prompt_ids.size(), static_cast<size_t>(steps) + 1);
  result.ids.assign(prompt_ids.begin(), prompt_ids.begin() + static_cast<std::ptrdiff_t>(forced));
  if (forced > static_cast<size_t>(steps) || forced != prompt_ids.size()) return result;
  GenerationTimings& timings = result.timings;
  timings.prompt_tokens = static_cast<int>(forced);
  const auto is_stop = [&options](int token) {
    return std::find(options.stop_tokens.begin(), options.stop_tokens.end(), token) !=
           options.stop_tokens.end();
  };
  std::vector<int> pending = result.ids;  // tokens not yet through the model
  auto start = Clock::now();
  while (true) {
    // Every drafted token takes a position: the step's rows end by position `steps` at the latest.
    const int room = steps - static_cast<int>(result.ids.size());
    std::vector<int> draft;
    if (drafts && room > 0) {
      draft = drafts(result.ids, room);
      if (draft.size() > static_cast<size_t>(room)) draft.resize(static_cast<size_t>(room));
    }
    TANDEM_ASSIGN_OR_RETURN(const VerifyOutcome outcome, step(pending, draft));
    if (timings.model_steps++ == 0) {
      timings.prefill_ms = MillisecondsSince(start);
      start = Clock::now();
    }
    timings.drafted_tokens += static_cast<int>(draft.size());
    timings.kept_drafts += outcome.kept;
    bool done = outcome.tokens.empty();
    for (const int token : outcome.tokens) {
      if (is_stop(token)) {
        done = true;
        break;
      }
      result.ids.push_back(token);
      ++timings.generated_tokens;
      if ((on_token && !on_token(token)) || result.ids.size() > static_cast<size_t>(steps)) {
        done = true;
        break;
      }
    }
    if (done) break;
    pending.assign(1, result.ids.back());
  }
  timings.decode_ms = MillisecondsSince(start);
  return result;
}

Result<VerifyOutcome> StepThrough(EdgeRunner& edge, TailRunner& tail, std::span<const int> tokens_and_draft,
                                  std::span<const int> draft) {
  TANDEM_ASSIGN_OR_RETURN(const HiddenRows rows, edge.Forward(tokens_and_draft));
  TANDEM_ASSIGN_OR_RETURN(VerifyOutcome outcome, tail.Verify(rows, draft));
  edge.DropPositions(static_cast<int>(draft.size()) - outcome.kept);
  return outcome;
}

VerifyStep SplitStep(EdgeRunner& edge, TailRunner& tail) {
  return [&edge, &tail](std::span<const int> tokens, std::span<const int> draft) {
    std::vector<int> all(tokens.begin(), tokens.end());
    all.insert(all.end(), draft.begin(), draft.end());
    return StepThrough(edge, tail, all, draft);
  };
}

Result<Generation> Generate(EdgeRunner& edge, TailRunner& tail, std::span<const int> prompt_ids,
                            const GenerateOptions& options, const TokenCallback& on_token,
                            const DraftSource& drafts) {
  TANDEM_ASSIGN_OR_RETURN(Generation result, Generate(SplitStep(edge, tail), drafts, edge.seq_len(),
                                                      prompt_ids, options, on_token));
  result.timings.bytes_across_cut = tail.BytesSent();
  return result;
}

}  // namespace tandem
