#include "service_stack.hpp"

#include <nlohmann/json.hpp>

#include "promql_names.hpp"

namespace tandem::testing {
namespace {

// Until the scheduler has `tails` tails registered through their heartbeats.
bool AwaitRegisteredTails(const std::string& scheduler, size_t tails) {
  return WaitUntil(
      [&] {
        const HttpResult result = HttpCall(scheduler, "GET", "/v1/tails");
        if (result.status != 200) return false;
        const nlohmann::json body = nlohmann::json::parse(result.body, nullptr, /*allow_exceptions=*/false);
        return body.contains("tails") && body["tails"].size() >= tails;
      },
      std::chrono::seconds(10));
}

}  // namespace

ServiceStack::ServiceStack() {
  scheduler_ = std::make_unique<SchedulerProcess>();
  if (!scheduler_->started()) return;
  tail_ = std::make_unique<CloudTailProcess>(std::vector<std::string>{"--scheduler", scheduler_->address()});
  if (!tail_->started()) return;
  // Not all-local: every completion crosses the link, so the tail's series move with the edge's.
  edge_ = std::make_unique<EdgeProcess>(
      *tail_, std::vector<std::string>{"--split", "auto", "--scheduler", scheduler_->address(),
                                       "--allow-local=false"});
  if (!edge_->started()) return;
  ready_ = AwaitRegisteredTails(scheduler_->address(), 1) &&
           WaitUntil([&] { return HttpCall(edge_->address(), "GET", "/readyz").status == 200; },
                     std::chrono::seconds(10)) &&
           AwaitTailReports(*edge_);
}

std::string ServiceStack::log() const {
  std::string text;
  if (scheduler_) text += "--- tandem-scheduler:\n" + scheduler_->log();
  if (tail_) text += "--- tandem-cloud:\n" + tail_->log();
  if (edge_) text += "--- tandem-edge:\n" + edge_->log();
  return text;
}

HttpResult ServiceStack::Complete(int max_tokens, bool stream) const {
  const nlohmann::json request = {
      {"prompt", "Once upon a time"}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
  return HttpCall(edge_->address(), "POST", "/v1/completions", request.dump());
}

HttpResult ServiceStack::CompleteBadly() const {
  return HttpCall(edge_->address(), "POST", "/v1/completions", R"({"prompt": 7, "max_tokens": 4})");
}

std::set<std::string> ServiceStack::ExportedNames() const {
  std::set<std::string> names;
  for (const std::string& address : {scheduler_address(), tail_address(), edge_address()}) {
    const HttpResult metrics = HttpCall(address, "GET", "/metrics");
    if (metrics.status != 200) return {};
    names.merge(ExportedMetricNames(metrics.body));
  }
  return names;
}

}  // namespace tandem::testing
