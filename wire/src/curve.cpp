#include "tandem/wire/curve.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>
#include <utility>

#include "tandem/base/strings.hpp"

namespace tandem {
namespace {

constexpr std::string_view kZ85Alphabet =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
constexpr size_t kCurveKeyBytes = 32;
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr int kZapPollMillis = 50;
// Key files hold one 40-character key; anything much larger is not a key file.
constexpr size_t kMaxKeyFileBytes = 4096;
constexpr size_t kMaxAllowListBytes = 16 << 20;
// ZMQ_ZAP_ENFORCE_DOMAIN is a draft option: zmq.h defines it only under ZMQ_BUILD_DRAFT_API.
constexpr int kZmqZapEnforceDomain = 93;

std::string ErrnoText(int error) {
  return std::strerror(error);
}

std::string ModeText(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

// Closes a file descriptor on scope exit.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  // Closes now, reporting the error (a failed close can mean lost data).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Status OpenError(const std::string& what, const std::string& path, int error) {
  std::string message = "cannot open " + what + " '" + path + "': " + ErrnoText(error);
  if (error == ENOENT) return NotFound(std::move(message));
  if (error == EACCES || error == EISDIR || error == ELOOP) return InvalidArgument(std::move(message));
  return Internal(std::move(message));
}

// Reads a whole regular file of at most `limit` bytes; `mode` receives its permission bits.
Result<std::string> ReadSmallFile(const std::string& what, const std::string& path, size_t limit,
                                  mode_t* mode) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (fd.get() < 0) return OpenError(what, path, errno);
  // fstat on the open descriptor: the mode checked is the mode of the file read.
  struct stat info {};
  if (::fstat(fd.get(), &info) != 0)
    return Internal("cannot stat " + what + " '" + path + "': " + ErrnoText(errno));
  if (!S_ISREG(info.st_mode)) return InvalidArgument(what + " '" + path + "' is not a regular file");
  if (mode != nullptr) *mode = info.st_mode;
  std::string contents;
  std::array<char, 4096> buffer;
  while (true) {
    const ssize_t n = ::read(fd.get(), buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Internal("cannot read " + what + " '" + path + "': " + ErrnoText(errno));
    if (n == 0) break;
    contents.append(buffer.data(), static_cast<size_t>(n));
    if (contents.size() > limit) {
      return InvalidArgument(what + " '" + path + "' is larger than " + std::to_string(limit) + " bytes");
    }
  }
  return contents;
}

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Internal(ErrnoText(errno));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

// Writes `contents` to the open `fd` with `mode` (fchmod: the umask must not change what we promise) and
// flushes it to disk.
Status FillFile(int fd, std::string_view contents, mode_t mode) {
  if (::fchmod(fd, mode) != 0) return Internal("chmod: " + ErrnoText(errno));
  TANDEM_RETURN_IF_ERROR(WriteAll(fd, contents));
  if (::fsync(fd) != 0) return Internal("fsync: " + ErrnoText(errno));
  return Status::Ok();
}

// Creates `path` exclusively (O_EXCL: never follows or replaces anything already there).
Status CreateNewFile(const std::string& path, std::string_view contents, mode_t mode) {
  FileDescriptor fd(::open(path.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOCTTY, mode));
  if (fd.get() < 0) {
    if (errno == EEXIST) return InvalidArgument("'" + path + "' already exists; refusing to overwrite it");
    return OpenError("key file", path, errno);
  }
  Status filled = FillFile(fd.get(), contents, mode);
  if (filled.ok() && fd.Close() != 0) filled = Internal("close: " + ErrnoText(errno));
  if (!filled.ok()) {
    ::unlink(path.c_str());
    return filled.WithContext("writing '" + path + "'");
  }
  return Status::Ok();
}

// Replaces `path` atomically: a new file (mkstemp: O_EXCL, 0600) beside it, renamed over it.
Status ReplaceFile(const std::string& path, std::string_view contents, mode_t mode) {
  std::string temp = path + ".tmp.XXXXXX";
  FileDescriptor fd(::mkostemp(temp.data(), O_CLOEXEC));
  if (fd.get() < 0) return OpenError("temporary file", temp, errno);
  Status filled = FillFile(fd.get(), contents, mode);
  if (filled.ok() && fd.Close() != 0) filled = Internal("close: " + ErrnoText(errno));
  if (filled.ok() && ::rename(temp.c_str(), path.c_str()) != 0)
    filled = Internal("rename: " + ErrnoText(errno));
  if (!filled.ok()) {
    ::unlink(temp.c_str());
    return filled.WithContext("writing '" + path + "'");
  }
  return Status::Ok();
}

// The 32 bytes of a Z85 key, which must be valid.
std::string DecodeKey(std::string_view z85) {
  const std::string terminated(z85);
  std::string binary(kCurveKeyBytes, '\0');
  zmq_z85_decode(reinterpret_cast<uint8_t*>(binary.data()), terminated.c_str());
  return binary;
}

std::string EncodeKey(std::string_view binary) {
  char z85[kCurveKeyZ85Size + 1] = {};
  zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(binary.data()), binary.size());
  return z85;
}

Result<std::string> DerivePublicKey(const std::string& secret_key) {
  char public_key[kCurveKeyZ85Size + 1] = {};
  if (zmq_curve_public(public_key, secret_key.c_str()) != 0) {
    return Internal("zmq_curve_public failed: " + std::string(zmq_strerror(zmq_errno())));
  }
  return std::string(public_key);
}

Status ValidateKeyPair(const CurveKeyPair& keys) {
  TANDEM_RETURN_IF_ERROR(ValidateCurveKey(keys.public_key).WithContext("public key"));
  TANDEM_RETURN_IF_ERROR(ValidateCurveKey(keys.secret_key).WithContext("secret key"));
  TANDEM_ASSIGN_OR_RETURN(const std::string derived, DerivePublicKey(keys.secret_key));
  if (derived != keys.public_key) return InvalidArgument("the public key does not belong to the secret key");
  return Status::Ok();
}

template <typename Option, typename Value>
Status SetOption(zmq::socket_t& socket, Option option, const Value& value, const char* name) {
  try {
    socket.set(option, value);
  } catch (const zmq::error_t& error) {
    return Internal(std::string("setting ") + name + ": " + error.what());
  }
  return Status::Ok();
}

std::string FrameText(const zmq::message_t& frame) {
  return std::string(frame.data<char>(), frame.size());
}

}  // namespace

Status ValidateCurveKey(std::string_view key) {
  if (key.size() != kCurveKeyZ85Size) {
    return InvalidArgument("expected a 40-character Z85 key, got " + std::to_string(key.size()) +
                           " characters");
  }
  for (size_t i = 0; i < key.size(); ++i) {
    if (kZ85Alphabet.find(key[i]) == std::string_view::npos) {
      return InvalidArgument("character " + std::to_string(i + 1) + " of the key is not a Z85 digit");
    }
  }
  // Five Z85 digits can exceed 2^32; such text does not round-trip and is not a key.
  if (EncodeKey(DecodeKey(key)) != key) return InvalidArgument("the key is not valid Z85");
  return Status::Ok();
}

Result<CurveKeyPair> GenerateCurveKeyPair() {
  char public_key[kCurveKeyZ85Size + 1] = {};
  char secret_key[kCurveKeyZ85Size + 1] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0) {
    return Internal("zmq_curve_keypair failed (libzmq without CURVE?): " +
                    std::string(zmq_strerror(zmq_errno())));
  }
  CurveKeyPair keys{public_key, secret_key};
  std::fill(std::begin(secret_key), std::end(secret_key), '\0');
  return keys;
}

Status WriteCurveKeyPair(const CurveKeyPair& keys, const std::string& prefix, bool overwrite) {
  if (prefix.empty()) return InvalidArgument("the key file prefix is empty");
  TANDEM_RETURN_IF_ERROR(ValidateKeyPair(keys).WithContext("writing key pair '" + prefix + "'"));
  const std::string secret_path = prefix + ".key";
  const std::string public_path = prefix + ".pub";
  const std::string secret_text = keys.secret_key + "\n";
  const std::string public_text = keys.public_key + "\n";
  if (overwrite) {
    TANDEM_RETURN_IF_ERROR(ReplaceFile(secret_path, secret_text, 0600));
    return ReplaceFile(public_path, public_text, 0644);
  }
  TANDEM_RETURN_IF_ERROR(CreateNewFile(secret_path, secret_text, 0600));
  if (Status written = CreateNewFile(public_path, public_text, 0644); !written.ok()) {
    ::unlink(secret_path.c_str());  // all or nothing: we created it a moment ago
    return written;
  }
  return Status::Ok();
}

Result<CurveKeyPair> ReadSecretKeyFile(const std::string& path) {
  mode_t mode = 0;
  TANDEM_ASSIGN_OR_RETURN(std::string contents,
                          ReadSmallFile("secret key file", path, kMaxKeyFileBytes, &mode));
  if ((mode & 077) != 0) {
    return InvalidArgument("secret key file '" + path + "' has mode " + ModeText(mode) +
                           ": it must not be accessible by group or others (chmod 600 '" + path + "')");
  }
  CurveKeyPair keys;
  keys.secret_key = std::string(TrimWhitespace(contents));
  std::fill(contents.begin(), contents.end(), '\0');
  if (Status valid = ValidateCurveKey(keys.secret_key); !valid.ok()) {
    return valid.WithContext("secret key file '" + path + "'");
  }
  TANDEM_ASSIGN_OR_RETURN(keys.public_key, DerivePublicKey(keys.secret_key));
  return keys;
}

Result<std::string> ReadPublicKeyFile(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(const std::string contents,
                          ReadSmallFile("public key file", path, kMaxKeyFileBytes, nullptr));
  std::string key(TrimWhitespace(contents));
  if (Status valid = ValidateCurveKey(key); !valid.ok())
    return valid.WithContext("public key file '" + path + "'");
  return key;
}

Result<std::vector<std::string>> ReadAllowList(const std::string& path) {
  TANDEM_ASSIGN_OR_RETURN(const std::string contents,
                          ReadSmallFile("allow list", path, kMaxAllowListBytes, nullptr));
  std::vector<std::string> keys;
  std::unordered_set<std::string> seen;
  std::string_view rest = contents;
  for (size_t line_number = 1; !rest.empty(); ++line_number) {
    const size_t end = rest.find('\n');
    const std::string_view line = TrimWhitespace(rest.substr(0, end));
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (line.empty()) continue;
    // '#' is a Z85 digit, but never the first digit of a valid key: 5 digits encode 4 bytes, and
    // 84 * 85^4 > 2^32. So a leading '#' always starts a comment.
    if (line.front() == '#') continue;
    const size_t blank = line.find_first_of(" \t");
    const std::string_view word = line.substr(0, blank);
    const std::string_view tail =
        blank == std::string_view::npos ? std::string_view() : TrimWhitespace(line.substr(blank));
    const std::string where = path + ":" + std::to_string(line_number);
    TANDEM_RETURN_IF_ERROR(ValidateCurveKey(word).WithContext(where));
    if (!tail.empty() && tail.front() != '#') {
      return InvalidArgument(where + ": unexpected text after the key (comments start with '#')");
    }
    if (seen.insert(std::string(word)).second) keys.emplace_back(word);
  }
  if (keys.empty()) return InvalidArgument("allow list '" + path + "' holds no keys");
  return keys;
}

Status ApplyCurveServer(zmq::socket_t& socket, const CurveKeyPair& server_keys) {
  TANDEM_RETURN_IF_ERROR(ValidateCurveKey(server_keys.secret_key).WithContext("server secret key"));
  TANDEM_RETURN_IF_ERROR(SetOption(socket, zmq::sockopt::curve_server, 1, "ZMQ_CURVE_SERVER"));
  TANDEM_RETURN_IF_ERROR(
      SetOption(socket, zmq::sockopt::curve_secretkey, server_keys.secret_key, "ZMQ_CURVE_SECRETKEY"));
  TANDEM_RETURN_IF_ERROR(SetOption(socket, zmq::sockopt::zap_domain, kCurveZapDomain, "ZMQ_ZAP_DOMAIN"));
  // Fail closed: without this, libzmq admits every client holding the server key when no ZAP handler is
  // bound. A libzmq built without draft options refuses it; then the ZapAuthenticator is the only guard.
  const int enforce = 1;
  zmq_setsockopt(socket.handle(), kZmqZapEnforceDomain, &enforce, sizeof enforce);
  return Status::Ok();
}

Status ApplyCurveClient(zmq::socket_t& socket, const CurveKeyPair& client_keys,
                        const std::string& server_public_key) {
  TANDEM_RETURN_IF_ERROR(ValidateKeyPair(client_keys).WithContext("client key pair"));
  TANDEM_RETURN_IF_ERROR(ValidateCurveKey(server_public_key).WithContext("server public key"));
  TANDEM_RETURN_IF_ERROR(
      SetOption(socket, zmq::sockopt::curve_serverkey, server_public_key, "ZMQ_CURVE_SERVERKEY"));
  TANDEM_RETURN_IF_ERROR(
      SetOption(socket, zmq::sockopt::curve_publickey, client_keys.public_key, "ZMQ_CURVE_PUBLICKEY"));
  return SetOption(socket, zmq::sockopt::curve_secretkey, client_keys.secret_key, "ZMQ_CURVE_SECRETKEY");
}

Result<std::unique_ptr<ZapAuthenticator>> ZapAuthenticator::Start(zmq::context_t& context,
                                                                  std::vector<std::string> allowed,
                                                                  Observer observer) {
  std::unordered_set<std::string> allowed_binary;
  for (size_t i = 0; i < allowed.size(); ++i) {
    if (Status valid = ValidateCurveKey(allowed[i]); !valid.ok()) {
      return valid.WithContext("allowed key #" + std::to_string(i + 1));
    }
    allowed_binary.insert(DecodeKey(allowed[i]));
  }
  try {
    zmq::socket_t socket(context, zmq::socket_type::rep);
    socket.set(zmq::sockopt::linger, 0);
    // Bound before Start returns, so a server socket bound afterwards always finds the handler.
    socket.bind(kZapEndpoint);
    return std::unique_ptr<ZapAuthenticator>(
        new ZapAuthenticator(std::move(socket), std::move(allowed_binary), std::move(observer)));
  } catch (const zmq::error_t& error) {
    return Internal(std::string("starting the ZAP handler on ") + kZapEndpoint + ": " + error.what());
  } catch (const std::system_error& error) {
    return Internal(std::string("starting the ZAP handler thread: ") + error.what());
  }
}

ZapAuthenticator::ZapAuthenticator(zmq::socket_t socket, std::unordered_set<std::string> allowed,
                                   Observer observer)
    : socket_(std::move(socket)), allowed_(std::move(allowed)), observer_(std::move(observer)) {
  thread_ = std::thread([this] { Run(); });
}

ZapAuthenticator::~ZapAuthenticator() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

void ZapAuthenticator::Run() {
  try {
    while (!stop_.load()) {
      zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
      if (zmq::poll(&item, 1, std::chrono::milliseconds(kZapPollMillis)) == 0) continue;
      std::vector<zmq::message_t> request;
      while (true) {
        zmq::message_t frame;
        if (!socket_.recv(frame, zmq::recv_flags::dontwait)) break;
        const bool more = frame.more();
        request.push_back(std::move(frame));
        if (!more) break;
      }
      if (request.empty()) continue;
      const std::vector<std::string> reply = Handle(request);
      for (size_t i = 0; i < reply.size(); ++i) {
        socket_.send(zmq::buffer(reply[i]),
                     i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      }
    }
  } catch (const zmq::error_t&) {
    // ETERM: the context is shutting down; nothing is left to authenticate.
  }
  // close() frees the endpoint only when the reaper gets to the socket; unbind frees it now, so a new
  // handler (a reloaded allow list) can start in this context at once.
  zmq_unbind(socket_.handle(), kZapEndpoint);
  socket_.close();
}

std::vector<std::string> ZapAuthenticator::Handle(const std::vector<zmq::message_t>& request) {
  // RFC 27 request: version, request id, domain, address, identity, mechanism, credentials...
  const std::string version = "1.0";
  const std::string request_id = request.size() > 1 ? FrameText(request[1]) : std::string();
  if (request.size() < 6 || FrameText(request[0]) != version) {
    return {version, request_id, "500", "malformed ZAP request", "", ""};
  }
  const std::string address = FrameText(request[3]);
  const std::string mechanism = FrameText(request[5]);
  std::string client_key;
  bool admit = false;
  if (mechanism == "CURVE" && request.size() == 7 && request[6].size() == kCurveKeyBytes) {
    const std::string binary = FrameText(request[6]);
    client_key = EncodeKey(binary);
    admit = allowed_.contains(binary);
  }
  (admit ? admitted_ : denied_).fetch_add(1);
  if (observer_) observer_(admit, client_key, address);
  if (admit) return {version, request_id, "200", "OK", client_key, ""};
  return {version, request_id, "400", mechanism == "CURVE" ? "client key not allowed" : "CURVE required",
          "",      ""};
}

}  // namespace tandem
