// The edge's Prometheus metrics, registered in the registry the service is given (never a static one), so
// that a test builds its own and reads it back. Names and help are what dashboards and alerts rely on.
// Every label value known up front starts at 0, so rate() sees a series' first event. Thread-safe, as
// prometheus-cpp's metrics are.
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>

#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/scheduler/link_estimator.hpp"

namespace tandem::edge_agent {

struct EdgeMetrics {
  explicit EdgeMetrics(prometheus::Registry& registry);

  // A generation's wire figures (summed over its tails) into the byte and resend counters.
  void RecordWire(const WireStats& wire);
  // The gauges /metrics reads fresh: the primary tail's link and the handshaken connections.
  void ObserveLink(const scheduler::LinkEstimate& link, int connections);

  prometheus::Family<prometheus::Counter>& requests;
  prometheus::Histogram& ttft;
  prometheus::Histogram& inter_token;
  prometheus::Family<prometheus::Counter>& tokens;
  prometheus::Counter& prompt_tokens;
  prometheus::Counter& completion_tokens;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Counter& float32_bytes;
  prometheus::Counter& payload_bytes;
  prometheus::Counter& sent_bytes;
  prometheus::Counter& received_bytes;
  prometheus::Gauge& cut;
  prometheus::Gauge& rtt;
  prometheus::Gauge& bandwidth;
  prometheus::Gauge& link_up;
  prometheus::Family<prometheus::Counter>& plans;
  prometheus::Family<prometheus::Counter>& moves;
  prometheus::Family<prometheus::Counter>& failovers;
  prometheus::Family<prometheus::Counter>& circuit_opened;
  prometheus::Counter& step_resends;
  prometheus::Family<prometheus::Counter>& draft_tokens;
  prometheus::Counter& kept_drafts;
  prometheus::Counter& rejected_drafts;
  prometheus::Histogram& tokens_per_step;
  prometheus::Gauge& queue_depth;
  prometheus::Gauge& active;
  prometheus::Gauge& connections;
};

}  // namespace tandem::edge_agent
