// The routes every Tandem service serves for its orchestrator and for Prometheus.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <prometheus/registry.h>

#include "tandem/services/http_server.hpp"

namespace tandem::services {

inline constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4";

// GET /healthz: 200 {"status":"ok"} while the process runs (liveness).
// GET /readyz:  200 {"status":"ready"} when ready() is true, else 503 with an error object whose code is
//               "not_ready" (readiness: model loaded, peers reachable, not draining).
// GET /metrics: the registry in the Prometheus text format 0.0.4 (kPrometheusContentType).
// `ready` is called on a handler thread for every /readyz: it must be thread-safe and cheap; an empty
// function means always ready. The registry is shared with whoever registers metrics in it; a null registry
// leaves /metrics out.
std::vector<Route> HealthRoutes(std::function<bool()> ready, std::shared_ptr<prometheus::Registry> registry);

// tandem_build_info{<labels>} 1: what this process is (version, the kernel table its engine runs, ...), for
// dashboards to join on. `labels` come from the caller, which knows them (the engine is a layer below).
void RegisterBuildInfo(prometheus::Registry& registry, const std::map<std::string, std::string>& labels);

}  // namespace tandem::services
