#include "rss_sampler.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>

namespace tandem::cli {

int64_t ReadRssKb(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmRSS:")) return std::stoll(line.substr(6));
  }
  return -1;
}

double KibToMb(int64_t kb) {
  return kb < 0 ? -1 : static_cast<double>(kb) / 1024.0;
}

Result<std::vector<WatchedProcess>> ParseWatch(const std::vector<std::string>& specs) {
  std::vector<WatchedProcess> watched;
  for (const std::string& spec : specs) {
    const size_t eq = spec.find('=');
    WatchedProcess w;
    if (eq == std::string::npos || eq == 0)
      return InvalidArgument("--watch: expected NAME=PID, got '" + spec + "'");
    w.name = spec.substr(0, eq);
    const std::string pid_text = spec.substr(eq + 1);
    const auto [end, error] = std::from_chars(pid_text.data(), pid_text.data() + pid_text.size(), w.pid);
    if (error != std::errc() || end != pid_text.data() + pid_text.size() || w.pid <= 0) {
      return InvalidArgument("--watch: '" + pid_text + "' is not a process id");
    }
    if (ReadRssKb(w.pid) < 0) return InvalidArgument("--watch: cannot read /proc/" + pid_text + "/status");
    watched.push_back(w);
  }
  return watched;
}

RssSampler::RssSampler(std::vector<WatchedProcess>& watched, std::chrono::duration<double> interval,
                       bool progress, std::function<RequestCounts()> counts)
    : watched_(watched),
      interval_(interval),
      progress_(progress),
      counts_(std::move(counts)),
      start_(std::chrono::steady_clock::now()) {
  thread_ = std::thread([this] { Loop(); });
}

void RssSampler::Stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void RssSampler::Loop() {
  std::unique_lock lock(mutex_);
  do {
    Sample();
  } while (!wake_.wait_for(lock, interval_, [this] { return stopping_; }));
  Sample();
}

void RssSampler::Sample() {
  nlohmann::json point = {
      {"t_s", std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count()}};
  std::string line;
  for (WatchedProcess& w : watched_) {
    const int64_t kb = ReadRssKb(w.pid);
    w.peak_kb = std::max(w.peak_kb, kb);
    point[w.name + "_mb"] = KibToMb(kb);
    char text[96];
    std::snprintf(text, sizeof(text), " %s=%.1fMB", w.name.c_str(), KibToMb(kb));
    line += text;
  }
  const RequestCounts counts = counts_();
  point["requests"] = counts.requests;
  point["ok"] = counts.ok;
  series_.push_back(point);
  if (progress_) {
    std::printf("loadgen: t=%.0fs requests=%lld ok=%lld%s\n", point["t_s"].get<double>(),
                static_cast<long long>(counts.requests), static_cast<long long>(counts.ok), line.c_str());
    std::fflush(stdout);
  }
}

}  // namespace tandem::cli
