#include "tandem/services/health.hpp"

#include <prometheus/gauge.h>
#include <prometheus/text_serializer.h>

namespace tandem::services {

std::vector<Route> HealthRoutes(std::function<bool()> ready, std::shared_ptr<prometheus::Registry> registry) {
  std::vector<Route> routes;
  routes.push_back({"GET", "/healthz", [](const HttpRequest&) {
                      HttpResponse response;
                      response.body = R"({"status":"ok"})";
                      return response;
                    }});
  routes.push_back({"GET", "/readyz", [ready = std::move(ready)](const HttpRequest&) {
                      if (ready && !ready()) {
                        return ErrorResponse(503, "The service is not ready.", "server_error", "not_ready");
                      }
                      HttpResponse response;
                      response.body = R"({"status":"ready"})";
                      return response;
                    }});
  if (registry != nullptr) {
    routes.push_back({"GET", "/metrics", [registry = std::move(registry)](const HttpRequest&) {
                        HttpResponse response;
                        response.content_type = kPrometheusContentType;
                        response.body = prometheus::TextSerializer().Serialize(registry->Collect());
                        return response;
                      }});
  }
  return routes;
}

void RegisterBuildInfo(prometheus::Registry& registry, const std::map<std::string, std::string>& labels) {
  prometheus::BuildGauge()
      .Name("tandem_build_info")
      .Help("Always 1; the labels say what this process runs (version, kernel table)")
      .Register(registry)
      .Add(labels)
      .Set(1);
}

}  // namespace tandem::services
