// CURVE security for Tandem's ZeroMQ sockets: key pairs and key files, socket options, and a ZAP handler
// that admits only allow-listed clients.
//
// Keys are Z85 text (40 characters for 32 bytes). A key pair on disk is PREFIX.key (the secret key,
// mode 0600) and PREFIX.pub (the public key, mode 0644), each one key and a newline; `tandem keygen`
// writes them. The cloud tail's server socket gets its own pair plus an allow list of client public keys;
// each edge agent gets its own pair plus the server's public key, which it pins.
//
// Wiring a server (order matters):
//   zmq::context_t context;
//   TANDEM_ASSIGN_OR_RETURN(auto auth, ZapAuthenticator::Start(context, allowed));   // 1. the handler
//   zmq::socket_t socket(context, zmq::socket_type::router);
//   TANDEM_RETURN_IF_ERROR(ApplyCurveServer(socket, server_keys));                    // 2. options
//   socket.bind(endpoint);                                                            // 3. bind
//   ... destroy `socket` before `auth`, and `auth` before `context`.
//
// Errors never include key material; they name the file (and line) instead.
#pragma once

#include <zmq.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "tandem/base/status.hpp"

namespace tandem {

inline constexpr size_t kCurveKeyZ85Size = 40;  // 32 bytes in Z85
// The ZAP domain ApplyCurveServer sets; ZapAuthenticator answers every domain in its context.
inline constexpr const char* kCurveZapDomain = "tandem";

struct CurveKeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

// OK when `key` is exactly 40 characters of valid Z85 (any 32 bytes are a usable CURVE key). The
// message says what is wrong without quoting the key.
Status ValidateCurveKey(std::string_view key);

// A fresh pair from zmq_curve_keypair. Internal when libzmq was built without CURVE.
Result<CurveKeyPair> GenerateCurveKeyPair();

// Writes PREFIX.key (the secret key in Z85 + "\n", mode 0600) and PREFIX.pub (the public key in Z85 +
// "\n", mode 0644, whatever the umask). Without `overwrite`, an existing file (or symlink) at either path
// is an error and nothing is written; with it, each file is replaced atomically (temporary file + rename),
// so an old 0644 .key never keeps its mode. Refuses a pair whose public key does not match its secret key.
Status WriteCurveKeyPair(const CurveKeyPair& keys, const std::string& prefix, bool overwrite);

// Reads a .key file: one Z85 secret key (surrounding whitespace ignored); derives the public key with
// zmq_curve_public. Like ssh, refuses a file that group or others can access (mode & 077), naming the file
// and its mode; refuses a malformed key naming the file. NotFound when the file does not exist.
Result<CurveKeyPair> ReadSecretKeyFile(const std::string& path);

// Reads a .pub file: one Z85 public key (surrounding whitespace ignored), validated.
Result<std::string> ReadPublicKeyFile(const std::string& path);

// Reads an allow list: one Z85 public key per line; blank lines and comments allowed. A comment is a line
// whose first non-blank character is '#' (no valid key starts with '#'), or text after a key and
// whitespace that starts with '#' ("KEY  # alice's laptop"). Every other line must be
// a valid key, else InvalidArgument "path:line: ...". A list with no key at all is an error too (a server
// that admits nobody is a misconfiguration). Keys are returned in file order, duplicates removed.
Result<std::vector<std::string>> ReadAllowList(const std::string& path);

// Socket options; call before bind/connect. The server gets ZMQ_CURVE_SERVER=1, its secret key, ZAP
// domain "tandem", and (where libzmq supports the option) ZMQ_ZAP_ENFORCE_DOMAIN, so that if no ZAP
// handler is running the handshake fails instead of admitting every client that knows the server key.
// The client gets its own public and secret key and the server's public key, which it pins: a server
// holding another secret key cannot complete the handshake. InvalidArgument for a malformed key or a
// client pair that does not match; Internal when libzmq refuses an option.
Status ApplyCurveServer(zmq::socket_t& socket, const CurveKeyPair& server_keys);
Status ApplyCurveClient(zmq::socket_t& socket, const CurveKeyPair& client_keys,
                        const std::string& server_public_key);

// A ZAP handler (RFC 27) bound to inproc://zeromq.zap.01 in `context`. It admits (200) only CURVE clients
// whose public key is in `allowed` and answers everything else 400: NULL or PLAIN mechanism, unknown
// key; a malformed request gets 500. An admitted connection's User-Id (zmq_msg_gets "User-Id" on
// messages from it) is the client's public key in Z85.
//
// Lifetime: start it before any CURVE server socket in `context` binds, destroy it after those sockets
// and before the context terminates (the context cannot terminate while its socket is open). One per
// context: a second Start in the same context fails (the endpoint is taken).
// Threads: runs its own thread; the destructor stops it (a stop flag checked between polls of at most
// 50 ms) and joins it. `observer`, if set, is called on that thread once per decision, must be quick,
// and must not throw. admitted()/denied() may be read from any thread.
class ZapAuthenticator {
 public:
  using Observer =
      std::function<void(bool admitted, const std::string& client_key_z85, const std::string& peer_address)>;

  // InvalidArgument for a malformed key in `allowed` (named by index, not quoted); Internal when the
  // handler cannot bind (another handler already runs in `context`).
  static Result<std::unique_ptr<ZapAuthenticator>> Start(zmq::context_t& context,
                                                         std::vector<std::string> allowed,
                                                         Observer observer = {});
  ~ZapAuthenticator();
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;

  int64_t admitted() const { return admitted_.load(); }
  int64_t denied() const { return denied_.load(); }

 private:
  ZapAuthenticator(zmq::socket_t socket, std::unordered_set<std::string> allowed, Observer observer);
  void Run();
  // Decides one request (its frames) and returns the reply frames.
  std::vector<std::string> Handle(const std::vector<zmq::message_t>& request);

  zmq::socket_t socket_;                           // used only by thread_ once it runs
  const std::unordered_set<std::string> allowed_;  // 32-byte binary public keys
  const Observer observer_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> admitted_{0};
  std::atomic<int64_t> denied_{0};
  std::thread thread_;
};

}  // namespace tandem
