#include "tandem/scheduler/heartbeat_sender.hpp"

#include <nlohmann/json.hpp>

#include "tandem/base/log.hpp"
#include "tandem/scheduler/scheduler_api.hpp"
#include "tandem/services/http_client.hpp"

namespace tandem::scheduler {
namespace {

constexpr char kComponent[] = "heartbeat";

// The scheduler's error message from an OpenAI-style error body, or the body itself (shortened).
std::string ErrorText(const services::HttpReply& reply) {
  const auto body = nlohmann::json::parse(reply.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_object() && body.contains("error") && body["error"].is_object() &&
      body["error"].contains("message") && body["error"]["message"].is_string()) {
    return "HTTP " + std::to_string(reply.status) + ": " + body["error"]["message"].get<std::string>();
  }
  return "HTTP " + std::to_string(reply.status) + ": " + reply.body.substr(0, 200);
}

}  // namespace

Result<std::unique_ptr<HeartbeatSender>> HeartbeatSender::Start(HeartbeatOptions options,
                                                                std::function<TailReport()> report) {
  if (options.scheduler.empty()) return InvalidArgument("the scheduler address (HOST:PORT) is empty");
  if (options.interval.count() <= 0 || options.timeout.count() <= 0) {
    return InvalidArgument("the heartbeat interval and timeout must be positive");
  }
  if (!report) return InvalidArgument("no report function");
  std::unique_ptr<HeartbeatSender> sender(new HeartbeatSender(std::move(options), std::move(report)));
  sender->thread_ = std::thread([raw = sender.get()] { raw->Run(); });
  return sender;
}

HeartbeatSender::HeartbeatSender(HeartbeatOptions options, std::function<TailReport()> report)
    : options_(std::move(options)), report_(std::move(report)) {}

HeartbeatSender::~HeartbeatSender() {
  Stop(false);
}

void HeartbeatSender::Run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto next = std::chrono::steady_clock::now() + options_.interval;
    lock.unlock();
    Beat(/*draining=*/false);
    lock.lock();
    wake_.wait_until(lock, next, [this] { return stopping_; });
  }
}

bool HeartbeatSender::Beat(bool draining) {
  TailReport report = report_();
  report.draining = draining;
  services::HttpClientRequest request{.method = "POST",
                                      .target = "/v1/tails/heartbeat",
                                      .body = TailReportToJson(report).dump(),
                                      .timeout = options_.timeout,
                                      .tls = options_.tls};
  if (options_.signer) options_.signer->Sign(request);
  services::HttpReply reply;
  const Status sent = services::HttpExchange(options_.scheduler, request, reply);
  std::string error;
  if (!sent.ok()) {
    error = sent.message();
  } else if (reply.status != 200) {
    error = ErrorText(reply);
  }
  if (error.empty()) {
    ++accepted_;
    if (!last_error_.empty() || !ever_accepted_) {
      Log(LogLevel::kInfo, kComponent,
          ever_accepted_ ? "heartbeats accepted again" : "registered with the scheduler",
          {{"scheduler", options_.scheduler}, {"endpoint", report.endpoint}});
    }
    ever_accepted_ = true;
    last_error_.clear();
    return true;
  }
  ++failed_;
  if (error != last_error_) {
    Log(LogLevel::kWarn, kComponent, "heartbeat failed; retrying every interval",
        {{"scheduler", options_.scheduler},
         {"interval_ms", std::to_string(options_.interval.count())},
         {"error", error}});
    last_error_ = error;
  }
  return false;
}

void HeartbeatSender::Stop(bool draining) {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (draining && Beat(/*draining=*/true)) {
    Log(LogLevel::kInfo, kComponent, "told the scheduler this tail is draining",
        {{"scheduler", options_.scheduler}});
  }
}

}  // namespace tandem::scheduler
