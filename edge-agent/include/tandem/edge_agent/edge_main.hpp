// tandem-edge as a process: flags and environment, loading, the HTTP server around EdgeService, stop
// signals and the drain. Kept apart from edge_service.hpp so that main.cpp stays a few lines that need
// neither LibTorch nor ZeroMQ headers.
#pragma once

#include <span>
#include <string>

namespace tandem::edge_agent {

// Runs until SIGTERM or SIGINT (then drains); returns the exit code: 0 after a clean stop, 1 on a
// run-time failure, 2 on bad usage.
int RunEdgeService(std::span<const std::string> args);

}  // namespace tandem::edge_agent
