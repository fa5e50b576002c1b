// The control plane's credential: requests to tandem-scheduler (a tail's heartbeats, an edge's plan
// requests) carry an HMAC-SHA256 of a secret the deployment shares, over what they ask:
//
//   Authorization: Tandem-HMAC id=<sender>, ts=<unix ms>, mac=<hex HMAC-SHA256(secret,
//                  METHOD "\n" PATH "\n" TS "\n" hex(SHA-256(body)))>
//
// The scheduler recomputes the MAC and compares it in constant time, and refuses a timestamp more than
// the window (30 s) away from its own clock. So a request is refused unless its sender holds the secret,
// and a modified method, path, timestamp or body breaks the MAC; a captured request can be replayed only
// within the window (a heartbeat or plan request replayed is the same report or question again). The id
// is a label for logs, not an identity: every holder of the secret can sign as any id. Nothing is
// encrypted: TLS does that (docs/operations.md, "Security model").
//
// Threads: everything here is const after construction and may be used from any thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tandem/base/flags.hpp"
#include "tandem/base/status.hpp"

namespace tandem::services {

struct HttpClientRequest;

inline constexpr size_t kMinControlSecretBytes = 32;
inline constexpr std::chrono::milliseconds kControlSignatureWindow{30000};
inline constexpr std::string_view kControlAuthScheme = "Tandem-HMAC";

// Milliseconds since the Unix epoch, now (the timestamps of signatures).
int64_t UnixMillisNow();

// Signs one sender's requests.
class RequestSigner {
 public:
  // InvalidArgument for a secret shorter than kMinControlSecretBytes, or an id that is empty, longer than
  // 200 characters or holds anything but printable ASCII other than space, ',', '=' and '"'.
  static Result<RequestSigner> Create(std::string secret, std::string id);

  // The Authorization header's value for a request made at `unix_ms`. `path` is the target without its
  // query (the query is not signed; the scheduler's routes take none).
  std::string Authorization(std::string_view method, std::string_view path, std::string_view body,
                            int64_t unix_ms) const;
  // Adds Authorization, signed now, to `request` (its method, target and body as they are).
  void Sign(HttpClientRequest& request) const;

  const std::string& id() const { return id_; }

 private:
  RequestSigner(std::string secret, std::string id) : secret_(std::move(secret)), id_(std::move(id)) {}
  std::string secret_;
  std::string id_;
};

// Why a request was refused; the label of tandem_scheduler_auth_failures_total.
enum class AuthFailure {
  kNone,
  kMissing,  // no Authorization header, or not the Tandem-HMAC scheme
  kBadMac,   // malformed credential, or a MAC the secret does not give
  kStale,    // a timestamp further than the window from now (either way)
};
std::string_view AuthFailureName(AuthFailure failure);  // "missing", "bad_mac", "stale"

struct Verification {
  AuthFailure failure = AuthFailure::kNone;
  std::string sender;   // the credential's id (when it could be read)
  std::string message;  // why it was refused, for the 401 answer
  bool ok() const { return failure == AuthFailure::kNone; }
};

// Checks credentials against one secret.
class RequestVerifier {
 public:
  // InvalidArgument as RequestSigner::Create for the secret, or for a window that is not positive.
  static Result<RequestVerifier> Create(std::string secret,
                                        std::chrono::milliseconds window = kControlSignatureWindow);

  // `authorization`: the header's value, or nullptr when the request had none.
  Verification Verify(const std::string* authorization, std::string_view method, std::string_view path,
                      std::string_view body, int64_t now_unix_ms) const;

 private:
  RequestVerifier(std::string secret, std::chrono::milliseconds window)
      : secret_(std::move(secret)), window_(window) {}
  std::string secret_;
  std::chrono::milliseconds window_;
};

// --control-secret-file, declared alike by tandem-scheduler, tandem-cloud and tandem-edge.
struct ControlSecretFlag {
  std::string file;
  std::string secret;  // Load()'s result; empty: no file given (the control plane is unauthenticated)

  void Declare(FlagSet& flags);
  // Reads `file` (when given) into `secret`: its bytes without trailing line breaks and spaces.
  // InvalidArgument naming the file when it cannot be read, is empty or holds fewer than
  // kMinControlSecretBytes bytes.
  Status Load();
};

// A fresh secret for a control-secret file: 64 hex digits (32 random bytes) and a line break.
Result<std::string> NewControlSecret();

}  // namespace tandem::services
