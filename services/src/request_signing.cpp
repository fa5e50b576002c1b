#include "tandem/services/request_signing.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <array>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>

#include "tandem/base/strings.hpp"
#include "tandem/services/http_client.hpp"

namespace tandem::services {
namespace {

constexpr size_t kMaxIdLength = 200;
constexpr size_t kMacHexDigits = size_t{2} * 32;  // SHA-256, in hex

std::string Hex(const unsigned char* bytes, size_t size) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(2 * size);
  for (size_t i = 0; i < size; ++i) {
    hex += kDigits[bytes[i] >> 4];
    hex += kDigits[bytes[i] & 0xf];
  }
  return hex;
}

std::string Sha256Hex(std::string_view data) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
  unsigned int size = 0;
  EVP_Digest(data.data(), data.size(), digest.data(), &size, EVP_sha256(), nullptr);
  return Hex(digest.data(), size);
}

// hex(HMAC-SHA256(secret, METHOD \n PATH \n TS \n hex(SHA-256(body)))): 64 lower-case hex digits.
std::string Mac(const std::string& secret, std::string_view method, std::string_view path, int64_t unix_ms,
                std::string_view body) {
  std::string message;
  message.append(method).append("\n").append(path).append("\n");
  message.append(std::to_string(unix_ms)).append("\n").append(Sha256Hex(body));
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int size = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), mac.data(), &size);
  return Hex(mac.data(), size);
}

Status CheckSecret(const std::string& secret) {
  if (secret.size() < kMinControlSecretBytes) {
    return InvalidArgument("the control secret has " + std::to_string(secret.size()) + " bytes; at least " +
                           std::to_string(kMinControlSecretBytes) + " are needed");
  }
  return Status::Ok();
}

bool ValidId(std::string_view id) {
  if (id.empty() || id.size() > kMaxIdLength) return false;
  for (const char c : id) {
    if (c <= ' ' || c > '~' || c == ',' || c == '=' || c == '"') return false;
  }
  return true;
}

std::string_view Trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

struct Credential {
  std::string id;
  int64_t unix_ms = 0;
  std::string mac;  // lower-case hex
};

// The parameters after the scheme ("id=..., ts=..., mac=..."); nullopt unless each is there once, well
// formed, and nothing else is.
std::optional<Credential> ParseCredential(std::string_view parameters) {
  Credential credential;
  bool has_id = false, has_ts = false, has_mac = false;
  for (std::string_view item : SplitList(parameters)) {
    item = Trimmed(item);
    const size_t equals = item.find('=');
    if (equals == std::string_view::npos) return std::nullopt;
    const std::string_view key = item.substr(0, equals);
    const std::string_view value = item.substr(equals + 1);
    if (key == "id" && !has_id && ValidId(value)) {
      credential.id = std::string(value);
      has_id = true;
    } else if (key == "ts" && !has_ts && !value.empty() && value.size() <= 15 &&
               value.find_first_not_of("0123456789") == std::string_view::npos) {
      credential.unix_ms = std::strtoll(std::string(value).c_str(), nullptr, 10);
      has_ts = true;
    } else if (key == "mac" && !has_mac && value.size() == kMacHexDigits &&
               value.find_first_not_of("0123456789abcdefABCDEF") == std::string_view::npos) {
      credential.mac = AsciiLower(value);
      has_mac = true;
    } else {
      return std::nullopt;
    }
  }
  if (!has_id || !has_ts || !has_mac) return std::nullopt;
  return credential;
}

}  // namespace

int64_t UnixMillisNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

Result<RequestSigner> RequestSigner::Create(std::string secret, std::string id) {
  TANDEM_RETURN_IF_ERROR(CheckSecret(secret));
  if (!ValidId(id)) {
    return InvalidArgument("the control-plane id '" + id +
                           "' must be 1 to 200 printable characters without space, ',', '=' or '\"'");
  }
  return RequestSigner(std::move(secret), std::move(id));
}

std::string RequestSigner::Authorization(std::string_view method, std::string_view path,
                                         std::string_view body, int64_t unix_ms) const {
  return std::string(kControlAuthScheme) + " id=" + id_ + ", ts=" + std::to_string(unix_ms) +
         ", mac=" + Mac(secret_, method, path, unix_ms, body);
}

void RequestSigner::Sign(HttpClientRequest& request) const {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  request.headers.emplace_back("Authorization",
                               Authorization(request.method, path, request.body, UnixMillisNow()));
}

std::string_view AuthFailureName(AuthFailure failure) {
  switch (failure) {
    case AuthFailure::kNone:
      return "none";
    case AuthFailure::kMissing:
      return "missing";
    case AuthFailure::kBadMac:
      return "bad_mac";
    case AuthFailure::kStale:
      return "stale";
  }
  return "unknown";
}

Result<RequestVerifier> RequestVerifier::Create(std::string secret, std::chrono::milliseconds window) {
  TANDEM_RETURN_IF_ERROR(CheckSecret(secret));
  if (window.count() <= 0) return InvalidArgument("the signature window must be positive");
  return RequestVerifier(std::move(secret), window);
}

Verification RequestVerifier::Verify(const std::string* authorization, std::string_view method,
                                     std::string_view path, std::string_view body,
                                     int64_t now_unix_ms) const {
  const std::string scheme = AsciiLower(kControlAuthScheme);
  if (authorization == nullptr || authorization->size() <= scheme.size() ||
      AsciiLower(std::string_view(*authorization).substr(0, scheme.size())) != scheme ||
      (*authorization)[scheme.size()] != ' ') {
    return {AuthFailure::kMissing, "",
            "this scheduler requires signed requests: 'Authorization: Tandem-HMAC id=..., ts=..., mac=...' "
            "(give the sender --control-secret-file)"};
  }
  const std::optional<Credential> credential =
      ParseCredential(std::string_view(*authorization).substr(scheme.size() + 1));
  if (!credential) {
    return {AuthFailure::kBadMac, "",
            "malformed Tandem-HMAC credential: expected 'id=<sender>, ts=<unix ms>, mac=<64 hex digits>'"};
  }
  const std::string expected = Mac(secret_, method, path, credential->unix_ms, body);
  if (CRYPTO_memcmp(expected.data(), credential->mac.data(), kMacHexDigits) != 0) {
    return {AuthFailure::kBadMac, credential->id,
            "the request's MAC does not match: a different control secret, or the request was altered"};
  }
  const int64_t skew_ms = std::llabs(now_unix_ms - credential->unix_ms);
  if (skew_ms > window_.count()) {
    return {AuthFailure::kStale, credential->id,
            "the credential's timestamp is " + std::to_string(skew_ms) +
                " ms off this scheduler's clock (at most " + std::to_string(window_.count()) +
                " ms): a replay, or clocks out of sync (NTP)"};
  }
  return {AuthFailure::kNone, credential->id, ""};
}

void ControlSecretFlag::Declare(FlagSet& flags) {
  flags.String("control-secret-file", &file,
               "the control plane's shared secret (a file of >= 32 bytes, e.g. from tandem control-secret): "
               "tandem-scheduler refuses heartbeats and plan requests not signed with it, tails and edges "
               "sign theirs (empty = unauthenticated)");
}

Status ControlSecretFlag::Load() {
  secret.clear();
  if (file.empty()) return Status::Ok();
  std::ifstream in(file, std::ios::binary);
  if (!in) return InvalidArgument("cannot read the control secret file '" + file + "'");
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!contents.empty() &&
         (contents.back() == '\n' || contents.back() == '\r' || contents.back() == ' ')) {
    contents.pop_back();
  }
  if (contents.empty()) return InvalidArgument("the control secret file '" + file + "' is empty");
  if (Status checked = CheckSecret(contents); !checked.ok()) {
    return InvalidArgument("control secret file '" + file + "': " + checked.message() +
                           " (tandem control-secret --out FILE writes one)");
  }
  secret = std::move(contents);
  return Status::Ok();
}

Result<std::string> NewControlSecret() {
  std::array<unsigned char, kMinControlSecretBytes> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
    return Internal("OpenSSL could not produce random bytes for the control secret");
  }
  return Hex(bytes.data(), bytes.size()) + "\n";
}

}  // namespace tandem::services
