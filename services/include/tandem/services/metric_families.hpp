// Registering a metric in one call, the same way in every service (prometheus-cpp's builders take four).
#pragma once

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace tandem::services {

inline prometheus::Family<prometheus::Counter>& CounterFamily(prometheus::Registry& registry,
                                                              const char* name, const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

inline prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& registry, const char* name,
                                                          const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

// A gauge without labels.
inline prometheus::Gauge& UnlabelledGauge(prometheus::Registry& registry, const char* name,
                                          const char* help) {
  return GaugeFamily(registry, name, help).Add({});
}

// A histogram without labels.
inline prometheus::Histogram& UnlabelledHistogram(prometheus::Registry& registry, const char* name,
                                                  const char* help,
                                                  const prometheus::Histogram::BucketBoundaries& buckets) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry).Add({}, buckets);
}

}  // namespace tandem::services
