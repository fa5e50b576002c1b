// The cloud tail's Prometheus metrics, registered once on the registry the service gives the server (no
// statics). prometheus-cpp metrics are safe to update from any thread: the I/O thread counts messages,
// sessions and errors, the workers the compute.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <array>
#include <cstddef>

#include "tandem/wire/protocol.hpp"

namespace tandem::cloud_tail {

struct TailMetrics {
  explicit TailMetrics(prometheus::Registry& registry);

  void CountIn(wire::MessageType type) { messages_in[static_cast<size_t>(type)]->Increment(); }
  void CountOut(wire::MessageType type) { messages_out[static_cast<size_t>(type)]->Increment(); }
  void CountError(wire::ErrorCode code);
  void CountAuth(bool admitted);
  // A VERIFY step that carried `drafted` tokens and kept `kept` of them.
  void CountVerify(int drafted, int kept);

  static constexpr int kMessageTypes = static_cast<int>(wire::kLastMessageType) + 1;
  std::array<prometheus::Counter*, kMessageTypes> messages_in{};
  std::array<prometheus::Counter*, kMessageTypes> messages_out{};

  prometheus::Family<prometheus::Counter>& messages;
  prometheus::Family<prometheus::Counter>& activation_bytes;
  prometheus::Counter& float32_bytes;
  prometheus::Counter& wire_bytes;
  prometheus::Counter& tokens;
  prometheus::Counter& verify_steps;
  prometheus::Family<prometheus::Counter>& draft_tokens;
  prometheus::Counter& drafts_kept;
  prometheus::Counter& drafts_rejected;
  prometheus::Histogram& compute_seconds;
  prometheus::Histogram& batch_steps;
  prometheus::Gauge& sessions;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& kv_bytes;
  prometheus::Family<prometheus::Counter>& errors;
  prometheus::Counter& sessions_expired;
  prometheus::Counter& resends;
  prometheus::Family<prometheus::Counter>& auth;
};

}  // namespace tandem::cloud_tail
