// A real tandem-cloud for integration tests: stories260K on 127.0.0.1 (a free port), with fresh CURVE
// keys: the tail's pair, an allow-listed edge pair, and a stranger pair that is not allow-listed.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "tandem/wire/curve.hpp"
#include "test_env.hpp"

namespace tandem::testing {

class CloudTailProcess {
 public:
  // `extra_args` go to tandem-cloud after the model and keys; without `start` only the keys are made, and
  // Start() launches the tail later (an edge can then start first). `bind` defaults to a free port.
  explicit CloudTailProcess(const std::vector<std::string>& extra_args = {}, bool start = true,
                            std::string bind = "tcp://127.0.0.1:0");
  // Another replica of `first`: the same server key pair and allow-list (as pods of one Deployment share
  // a Secret), its own port.
  static std::unique_ptr<CloudTailProcess> ReplicaOf(const CloudTailProcess& first,
                                                     const std::vector<std::string>& extra_args = {});
  void Start();

  bool started() const { return !endpoint_.empty(); }  // false: see log()
  const std::string& endpoint() const { return endpoint_; }
  const std::string& http_address() const { return http_address_; }
  std::string log() const { return process_->Stderr(); }
  BackgroundProcess& process() { return *process_; }

  const CurveKeyPair& cloud_keys() const { return cloud_; }
  const CurveKeyPair& edge_keys() const { return edge_; }
  const CurveKeyPair& stranger_keys() const { return stranger_; }
  // --cloud, --cloud-key and --client-key for an edge as the allow-listed client (or the stranger).
  std::vector<std::string> EdgeFlags(bool stranger = false) const;

 private:
  CloudTailProcess(const CloudTailProcess* first, const std::vector<std::string>& extra_args, bool start,
                   std::string bind);

  TempDir dir_;
  std::filesystem::path key_dir_;  // dir_, or the first replica's
  CurveKeyPair cloud_, edge_, stranger_;
  std::string bind_;
  std::vector<std::string> args_;
  std::unique_ptr<BackgroundProcess> process_;
  std::string endpoint_;
  std::string http_address_;
};

// A real tandem-edge for `tail` (its keys and address; the tail may start later), listening on a free
// port; `extra_args` follow. With a --cloud among them, that one replaces the tail's address.
class EdgeProcess {
 public:
  explicit EdgeProcess(const CloudTailProcess& tail, const std::vector<std::string>& extra_args = {});
  // An edge with no tail (no --cloud): it serves every request itself.
  explicit EdgeProcess(const std::vector<std::string>& extra_args = {});
  bool started() const { return !address_.empty(); }
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  std::string log() const { return process_->Stderr(); }
  BackgroundProcess& process() { return *process_; }

 private:
  std::unique_ptr<BackgroundProcess> process_;
  std::string address_;
};

// Until the edge's planner (or, with a fixed split, its tail list) holds the STATS of at least `tails`
// tails with a connection past its handshake each (GET /v1/plan): before, it cannot weigh a split on them,
// or a request planned onto one gets 503 (failover_test hit it on a loaded host). False after 20 s.
bool AwaitTailReports(const EdgeProcess& edge, size_t tails = 1);

// Until the edge answers GET /readyz with 200 (a fixed split: its tail answered the handshake), as an
// orchestrator waits before sending traffic. False after `timeout`.
bool AwaitReady(const EdgeProcess& edge, std::chrono::milliseconds timeout = std::chrono::seconds(10));

}  // namespace tandem::testing
