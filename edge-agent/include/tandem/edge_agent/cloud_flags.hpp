// The flags that point an edge at a cloud tail (--cloud, --cloud-key, --client-key, --insecure, --codec,
// --timeout-ms, --resend-ms, --max-resends), declared once for every program that runs the edge side.
#pragma once

#include <string>

#include "tandem/base/flags.hpp"
#include "tandem/edge_agent/remote_tail.hpp"
#include "tandem/wire/activation_codec.hpp"

namespace tandem::edge_agent {

struct CloudFlags {
  std::string endpoint;    // empty: no cloud
  std::string cloud_key;   // the tail's public key file (pinned)
  std::string client_key;  // this edge's secret key file
  bool insecure = false;   // plaintext, no authentication
  std::string codec = "fp32";
  int timeout_ms = 10000;
  int resend_ms = 500;
  int max_resends = 2;

  void Declare(FlagSet& flags);
  bool enabled() const { return !endpoint.empty(); }
  // The flags' combination and values (a usage error), without touching any file.
  Status Validate() const;
  // Validates, reads the key files; logs a warning when insecure.
  Result<CloudOptions> Resolve() const;
};

}  // namespace tandem::edge_agent
