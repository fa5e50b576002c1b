// tandem-edge: the edge agent as a service. An OpenAI-compatible REST API (POST /v1/completions with
// server-sent events, GET /v1/models, GET /v1/plan) over the split pipeline: the edge runs the embedding
// and blocks [0, k) and a cloud tail the rest; /healthz, /readyz, /metrics; optional bearer API key;
// SIGTERM drains the requests in flight.
#pragma once

#include <span>
#include <string>

namespace tandem::edge {

// Runs until SIGTERM or SIGINT (then drains); returns the exit code: 0 after a clean stop, 1 on a
// run-time failure, 2 on bad usage.
int RunEdgeService(std::span<const std::string> args);

}  // namespace tandem::edge
