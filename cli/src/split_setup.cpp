#include "split_setup.hpp"

#include <nlohmann/json.hpp>

#include "cli_support.hpp"
#include "tandem/wire/protocol.hpp"

namespace tandem::cli {
void SplitFlags::Declare(FlagSet& flags) {
  flags.Int("split", &split, "cut at block K: the edge runs [0,K), the tail [K,L) (-1 = all local)");
  flags.Int("tail-end", &tail_end,
            "private output: the tail runs only [K,M) and returns its rows; blocks [M,L), the head and "
            "sampling run here, so no token or logit comes back (0 = off)");
  cloud.Declare(flags);
}

Status SplitFlags::Validate(int layers) const {
  if (split < -1 || split > layers) {
    return InvalidArgument("--split " + std::to_string(split) + " is not within 0.." +
                           std::to_string(layers));
  }
  if (cloud.enabled() && split < 0)
    return InvalidArgument("--cloud needs --split K (the first block the tail runs)");
  if (tail_end != 0 && (split < 0 || tail_end <= split || tail_end > layers)) {
    return InvalidArgument("--tail-end M needs --split K and K < M <= " + std::to_string(layers) +
                           " (got M = " + std::to_string(tail_end) + ")");
  }
  return cloud.Validate();
}

Result<std::unique_ptr<TailFactory>> TailFactory::Create(const LoadedModel& model, const SplitFlags& flags) {
  TANDEM_RETURN_IF_ERROR(flags.Validate(model.transformer->n_layers()));
  TANDEM_ASSIGN_OR_RETURN(const ActivationCodec codec, ParseActivationCodec(flags.cloud.codec));
  if (flags.cloud.enabled()) {
    TANDEM_ASSIGN_OR_RETURN(const edge_agent::CloudOptions options, flags.cloud.Resolve());
    return Connect(model, flags.split, codec, options, flags.tail_end);
  }
  const bool split = flags.split >= 0;
  return std::unique_ptr<TailFactory>(new TailFactory(
      model, split ? flags.split : model.transformer->n_layers(), split, codec, flags.tail_end));
}

Result<std::unique_ptr<TailFactory>> TailFactory::Connect(const LoadedModel& model, int cut,
                                                          ActivationCodec codec,
                                                          const edge_agent::CloudOptions& options,
                                                          int tail_end) {
  std::unique_ptr<TailFactory> factory(new TailFactory(model, cut, /*split=*/true, codec, tail_end));
  factory->context_ = std::make_unique<zmq::context_t>();
  TANDEM_ASSIGN_OR_RETURN(factory->connection_, edge_agent::CloudConnection::Connect(
                                                    *factory->context_, options, model.Describe()));
  return factory;
}

TailFactory::~TailFactory() = default;

Result<std::unique_ptr<TailRunner>> TailFactory::NewTail(int capacity, SamplingParams sampling, int cut) {
  if (cut < 0) cut = cut_;
  const bool private_output = tail_end_ > cut;
  std::unique_ptr<TailRunner> tail;
  if (connection_) {
    return edge_agent::OpenRemoteSplit(*connection_,
                                       {.cut = cut,
                                        .codec = codec_,
                                        .sampling = sampling,
                                        .max_positions = static_cast<uint32_t>(capacity),
                                        .end_block = private_output ? tail_end_ : 0},
                                       model_.transformer);
  }
  if (private_output) {
    // The middle's rows cross the codec both ways, as they would the wire.
    return std::unique_ptr<TailRunner>(std::make_unique<UShapedTail>(
        std::make_unique<LoopbackMiddle>(
            std::make_unique<LocalMiddle>(model_.transformer, cut, tail_end_, capacity), codec_),
        std::make_unique<LocalTail>(model_.transformer, tail_end_, capacity, sampling)));
  }
  tail = std::make_unique<LocalTail>(model_.transformer, cut, capacity, sampling);
  // A split run passes the boundary rows through the codec, exactly as they would cross the wire.
  if (split_) tail = std::make_unique<LoopbackTail>(std::move(tail), codec_);
  return tail;
}

nlohmann::json TailFactory::Report(const TailRunner& tail) const {
  if (!split_) return nullptr;
  nlohmann::json report = {{"codec", codec_.Name()}, {"payload_bytes", tail.BytesSent()}};
  report["decode_raw_bytes"] = model_.checkpoint->config().dim * 4;
  if (tail_end_ > 0) report["tail_end"] = tail_end_;
  if (tail.wire_stats() == nullptr) return report;
  const WireStats& stats = *tail.wire_stats();
  const auto& steps = stats.step_payload_bytes;
  report["cloud"] = connection_->channel().endpoint();
  report["raw_bytes"] = stats.raw_bytes;
  report["wire_bytes_sent"] = stats.wire_bytes_sent;
  report["wire_bytes_received"] = stats.wire_bytes_received;
  if (tail_end_ > 0) report["returned_payload_bytes"] = stats.returned_payload_bytes;
  report["prefill_payload_bytes"] = steps.empty() ? 0 : steps.front();
  if (steps.size() > 1) {
    // Decode steps: one row each.
    report["decode_payload_bytes"] = Median(std::vector<double>(steps.begin() + 1, steps.end()));
    report["decode_round_trip_ms"] =
        Median(std::vector<double>(stats.step_round_trip_ms.begin() + 1, stats.step_round_trip_ms.end()));
    report["decode_cloud_compute_ms"] = Median(
        std::vector<double>(stats.step_cloud_compute_ms.begin() + 1, stats.step_cloud_compute_ms.end()));
  }
  report["step_round_trip_ms"] = stats.step_round_trip_ms;
  report["step_cloud_compute_ms"] = stats.step_cloud_compute_ms;
  return report;
}

}  // namespace tandem::cli
