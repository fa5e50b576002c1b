#include "step_executor.hpp"

#include <exception>
#include <span>
#include <string>
#include <utility>

#include "tandem/engine/transformer.hpp"

namespace tandem::cloud_tail {
namespace {

using wire::ErrorCode;
using SteadyTime = std::chrono::steady_clock;

wire::Message StepError(const Job& job, ErrorCode code, const std::string& text) {
  return wire::MakeError({.session = job.message.header.session,
                          .sequence = job.message.header.sequence,
                          .code = code,
                          .message = text});
}

// A failed decode is the frame's fault; a session without a runner is one whose OPEN failed.
ErrorCode DecodeErrorCode(const Status& status) {
  return status.code() == StatusCode::kNotFound ? ErrorCode::kUnknownSession : ErrorCode::kBadFrame;
}

// A runner refuses what the edge got wrong (a drafted token outside the vocabulary); the rest is ours.
ErrorCode ComputeErrorCode(const Status& status) {
  return status.code() == StatusCode::kInvalidArgument ? ErrorCode::kBadArgument : ErrorCode::kInternal;
}

// Runs `compute`, turning an exception from LibTorch into an Internal status.
template <typename T, typename Compute>
Result<T> Guarded(Compute&& compute) {
  try {
    return compute();
  } catch (const std::exception& error) {
    return Internal(error.what());
  }
}

}  // namespace

std::optional<wire::Message> StepExecutor::Open(Session& session) {
  const wire::OpenRequest& open = session.open;
  const auto capacity = static_cast<int>(session.capacity);
  try {
    if (open.private_output()) {
      session.middle = std::make_unique<LocalMiddle>(model_, open.cut, open.end_block, capacity);
    } else {
      session.tail =
          std::make_unique<LocalTail>(model_, open.cut, capacity, open.sampling, open.top_logprobs);
    }
    return std::nullopt;
  } catch (const std::exception& error) {
    return wire::MakeError({.session = session.id,
                            .sequence = 0,
                            .code = ErrorCode::kInternal,
                            .message = std::string("cannot allocate the session: ") + error.what()});
  }
}

std::vector<wire::Message> StepExecutor::Run(std::vector<Job>& jobs) {
  if (jobs.size() == 1) return {RunOne(jobs.front())};
  return RunBatch(jobs);
}

std::vector<wire::Message> StepExecutor::RunBatch(std::vector<Job>& jobs) {
  const auto start = SteadyTime::now();
  std::vector<wire::Message> answers(jobs.size());
  std::vector<size_t> members;
  std::vector<LocalTail*> tails;
  std::vector<HiddenRows> rows;
  for (size_t i = 0; i < jobs.size(); ++i) {
    if (RunsAlone(jobs[i])) {  // the batcher keeps them out; should one come, it is not a decode step
      answers[i] = RunOne(jobs[i]);
      continue;
    }
    auto decoded = DecodeStep(jobs[i]);
    if (!decoded.ok()) {
      answers[i] = StepError(jobs[i], DecodeErrorCode(decoded.status()), decoded.status().message());
      continue;
    }
    if (auto refusal = Reconcile(jobs[i])) {
      answers[i] = std::move(*refusal);
      continue;
    }
    members.push_back(i);
    tails.push_back(jobs[i].session->tail.get());
    rows.push_back(std::move(decoded->rows));
  }
  std::vector<Result<int>> tokens;
  try {
    tokens = LocalTail::ForwardDecodeBatch(tails, rows);
  } catch (const std::exception& error) {
    tokens.assign(tails.size(), Internal(error.what()));
  }
  const double seconds = FinishPass(start, members.size());
  for (size_t m = 0; m < members.size(); ++m) {
    answers[members[m]] = Answer(jobs[members[m]], tokens[m], seconds);
  }
  return answers;
}

wire::Message StepExecutor::RunOne(const Job& job) {
  const auto start = SteadyTime::now();
  auto input = DecodeStep(job);
  if (!input.ok()) return StepError(job, DecodeErrorCode(input.status()), input.status().message());
  if (auto refusal = Reconcile(job)) return std::move(*refusal);
  if (job.session->private_output()) return RunMiddle(job, input->rows, start);
  if (!input->draft.empty()) return RunVerify(job, *input, start);
  const Result<int> token = Guarded<int>([&] { return job.session->tail->Forward(input->rows); });
  return Answer(job, token, FinishPass(start, 1));
}

std::optional<wire::Message> StepExecutor::Reconcile(const Job& job) {
  const Session& session = *job.session;
  const uint32_t position = job.message.header.position;
  if (session.middle && static_cast<uint32_t>(session.middle->positions()) > position) {
    // The edge verified the drafts of the last step's rows and kept those before `position`.
    const Status dropped =
        session.middle->DropPositions(session.middle->positions() - static_cast<int>(position));
    if (!dropped.ok()) return StepError(job, ErrorCode::kInternal, dropped.message());
  }
  // A tail's cache holds what its own verdicts kept: the edge must continue from exactly there.
  const int held = session.middle ? session.middle->positions() : session.tail->positions();
  if (static_cast<uint32_t>(held) == position) return std::nullopt;
  return StepError(job, ErrorCode::kOutOfOrder, "expected position " + std::to_string(held));
}

// A VERIFY: the drafts the session's sampler keeps and the token after them.
wire::Message StepExecutor::RunVerify(const Job& job, const StepInput& input, TimePoint start) {
  const Result<VerifyOutcome> outcome =
      Guarded<VerifyOutcome>([&] { return job.session->tail->Verify(input.rows, input.draft); });
  const double seconds = FinishPass(start, 1);
  if (!outcome.ok()) return StepError(job, ComputeErrorCode(outcome.status()), outcome.status().message());
  metrics_.CountVerify(static_cast<int>(input.draft.size()), outcome->kept);
  metrics_.tokens.Increment(static_cast<double>(outcome->tokens.size()));
  metrics_.compute_seconds.Observe(seconds);
  return wire::MakeVerdict({.session = job.message.header.session,
                            .sequence = job.message.header.sequence,
                            .kept = outcome->kept,
                            .tokens = outcome->tokens,
                            .compute_us = static_cast<uint32_t>(seconds * 1e6)});
}

// A private-output step: the middle's blocks, then their rows back in the session's codec.
wire::Message StepExecutor::RunMiddle(const Job& job, const HiddenRows& rows, TimePoint start) {
  const Result<HiddenRows> out = Guarded<HiddenRows>([&] { return job.session->middle->ForwardRows(rows); });
  if (!out.ok()) return StepError(job, ErrorCode::kInternal, out.status().message());
  const ActivationCodec codec = job.session->open.codec;
  auto encoded = EncodeActivations(out->values, out->rows, out->cols, codec);
  if (!encoded.ok()) return StepError(job, ErrorCode::kInternal, encoded.status().message());
  const double seconds = FinishPass(start, 1);
  metrics_.compute_seconds.Observe(seconds);
  const wire::Header& header = job.message.header;
  return wire::MakeRows({.session = header.session,
                         .sequence = header.sequence,
                         .position = header.position,
                         .rows = header.rows,
                         .cols = header.cols,
                         .codec = {codec.precision, encoded->compression},
                         .compute_us = static_cast<uint32_t>(seconds * 1e6),
                         .payload = std::move(encoded->payload)});
}

Result<StepExecutor::StepInput> StepExecutor::DecodeStep(const Job& job) {
  if (!job.session->tail && !job.session->middle) return NotFound("no open session with this id");
  const wire::Header& header = job.message.header;
  StepInput input;
  std::span<const std::byte> payload = job.message.payload;
  if (header.type == wire::MessageType::kVerify) {
    TANDEM_ASSIGN_OR_RETURN(wire::VerifyRequest verify, wire::ParseVerify(job.message));
    input.draft = std::move(verify.draft);
    payload = verify.activations;
  }
  const ActivationCodec codec{static_cast<Precision>(header.precision),
                              static_cast<Compression>(header.compression)};
  const int64_t rows = header.rows, cols = header.cols;
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> values,
                          DecodeActivations(payload, rows, cols, codec, rows * cols));
  metrics_.wire_bytes.Increment(static_cast<double>(payload.size()));
  metrics_.float32_bytes.Increment(static_cast<double>(rows * cols * 4));
  input.rows = HiddenRows{rows, cols, std::move(values)};
  return input;
}

double StepExecutor::FinishPass(TimePoint start, size_t steps) {
  const double seconds = std::chrono::duration<double>(SteadyTime::now() - start).count();
  busy_us_ += static_cast<int64_t>(seconds * 1e6);
  metrics_.batch_steps.Observe(static_cast<double>(steps));
  return seconds;
}

wire::Message StepExecutor::Answer(const Job& job, const Result<int>& token, double seconds) {
  if (!token.ok()) return StepError(job, ComputeErrorCode(token.status()), token.status().message());
  metrics_.tokens.Increment();
  metrics_.compute_seconds.Observe(seconds);
  return wire::MakeToken({.session = job.message.header.session,
                          .sequence = job.message.header.sequence,
                          .token = *token,
                          .compute_us = static_cast<uint32_t>(seconds * 1e6),
                          .top_logprobs = job.session->tail->top_logprobs()});
}

}  // namespace tandem::cloud_tail
