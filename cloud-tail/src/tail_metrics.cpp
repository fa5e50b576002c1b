#include "tail_metrics.hpp"

#include <string>

#include "tandem/services/metric_families.hpp"

namespace tandem::cloud_tail {

using services::CounterFamily;
using services::UnlabelledGauge;
using services::UnlabelledHistogram;

TailMetrics::TailMetrics(prometheus::Registry& registry)
    : messages(CounterFamily(registry, "tandem_cloud_messages_total",
                             "Wire messages by direction (in, out) and type")),
      activation_bytes(CounterFamily(registry, "tandem_cloud_activation_bytes_total",
                                     "Boundary activations received: float32 (before the codec) and wire "
                                     "(codec payload, after compression)")),
      float32_bytes(activation_bytes.Add({{"stage", "float32"}})),
      wire_bytes(activation_bytes.Add({{"stage", "wire"}})),
      tokens(CounterFamily(registry, "tandem_cloud_tokens_total",
                           "Tokens sampled and sent (a VERDICT's kept drafts and the token after them)")
                 .Add({})),
      verify_steps(CounterFamily(registry, "tandem_cloud_verify_steps_total",
                                 "VERIFY steps run (speculative decoding: drafted tokens checked)")
                       .Add({})),
      draft_tokens(
          CounterFamily(registry, "tandem_cloud_draft_tokens_total",
                        "Drafted tokens VERIFY steps carried, by the sampler's decision (kept, rejected: "
                        "the first not kept and every draft after it)")),
      drafts_kept(draft_tokens.Add({{"result", "kept"}})),
      drafts_rejected(draft_tokens.Add({{"result", "rejected"}})),
      compute_seconds(UnlabelledHistogram(
          registry, "tandem_cloud_token_compute_seconds",
          "Cloud compute per step (ACTIVATIONS or VERIFY): decode, blocks [k, L), head, sampling (a "
          "batched step: its batch's)",
          {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5})),
      batch_steps(
          UnlabelledHistogram(registry, "tandem_cloud_batch_steps",
                              "Steps a worker ran together, per pass (continuous batching; 1: alone, as a "
                              "prefill always is)",
                              {1, 2, 4, 8, 16, 32, 64})),
      sessions(UnlabelledGauge(registry, "tandem_cloud_sessions", "Open sessions")),
      queue_depth(UnlabelledGauge(registry, "tandem_cloud_queue_depth", "ACTIVATIONS waiting for a worker")),
      kv_bytes(UnlabelledGauge(registry, "tandem_cloud_kv_cache_bytes",
                               "KV-cache memory reserved by open sessions")),
      errors(CounterFamily(registry, "tandem_cloud_errors_total", "ERROR replies by code")),
      sessions_expired(CounterFamily(registry, "tandem_cloud_sessions_expired_total",
                                     "Sessions freed after the idle timeout")
                           .Add({})),
      resends(CounterFamily(registry, "tandem_cloud_step_resends_total",
                            "ACTIVATIONS an edge sent again (answered from the last reply, not computed)")
                  .Add({})),
      auth(CounterFamily(registry, "tandem_cloud_auth_total",
                         "CURVE client authentications by result (admitted, denied)")) {
  // One counter per (direction, type), made once: counting a message is then an array index, not a
  // label-map lookup under the family's lock on every token.
  for (int type = 1; type < kMessageTypes; ++type) {
    const std::string name(wire::MessageTypeName(static_cast<wire::MessageType>(type)));
    messages_in[type] = &messages.Add({{"direction", "in"}, {"type", name}});
    messages_out[type] = &messages.Add({{"direction", "out"}, {"type", name}});
  }
  // The other label values known up front start at 0 too, so rate() and increase() see the first event.
  for (auto code = static_cast<uint16_t>(wire::ErrorCode::kBadFrame);
       code <= static_cast<uint16_t>(wire::ErrorCode::kUnsupported); ++code) {
    errors.Add({{"code", std::string(wire::ErrorCodeName(static_cast<wire::ErrorCode>(code)))}});
  }
  for (const char* result : {"admitted", "denied"}) auth.Add({{"result", result}});
}

void TailMetrics::CountError(wire::ErrorCode code) {
  errors.Add({{"code", std::string(wire::ErrorCodeName(code))}}).Increment();
}

void TailMetrics::CountVerify(int drafted, int kept) {
  verify_steps.Increment();
  drafts_kept.Increment(kept);
  drafts_rejected.Increment(drafted - kept);
}

void TailMetrics::CountAuth(bool admitted) {
  auth.Add({{"result", admitted ? "admitted" : "denied"}}).Increment();
}

}  // namespace tandem::cloud_tail
