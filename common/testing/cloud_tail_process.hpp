// A real tandem-cloud for integration tests: stories260K on 127.0.0.1 (a free port), with fresh CURVE
// keys: the tail's pair, an allow-listed edge pair, and a stranger pair that is not allow-listed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tandem/common/curve.hpp"
#include "test_env.hpp"

namespace tandem::testing {

class CloudTailProcess {
 public:
  // `extra_args` go to tandem-cloud after the model, keys and addresses.
  explicit CloudTailProcess(const std::vector<std::string>& extra_args = {});

  bool started() const { return !endpoint_.empty(); }  // false: see log()
  const std::string& endpoint() const { return endpoint_; }
  const std::string& http_address() const { return http_address_; }
  std::string log() const { return process_->Stderr(); }
  BackgroundProcess& process() { return *process_; }

  const CurveKeyPair& cloud_keys() const { return cloud_; }
  const CurveKeyPair& edge_keys() const { return edge_; }
  const CurveKeyPair& stranger_keys() const { return stranger_; }
  // --cloud, --cloud-key and --client-key for `tandem generate` as the allow-listed edge (or the stranger).
  std::vector<std::string> EdgeFlags(bool stranger = false) const;

 private:
  TempDir dir_;
  CurveKeyPair cloud_, edge_, stranger_;
  std::unique_ptr<BackgroundProcess> process_;
  std::string endpoint_;
  std::string http_address_;
};

}  // namespace tandem::testing
