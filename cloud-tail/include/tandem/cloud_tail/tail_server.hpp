// The cloud tail: a ZeroMQ ROUTER serving many edge sessions, each running blocks [k, L), the final norm,
// the head and sampling on its own KV cache.
//
// One I/O thread owns the sockets: it checks every message (handshake, session, sequence, position, sizes:
// SessionTable) and answers control messages itself; an admitted OPEN and each step (ACTIVATIONS, VERIFY)
// go to a worker (a session always to the same one, so its steps run in order), which allocates the
// session's KV cache and runs its steps (StepExecutor); TOKEN, ROWS, VERDICT or ERROR returns through an
// inproc socket to the I/O thread. A worker batches the decode steps of its sessions that are ready
// (continuous batching, StepBatcher); prefills and VERIFY steps run alone, between batches.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "tandem/base/status.hpp"
#include "tandem/wire/compute_profile.hpp"
#include "tandem/wire/protocol.hpp"
#include "tandem/wire/transport.hpp"

namespace prometheus {
class Registry;
}

namespace tandem {
class Transformer;
}

namespace tandem::cloud_tail {

struct TailServerOptions {
  std::string bind = "tcp://127.0.0.1:5555";
  SocketSecurity security;                   // the server key pair, or insecure
  std::vector<std::string> allowed_clients;  // Z85 public keys admitted by the ZAP handler (CURVE only)
  SocketLimits limits;                       // ZMQ_MAXMSGSIZE also bounds every payload
  int max_rows = 0;                          // rows per ACTIVATIONS; 0: the model's context length
  int max_sessions = 256;                    // open sessions, all peers together
  int64_t max_kv_bytes = int64_t{2} << 30;   // KV-cache memory of all sessions together
  int max_peers = 4096;  // connections past HELLO remembered; then the idlest is forgotten
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(2)};  // sessions without traffic are freed
  int workers =
      1;  // threads running sessions' steps; 0: on the I/O thread (no hand-over, one step at a time)
  // Continuous batching: a worker runs the decode steps (one row each) of up to `max_batch` of its
  // sessions together, through the weights once. When fewer are ready than it answered last time, it
  // waits up to `max_batch_wait` for the rest. 1: every step alone.
  int max_batch = 32;
  std::chrono::microseconds max_batch_wait{2000};
  ComputeProfile profile;  // this tail's measured per-block times, reported in STATS
  // Per-block weight hashes (WeightFingerprints::List), sent in HELLO: with a block-range checkpoint,
  // what edges are checked against (and check the tail by).
  std::vector<uint64_t> block_fingerprints;
};

class TailServer {
 public:
  // Binds and serves on background threads. `fingerprint` identifies the weights (HELLO must match).
  static Result<std::unique_ptr<TailServer>> Start(std::shared_ptr<const Transformer> model,
                                                   uint64_t fingerprint, TailServerOptions options,
                                                   std::shared_ptr<prometheus::Registry> registry);
  ~TailServer();
  TailServer(const TailServer&) = delete;
  TailServer& operator=(const TailServer&) = delete;

  const std::string& endpoint() const;  // as bound, e.g. "tcp://127.0.0.1:40123" for a port of 0 or '*'
  int64_t open_sessions() const;
  int64_t kv_cache_bytes() const;
  // Load and compute profile, as STATS reports them.
  wire::TailStats Stats() const;
  // Starts a graceful stop: new connections and sessions are refused with a retryable ERROR
  // ("overloaded": try another tail) while open sessions go on until they close or expire.
  void BeginDrain();
  void Stop();  // idempotent; open sessions are dropped

  class Impl;

 private:
  explicit TailServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::cloud_tail
