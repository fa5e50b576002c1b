#include "cloud_tail_process.hpp"

#include <algorithm>
#include <fstream>

#include <nlohmann/json.hpp>

#include <stdexcept>
#include "http_client.hpp"

namespace tandem::testing {
namespace {

CurveKeyPair WriteKeys(const std::filesystem::path& prefix) {
  auto keys = GenerateCurveKeyPair();
  if (!keys.ok()) throw std::runtime_error(keys.status().ToString());
  if (Status written = WriteCurveKeyPair(*keys, prefix.string(), /*overwrite=*/true); !written.ok()) {
    throw std::runtime_error(written.ToString());
  }
  return *keys;
}

}  // namespace

CloudTailProcess::CloudTailProcess(const std::vector<std::string>& extra_args, bool start, std::string bind)
    : CloudTailProcess(nullptr, extra_args, start, std::move(bind)) {}

std::unique_ptr<CloudTailProcess> CloudTailProcess::ReplicaOf(const CloudTailProcess& first,
                                                              const std::vector<std::string>& extra_args) {
  return std::unique_ptr<CloudTailProcess>(
      new CloudTailProcess(&first, extra_args, /*start=*/true, "tcp://127.0.0.1:0"));
}

CloudTailProcess::CloudTailProcess(const CloudTailProcess* first, const std::vector<std::string>& extra_args,
                                   bool start, std::string bind)
    : key_dir_(first != nullptr ? first->key_dir_ : dir_.path()),
      cloud_(first != nullptr ? first->cloud_ : WriteKeys(key_dir_ / "cloud")),
      edge_(first != nullptr ? first->edge_ : WriteKeys(key_dir_ / "edge")),
      stranger_(first != nullptr ? first->stranger_ : WriteKeys(key_dir_ / "stranger")),
      bind_(std::move(bind)) {
  if (first == nullptr) {
    std::ofstream(key_dir_ / "clients.txt") << "# the edges this tail admits\n" << edge_.public_key << "\n";
  }
  args_ = {"--model",         Stories260KModel().string(),
           "--tokenizer",     Stories260KTokenizer().string(),
           "--bind",          bind_,
           "--http",          "127.0.0.1:0",
           "--server-key",    (key_dir_ / "cloud.key").string(),
           "--allow-clients", (key_dir_ / "clients.txt").string()};
  args_.insert(args_.end(), extra_args.begin(), extra_args.end());
  if (start) Start();
}

void CloudTailProcess::Start() {
  process_ = std::make_unique<BackgroundProcess>("tandem-cloud", args_);
  const std::string line = process_->WaitForLine("msg=serving");
  endpoint_ = LogField(line, "endpoint");
  http_address_ = LogField(line, "http");
}

std::vector<std::string> CloudTailProcess::EdgeFlags(bool stranger) const {
  // Before Start(), edges are pointed at the address the tail will bind.
  return {"--cloud",      started() ? endpoint_ : bind_,
          "--cloud-key",  (key_dir_ / "cloud.pub").string(),
          "--client-key", (key_dir_ / (stranger ? "stranger.key" : "edge.key")).string()};
}

EdgeProcess::EdgeProcess(const CloudTailProcess& tail, const std::vector<std::string>& extra_args) {
  auto cloud = tail.EdgeFlags();
  // --cloud adds up when repeated: an edge given its own tails (a proxy, replicas) does not also get this
  // tail's address.
  if (std::find(extra_args.begin(), extra_args.end(), "--cloud") != extra_args.end()) {
    cloud.erase(cloud.begin(), cloud.begin() + 2);
  }
  cloud.insert(cloud.end(), extra_args.begin(), extra_args.end());
  *this = EdgeProcess(cloud);
}

EdgeProcess::EdgeProcess(const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {"--model",     Stories260KModel().string(),
                                   "--tokenizer", Stories260KTokenizer().string(),
                                   "--listen",    "127.0.0.1:0"};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<BackgroundProcess>("tandem-edge", args);
  address_ = LogField(process_->WaitForLine("msg=serving"), "listen");
}

bool AwaitTailReports(const EdgeProcess& edge, size_t tails) {
  return WaitUntil(
      [&] {
        const HttpResult plan = HttpCall(edge.address(), "GET", "/v1/plan");
        if (plan.status != 200) return false;
        const nlohmann::json body = nlohmann::json::parse(plan.body, nullptr, /*allow_exceptions=*/false);
        // auto's planner lists the tails; a fixed split (--split K) lists them at the top level.
        const nlohmann::json& listed = body.contains("planner") ? body["planner"]["tails"] : body["tails"];
        if (!listed.is_array()) return false;
        size_t reported = 0;
        for (const nlohmann::json& tail : listed)
          reported += tail.contains("stats") && tail.value("connections", 0) > 0;
        return reported >= tails;
      },
      std::chrono::seconds(20));
}

bool AwaitReady(const EdgeProcess& edge, std::chrono::milliseconds timeout) {
  return WaitUntil([&] { return HttpCall(edge.address(), "GET", "/readyz").status == 200; }, timeout);
}

}  // namespace tandem::testing
