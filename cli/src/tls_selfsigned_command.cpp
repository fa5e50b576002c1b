// tandem tls-selfsigned: a development CA, a server certificate for the given hosts and a client
// certificate, all signed by that CA (OpenSSL's C API; EC P-256 keys).
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cli_support.hpp"
#include "commands.hpp"

namespace tandem::cli {
namespace {

constexpr const char* kCommand = "tls-selfsigned";

struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct CertDeleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
using Key = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using Cert = std::unique_ptr<X509, CertDeleter>;

Result<Key> NewKey() {
  Key key(EVP_EC_gen("P-256"));
  if (!key) return Internal("cannot generate an EC P-256 key");
  return key;
}

// The role of a certificate: what its extensions say it may do.
enum class Role { kCa, kServer, kClient };

// Adds one extension in OpenSSL's config syntax ("critical,CA:TRUE"), issued by `issuer`.
Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) return InvalidArgument("cannot make the extension '" + value + "'");
  const int added = X509_add_ext(cert, extension, -1);
  X509_EXTENSION_free(extension);
  if (added != 1) return Internal("cannot add the extension '" + value + "'");
  return Status::Ok();
}

// "IP:127.0.0.1,DNS:localhost" for the hosts.
std::string SubjectAltNames(const std::vector<std::string>& hosts) {
  std::string names;
  for (const std::string& host : hosts) {
    const bool is_ip =
        host.find_first_not_of("0123456789.") == std::string::npos || host.find(':') != std::string::npos;
    if (!names.empty()) names += ',';
    names.append(is_ip ? "IP:" : "DNS:").append(host);
  }
  return names;
}

// A certificate for `key`, named `common_name`, valid for `days`, signed by `issuer_key` (self-signed when
// `issuer` is null).
Result<Cert> MakeCertificate(EVP_PKEY* key, const std::string& common_name, Role role, int days, X509* issuer,
                             EVP_PKEY* issuer_key, const std::vector<std::string>& hosts) {
  Cert cert(X509_new());
  if (!cert) return Internal("cannot allocate a certificate");
  X509_set_version(cert.get(), 2);  // v3
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return Internal("no random bytes for a serial number");
  serial[0] &= 0x7f;  // positive
  BIGNUM* serial_number = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(serial_number, X509_get_serialNumber(cert.get()));
  BN_free(serial_number);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);  // an hour back: clocks differ a little
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(days) * 24 * 3600);
  X509_set_pubkey(cert.get(), key);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Tandem development"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1, 0);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_key_identifier, "hash"));
  TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_authority_key_identifier, "keyid:always"));
  switch (role) {
    case Role::kCa:
      TANDEM_RETURN_IF_ERROR(
          AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign"));
      break;
    case Role::kServer:
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature"));
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_ext_key_usage, "serverAuth"));
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_subject_alt_name, SubjectAltNames(hosts)));
      break;
    case Role::kClient:
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE"));
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_key_usage, "critical,digitalSignature"));
      TANDEM_RETURN_IF_ERROR(AddExtension(cert.get(), signer, NID_ext_key_usage, "clientAuth"));
      break;
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) == 0)
    return Internal("cannot sign '" + common_name + "'");
  return cert;
}

// The PEM text `write` gives through a memory BIO, written to `path` with `mode` (replaced if there).
template <typename Write>
Status WritePem(const std::string& path, mode_t mode, Write&& write) {
  const std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (bio == nullptr || write(bio.get()) != 1) return Internal("cannot encode '" + path + "'");
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return WriteFileWithMode(path, std::string(data, static_cast<size_t>(size)), mode, /*replace=*/true);
}

Status WriteCert(const std::string& path, X509* cert) {
  return WritePem(path, 0644, [cert](BIO* bio) { return PEM_write_bio_X509(bio, cert); });
}

Status WriteKey(const std::string& path, EVP_PKEY* key) {
  return WritePem(path, 0600, [key](BIO* bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

}  // namespace

int RunTlsSelfsigned(std::span<const std::string> args) {
  std::string out;
  std::string hosts_text = "127.0.0.1,localhost";
  int days = 30;
  FlagSet flags(
      "usage: tandem tls-selfsigned --out PREFIX [--hosts 127.0.0.1,localhost] [--days 30]\n\n"
      "FOR DEVELOPMENT AND TESTS ONLY: writes a self-signed CA (PREFIX-ca.pem), a server certificate for\n"
      "the hosts signed by it (PREFIX-cert.pem, PREFIX-key.pem: --tls-cert/--tls-key of tandem-edge,\n"
      "tandem-scheduler, tandem-cloud) and a client certificate (PREFIX-client-cert.pem,\n"
      "PREFIX-client-key.pem) for --tls-client-ca PREFIX-ca.pem. Keys are EC P-256, mode 0600. In\n"
      "production take certificates from your PKI (or terminate TLS at a proxy).");
  flags.String("out", &out, "path prefix of the five files");
  flags.String("hosts", &hosts_text, "the server certificate's names and IP addresses, comma-separated");
  flags.Int("days", &days, "validity in days");
  if (auto exit = ParseFlags(flags, args, kCommand)) return *exit;
  if (Status status = RequireNonEmpty(flags, "out", out); !status.ok())
    return Fail(kCommand, status, kExitUsage);
  if (days < 1 || days > 3650)
    return Fail(kCommand, InvalidArgument("--days must be in [1, 3650]"), kExitUsage);
  std::vector<std::string> hosts;
  for (std::string_view host : SplitList(hosts_text)) {
    if (!host.empty()) hosts.emplace_back(host);
  }
  if (hosts.empty()) return Fail(kCommand, InvalidArgument("--hosts names no host"), kExitUsage);
  Status made = [&]() -> Status {
    TANDEM_ASSIGN_OR_RETURN(Key ca_key, NewKey());
    TANDEM_ASSIGN_OR_RETURN(Cert ca, MakeCertificate(ca_key.get(), "Tandem development CA", Role::kCa, days,
                                                     nullptr, ca_key.get(), {}));
    TANDEM_ASSIGN_OR_RETURN(Key server_key, NewKey());
    TANDEM_ASSIGN_OR_RETURN(Cert server, MakeCertificate(server_key.get(), hosts.front(), Role::kServer, days,
                                                         ca.get(), ca_key.get(), hosts));
    TANDEM_ASSIGN_OR_RETURN(Key client_key, NewKey());
    TANDEM_ASSIGN_OR_RETURN(Cert client, MakeCertificate(client_key.get(), "Tandem development client",
                                                         Role::kClient, days, ca.get(), ca_key.get(), {}));
    TANDEM_RETURN_IF_ERROR(WriteCert(out + "-ca.pem", ca.get()));
    TANDEM_RETURN_IF_ERROR(WriteCert(out + "-cert.pem", server.get()));
    TANDEM_RETURN_IF_ERROR(WriteKey(out + "-key.pem", server_key.get()));
    TANDEM_RETURN_IF_ERROR(WriteCert(out + "-client-cert.pem", client.get()));
    return WriteKey(out + "-client-key.pem", client_key.get());
  }();
  if (!made.ok()) return Fail(kCommand, made);
  std::printf(
      "CA: %s-ca.pem\nserver: %s-cert.pem %s-key.pem (%s)\nclient: %s-client-cert.pem %s-client-key.pem\n",
      out.c_str(), out.c_str(), out.c_str(), hosts_text.c_str(), out.c_str(), out.c_str());
  return 0;
}

}  // namespace tandem::cli
