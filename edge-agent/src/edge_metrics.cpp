#include "tandem/edge_agent/edge_metrics.hpp"

#include "tandem/services/metric_families.hpp"

namespace tandem::edge_agent {

using prometheus::Registry;
using services::CounterFamily;
using services::GaugeFamily;
using services::UnlabelledHistogram;

EdgeMetrics::EdgeMetrics(Registry& registry)
    : requests(CounterFamily(registry, "tandem_edge_requests_total", "HTTP requests by route and status")),
      ttft(UnlabelledHistogram(registry, "tandem_edge_ttft_seconds",
                               "Time to first token: request admitted to first token",
                               {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})),
      inter_token(UnlabelledHistogram(registry, "tandem_edge_inter_token_seconds",
                                      "Time between consecutive tokens of a completion",
                                      {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5})),
      tokens(CounterFamily(registry, "tandem_edge_tokens_total", "Tokens: prompt (in) and completion (out)")),
      prompt_tokens(tokens.Add({{"direction", "in"}})),
      completion_tokens(tokens.Add({{"direction", "out"}})),
      bytes(
          CounterFamily(registry, "tandem_edge_wire_bytes_total",
                        "Bytes to and from the cloud tail: activations before the codec (float32), after it "
                        "(payload), and whole messages sent and received")),
      float32_bytes(bytes.Add({{"stage", "float32"}})),
      payload_bytes(bytes.Add({{"stage", "payload"}})),
      sent_bytes(bytes.Add({{"stage", "sent"}})),
      received_bytes(bytes.Add({{"stage", "received"}})),
      cut(GaugeFamily(registry, "tandem_edge_cut", "Cut K of the latest plan (K = layers: all-local)")
              .Add({})),
      rtt(GaugeFamily(registry, "tandem_edge_rtt_seconds",
                      "Estimated round trip to the tail without its compute (EWMA of PING probes)")
              .Add({})),
      bandwidth(GaugeFamily(registry, "tandem_edge_bandwidth_bytes_per_second",
                            "Estimated bandwidth to the tail (EWMA over real transfers; 0 = not measured)")
                    .Add({})),
      link_up(GaugeFamily(registry, "tandem_edge_link_up", "1 while the tail answers probes").Add({})),
      plans(
          CounterFamily(registry, "tandem_edge_plans_total", "Requests planned, by choice (split or local)")),
      moves(CounterFamily(registry, "tandem_edge_split_moves_total",
                          "Splits moved mid-generation, by reason (replan: a predicted gain; fallback: the "
                          "tail failed and the edge finished locally)")),
      failovers(CounterFamily(registry, "tandem_edge_failovers_total",
                              "Generations moved off a failed tail, by destination (tail: replayed on "
                              "another tail; local: finished on the edge)")),
      circuit_opened(
          CounterFamily(registry, "tandem_edge_circuit_opened_total",
                        "Times a tail's circuit breaker opened (no work sent to it for a cool-down)")),
      step_resends(CounterFamily(registry, "tandem_edge_step_resends_total",
                                 "Steps sent to a tail again for want of a reply")
                       .Add({})),
      draft_tokens(CounterFamily(registry, "tandem_edge_draft_tokens_total",
                                 "Tokens drafted for speculative decoding, by outcome: accepted (the model "
                                 "kept them) or rejected")),
      kept_drafts(draft_tokens.Add({{"outcome", "accepted"}})),
      rejected_drafts(draft_tokens.Add({{"outcome", "rejected"}})),
      tokens_per_step(UnlabelledHistogram(registry, "tandem_edge_tokens_per_round_trip",
                                          "Tokens a model step yields (one round trip of a split): 1 without "
                                          "drafting, up to the drafts + 1 with it",
                                          {1, 2, 3, 4, 6, 8, 12, 16, 32, 64})),
      queue_depth(GaugeFamily(registry, "tandem_edge_queue_depth",
                              "Requests admitted and waiting for a generation slot")
                      .Add({})),
      active(GaugeFamily(registry, "tandem_edge_active_generations", "Requests generating now").Add({})),
      connections(GaugeFamily(registry, "tandem_edge_cloud_connections",
                              "Connections to the cloud tail with a completed handshake")
                      .Add({})) {
  // Every label value known up front starts at 0: a series born at its first event has no earlier
  // sample, so rate() and increase() would miss that event and dashboards show "No data" until then.
  for (const char* choice : {"split", "local"}) plans.Add({{"choice", choice}});
  for (const char* reason : {"replan", "fallback"}) moves.Add({{"reason", reason}});
  for (const char* to : {"tail", "local"}) failovers.Add({{"to", to}});
}

void EdgeMetrics::RecordWire(const WireStats& wire) {
  float32_bytes.Increment(static_cast<double>(wire.raw_bytes));
  payload_bytes.Increment(static_cast<double>(wire.payload_bytes));
  sent_bytes.Increment(static_cast<double>(wire.wire_bytes_sent));
  received_bytes.Increment(static_cast<double>(wire.wire_bytes_received));
  step_resends.Increment(wire.resends);
}

void EdgeMetrics::ObserveLink(const scheduler::LinkEstimate& link, int handshaken) {
  connections.Set(handshaken);
  rtt.Set(link.rtt_ms / 1000);
  bandwidth.Set(link.bandwidth_bytes_per_ms * 1000);
  link_up.Set(link.up ? 1 : 0);
}

}  // namespace tandem::edge_agent
